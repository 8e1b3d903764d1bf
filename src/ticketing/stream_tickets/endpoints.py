"""HTTP endpoint that issues stream tickets."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ticketing.auth.access import Action, admit, admit_before_body, app_state
from ticketing.events import sse
from ticketing.kit.db import transaction
from ticketing.kit.requests import read_body
from ticketing.kit.responses import JsonResponse
from ticketing.kit.schemas import CATALOG_QUERY, ERROR_RESPONSES, TICKETING_HEADERS, body_schema
from ticketing.stream_tickets import service
from ticketing.stream_tickets.schemas import StreamTicketRequest, StreamTicketResponse

router = APIRouter(prefix="/api/v2/ticketing", tags=["events"])


@router.post(
    "/ticket/sse/ticket",
    summary="A single-use ticket to open an event stream without headers",
    response_model=StreamTicketResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={
        # `type` and `module` are optional here (checked when sent).
        "parameters": [*TICKETING_HEADERS, *({**p, "required": False} for p in CATALOG_QUERY)],
        "requestBody": {**body_schema(StreamTicketRequest), "required": True},
    },
)
async def stream_ticket(request: Request) -> Response:
    """A ticket that opens the named stream once, as the caller, within `expiresIn` seconds:
    `GET <stream URL>?ticket=<ticket>` with no authorization, x-tenantid or realmname header
    (what a browser's EventSource can send). The caller must be allowed to read the stream."""
    # The caller first: one who may not read streams is answered without waiting for the
    # body (the transaction below admits them again).
    await admit_before_body(request, Action.READ)
    raw_body = await read_body(request)
    # A ticket is nothing a read shows: the caller's next reads need not wait for a replica
    # to replay it (ticketing.auth.reads).
    request.state.read_only = True
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.READ)
        stream = service.requested_stream(
            raw_body, request.headers.get("content-type"), request.query_params
        )
        ticket = await service.issue(
            session,
            access=access,
            stream=stream,
            # Verified and current (it has an `exp`): the stream it opens ends then.
            token_expires_at=sse.token_expiry(request) or 0.0,
        )
    return JsonResponse({"ticket": ticket, "expiresIn": service.TTL_SECONDS})
