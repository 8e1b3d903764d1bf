"""The checks every ticketing call makes, in SPEC order: token, headers, tenant, permission."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from ticketing.auth.dev_issuer import WRITE_ROLES
from ticketing.auth.tokens import Principal
from ticketing.catalog.service import TenantCatalog
from ticketing.kit.errors import (
    AuthenticationFailure,
    PermissionFailure,
    Reasons,
    TenantNotFound,
)
from ticketing.state import AppState

TICKET_ROLES = frozenset(WRITE_ROLES)


class Action(Enum):
    """What a call does, and the scope and wording of its permission failure."""

    CREATE = ("tickets:write", "create ticket")
    READ_CATALOG = ("tickets:read", "read the service catalog")

    def __init__(self, scope: str, wording: str) -> None:
        self.scope = scope
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


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.ticketing
    return state


async def authenticate(request: Request) -> Principal:
    """Step 1: a genuine, current token from a trusted issuer."""
    return await app_state(request).verifier.verify(request.headers.get("authorization"))


def requested_tenant(request: Request, principal: Principal) -> uuid.UUID:
    """Step 2: `x-tenantid` and `realmname` present, well formed, and in the token's realm."""
    tenant_header = request.headers.get("x-tenantid")
    realm_header = request.headers.get("realmname")
    reasons = Reasons()
    tenant_id: uuid.UUID | None = None
    if not tenant_header:
        reasons.add("x-tenantid", "Header x-tenantid is required")
    else:
        try:
            tenant_id = uuid.UUID(tenant_header)
        except ValueError:
            reasons.add("x-tenantid", "Header x-tenantid must be a UUID")
    if not realm_header:
        reasons.add("realmname", "Header realmname is required")
    reasons.raise_if_any("Missing or malformed request headers")
    if realm_header != principal.realm:
        raise AuthenticationFailure("The realmname header does not name the token's realm")
    assert tenant_id is not None
    return tenant_id


async def admit(request: Request, session: AsyncSession, action: Action) -> Access:
    """Runs checks 1-4 of every ticketing call and returns the admitted caller."""
    principal = await authenticate(request)
    tenant_id = requested_tenant(request, principal)
    # Step 3: the tenant exists, is the token's, and logs in through the token's realm.
    if principal.tenant_id is None or _uuid_or_none(principal.tenant_id) != tenant_id:
        raise TenantNotFound()
    catalog = await app_state(request).catalogs.get(session, tenant_id=tenant_id)
    if catalog is None or catalog.realm != principal.realm:
        raise TenantNotFound()
    # Step 4: the scope for the action and a ticketing realm role.
    if not (principal.scopes & action.allowed_scopes()) or not (principal.roles & TICKET_ROLES):
        raise PermissionFailure(f"You do not have the required permissions to {action.wording}")
    return Access(principal=principal, catalog=catalog)


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
