"""HTTP endpoints for tickets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ticketing.auth.access import Action, admit, app_state
from ticketing.kit.db import transaction
from ticketing.kit.requests import read_body
from ticketing.kit.responses import JsonResponse
from ticketing.kit.schemas import (
    CATALOG_QUERY,
    ERROR_RESPONSES,
    TICKETING_HEADERS,
    ErrorEnvelope,
)
from ticketing.tickets import service
from ticketing.tickets.schemas import TicketCreate, TicketCreated

router = APIRouter(prefix="/api/v2/ticketing", tags=["tickets"])

_CREATE_OPENAPI: dict[str, Any] = {
    "parameters": [
        *TICKETING_HEADERS,
        {
            "name": "issupportrequest",
            "in": "header",
            "required": False,
            "schema": {"type": "boolean"},
            "description": "Whether this is a support-related request.",
        },
        *CATALOG_QUERY,
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": TicketCreate.model_json_schema()}},
    },
}


@router.post(
    "/ticket/create/{teamId}/{itemTypeId}",
    summary="Create Ticket",
    response_model=TicketCreated,
    responses={
        **ERROR_RESPONSES,
        403: {"model": ErrorEnvelope, "description": "Roles may not use the team or item type"},
        404: {
            "description": "Tenant not found (JSON), or unknown teamId / itemTypeId (HTML)",
            "content": {
                "application/json": {"schema": ErrorEnvelope.model_json_schema()},
                "text/html": {"schema": {"type": "string"}},
            },
        },
    },
    openapi_extra=_CREATE_OPENAPI,
)
async def create_ticket(request: Request, teamId: str, itemTypeId: str) -> Response:
    """Creates a ticket from a service catalog offer."""
    state = app_state(request)
    raw_body = await read_body(request)
    async with transaction(state.sessionmaker) as session:
        access = await admit(request, session, Action.CREATE)
        ticket = await service.create_ticket(
            session,
            access=access,
            team_id=teamId,
            item_type_id=itemTypeId,
            headers=request.headers,
            query=request.query_params,
            raw_body=raw_body,
        )
    return JsonResponse(
        {
            "success": True,
            "message": "ticket created successfully",
            "status": 200,
            "objectId": ticket["object_id"],
            "ticket": ticket,
        },
        headers={"ETag": f'"{ticket["etag"]}"'},
    )
