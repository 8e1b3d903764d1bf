"""HTTP endpoints for event streams."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response, StreamingResponse

from ticketing.auth.access import app_state
from ticketing.auth.reads import run_read
from ticketing.events import service, sse
from ticketing.events.schemas import LIST_UPDATES_OPENAPI, LIST_UPDATES_RESPONSES
from ticketing.stream_tickets.access import admit_stream, stream_caller
from ticketing.tickets.validation import require_catalog_query

router = APIRouter(prefix="/api/v2/ticketing", tags=["events"])


@router.get(
    "/ticket/sse/list/updates",
    summary="Ticket list updates (Server-Sent Events)",
    responses=LIST_UPDATES_RESPONSES,
    response_class=StreamingResponse,
    openapi_extra=LIST_UPDATES_OPENAPI,
)
async def list_updates(request: Request) -> Response:
    """`connected`, optionally `snapshot`, then `created`, `updated` and `deleted` for the
    tickets the caller may list, with `heartbeat`s; resumes after `Last-Event-ID`. Opened
    with the bearer token and headers, or with a stream ticket (`?ticket=`)."""
    state = app_state(request)
    caller = await stream_caller(request, "list")
    state.hub.check_capacity()
    # Subscribed before the snapshot and replay are read, so that no event falls between
    # them and the live events; a replica serves them only once it has replayed past now.
    subscription = state.hub.subscribe(caller.tenant_id)

    async def read(session: AsyncSession) -> service.StreamBody:
        access = await admit_stream(request, session, caller)
        require_catalog_query(request.query_params)
        return await service.list_updates(
            session,
            request=request,
            access=access,
            hub=state.hub,
            subscription=subscription,
            heartbeat=state.settings.sse_heartbeat,
            expires_at=caller.expires_at,
        )

    reads_history = "snapshot" in request.query_params or "last-event-id" in request.headers
    try:
        body = await run_read(request, read, fresh=reads_history)
    except BaseException:
        state.hub.unsubscribe(subscription)
        raise
    return StreamingResponse(body, media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
