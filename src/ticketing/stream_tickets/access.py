"""Who opens an event stream: the bearer token and headers, or a stream ticket."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from ticketing.auth.access import (
    Access,
    Action,
    accept,
    app_state,
    authenticate,
    authorize,
    requested_tenant,
)
from ticketing.auth.tokens import Principal
from ticketing.kit.errors import InputValidationFailure
from ticketing.stream_tickets import service
from ticketing.tickets.validation import require_catalog_query


@dataclass(frozen=True)
class StreamCaller:
    """A stream's caller, authenticated; `expires_at`: when the stream ends (None: when the
    request's own bearer token expires)."""

    principal: Principal
    tenant_id: uuid.UUID
    expires_at: float | None


async def stream_caller(request: Request, stream: str) -> StreamCaller:
    """Checks 1 and 2 for event stream `stream`: with a `ticket` query parameter, the ticket
    (used up) and no authorization header; without, the token and headers of every call."""
    ticket = request.query_params.get("ticket")
    if ticket is None:
        principal = await authenticate(request)
        return StreamCaller(principal, requested_tenant(request, principal), None)
    if "authorization" in request.headers:
        raise InputValidationFailure(
            {"ticket": ["Send a stream ticket or an authorization header, not both"]},
            "Invalid request",
        )
    # A stream URL that would be refused does not spend the ticket.
    require_catalog_query(request.query_params)
    grant = await service.take(app_state(request).sessionmaker, ticket=ticket, stream=stream)
    accept(request, grant.principal)
    return StreamCaller(grant.principal, grant.tenant_id, grant.token_expires_at)


async def admit_stream(request: Request, session: AsyncSession, caller: StreamCaller) -> Access:
    """Checks 3 and 4 for a stream's caller, against the tenant's current configuration: a
    stream reads tickets."""
    catalog = await app_state(request).catalogs.get(session, tenant_id=caller.tenant_id)
    return authorize(caller.principal, caller.tenant_id, catalog, Action.READ)
