"""The checks every ticketing call makes, in SPEC order: token, headers, tenant, permission."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from ticketing.auth.dev_issuer import WRITE_ROLES
from ticketing.auth.tokens import Principal
from ticketing.catalog.service import TenantCatalog
from ticketing.kit.db import transaction
from ticketing.kit.errors import (
    AuthenticationFailure,
    PermissionFailure,
    Reasons,
    TenantNotFound,
    TicketingError,
)
from ticketing.kit.tenancy import bind_tenant
from ticketing.state import AppState

TICKET_ROLES = frozenset(WRITE_ROLES)
# Roles that see and work every ticket of the tenant; others see only what they submitted.
AGENT_ROLES = frozenset({"ticket_agent", "tenant_admin"})


class Action(Enum):
    """What a call does: its scope, the realm roles it needs, its permission wording."""

    CREATE = ("tickets:write", TICKET_ROLES, "create ticket")
    READ_CATALOG = ("tickets:read", TICKET_ROLES, "read the service catalog")
    READ = ("tickets:read", TICKET_ROLES, "read tickets")
    UPDATE = ("tickets:write", TICKET_ROLES, "update ticket")
    COMMENT = ("tickets:write", TICKET_ROLES, "comment on ticket")
    DELETE = ("tickets:write", AGENT_ROLES, "delete ticket")
    UPLOAD = ("tickets:write", TICKET_ROLES, "upload attachments")
    RELATE = ("tickets:write", TICKET_ROLES, "change ticket relations")
    MERGE = ("tickets:write", AGENT_ROLES, "merge tickets")

    def __init__(self, scope: str, roles: frozenset[str], wording: str) -> None:
        self.scope = scope
        self.roles = roles
        self.wording = wording

    def allowed_scopes(self) -> frozenset[str]:
        # Reading is allowed to writers too.
        if self.scope == "tickets:read":
            return frozenset({"tickets:read", "tickets:write"})
        return frozenset({self.scope})


@dataclass(frozen=True)
class Access:
    """A caller admitted to a tenant."""

    principal: Principal
    catalog: TenantCatalog

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.catalog.tenant_id

    @property
    def own_only(self) -> str | None:
        """The submitter whose tickets alone this caller may see, or None for all."""
        return None if self.principal.roles & AGENT_ROLES else self.principal.submitter


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.ticketing
    return state


async def authenticate(request: Request) -> Principal:
    """Step 1: a genuine, current token from a trusted issuer."""
    # The request's state (what the framework shows as request.state), as the dict it is.
    state: dict[str, Any] = request.scope.setdefault("state", {})
    principal: Principal | None = state.get("principal")
    if principal is None:
        principal = await app_state(request).verifier.verify(request.headers.get("authorization"))
        _remember(state, principal)
    # The database shows this request the token's tenant alone (row-level security).
    bind_tenant(principal.tenant_uuid)
    return principal


def accept(request: Request, principal: Principal) -> None:
    """Makes `principal`, authenticated otherwise than by the request's bearer token (a
    stream ticket), the request's caller, as `authenticate` would."""
    _remember(request.scope.setdefault("state", {}), principal)
    bind_tenant(principal.tenant_uuid)


def _remember(state: dict[str, Any], principal: Principal) -> None:
    state["principal"] = principal
    state["subject"] = principal.username  # for the audit log
    # Whose writes this request's reads must see (ticketing.auth.reads).
    state["caller"] = caller_key(principal)


def caller_key(principal: Principal) -> str:
    """One caller: the same person in the same tenant, whichever token they hold."""
    return f"{principal.realm}\x1f{principal.tenant_id or ''}\x1f{principal.subject}"


# The x-tenantid values seen lately, parsed (a caller sends the same one on every request).
_tenant_uuid = lru_cache(maxsize=4096)(uuid.UUID)


HEADERS_MESSAGE = "Missing or malformed request headers"


def requested_tenant(
    request: Request, principal: Principal, *, message: str | None = HEADERS_MESSAGE
) -> uuid.UUID:
    """Step 2: `x-tenantid` and `realmname` present, well formed, and in the token's realm.
    A failure is 400 with `message` (None: the seed's validation message, as create uses
    for every 400 it answers)."""
    tenant_header = request.headers.get("x-tenantid")
    realm_header = request.headers.get("realmname")
    reasons = Reasons()
    tenant_id: uuid.UUID | None = None
    if not tenant_header:
        reasons.add("x-tenantid", "Header x-tenantid is required")
    else:
        try:
            tenant_id = _tenant_uuid(tenant_header)
        except ValueError:
            reasons.add("x-tenantid", "Header x-tenantid must be a UUID")
    if not realm_header:
        reasons.add("realmname", "Header realmname is required")
    reasons.raise_if_any(message)
    if realm_header != principal.realm:
        raise AuthenticationFailure("The realmname header does not name the token's realm")
    assert tenant_id is not None
    return tenant_id


async def admit(request: Request, session: AsyncSession, action: Action) -> Access:
    """Runs checks 1-4 of every ticketing call against the tenant's current configuration."""
    principal = await authenticate(request)
    tenant_id = requested_tenant(request, principal)
    catalog = await app_state(request).catalogs.get(session, tenant_id=tenant_id)
    return authorize(principal, tenant_id, catalog, action)


async def admit_before_body(request: Request, action: Action) -> Access:
    """Checks 1-4 before the request's body is read: a caller who may not make the call is
    answered without the server waiting for the body, and no transaction is open while it
    comes. Checked against the tenant's cached configuration when there is one (no
    database), else (or when the cached one refuses: it may be out of date) in a short
    transaction of its own. The call's transaction admits the caller again against the
    tenant's current configuration."""
    principal = await authenticate(request)
    tenant_id = requested_tenant(request, principal)
    state = app_state(request)
    cached = state.catalogs.peek(tenant_id)
    if cached is not None:
        try:
            return authorize(principal, tenant_id, cached, action)
        except TicketingError:
            pass
    async with transaction(state.sessionmaker) as session:
        catalog = await state.catalogs.get(session, tenant_id=tenant_id)
    return authorize(principal, tenant_id, catalog, action)


def authorize(
    principal: Principal, tenant_id: uuid.UUID, catalog: TenantCatalog | None, action: Action
) -> Access:
    """Checks 3 and 4: the tenant is the token's and in its realm; the scope and role fit."""
    if principal.tenant_uuid is None or principal.tenant_uuid != tenant_id:
        raise TenantNotFound()
    if catalog is None or catalog.realm != principal.realm:
        raise TenantNotFound()
    if not (principal.scopes & action.allowed_scopes()) or not (principal.roles & action.roles):
        raise PermissionFailure(f"You do not have the required permissions to {action.wording}")
    return Access(principal=principal, catalog=catalog)
