"""HTTP endpoints for event streams."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from ticketing.auth.access import Action, admit, app_state
from ticketing.events import service, sse
from ticketing.events.schemas import LIST_UPDATES_OPENAPI, LIST_UPDATES_RESPONSES
from ticketing.kit.db import transaction
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
    tickets the caller may list, with `heartbeat`s; resumes after `Last-Event-ID`."""
    state = app_state(request)
    async with transaction(state.sessionmaker) as session:
        access = await admit(request, session, Action.READ)
        require_catalog_query(request.query_params)
        body = await service.list_updates(
            session,
            request=request,
            access=access,
            hub=state.hub,
            heartbeat=state.settings.sse_heartbeat,
        )
    return StreamingResponse(body, media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
