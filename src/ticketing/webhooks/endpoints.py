"""HTTP endpoints for webhooks."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ticketing.auth.access import Action, admit, app_state
from ticketing.kit.db import transaction
from ticketing.kit.responses import JsonResponse
from ticketing.kit.schemas import CATALOG_QUERY, ERROR_RESPONSES, TICKETING_HEADERS, ErrorEnvelope
from ticketing.tickets.validation import require_catalog_query
from ticketing.webhooks import service
from ticketing.webhooks.schemas import DeliveriesResponse

router = APIRouter(prefix="/api/v2/ticketing", tags=["webhooks"])

_PAGING = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": low, "maximum": high},
        "description": description,
    }
    for name, low, high, description in (
        ("top", 1, 100, "Page size (default 30)."),
        ("offset", 0, 10**9, "Deliveries to skip."),
    )
]


@router.get(
    "/tenant/webhooks/{webhookId}/deliveries",
    summary="A webhook's deliveries and their attempts (admins)",
    response_model=DeliveriesResponse,
    responses={
        **ERROR_RESPONSES,
        404: {"model": ErrorEnvelope, "description": "Tenant not found, or no such webhook"},
    },
    openapi_extra={"parameters": [*TICKETING_HEADERS, *CATALOG_QUERY, *_PAGING]},
)
async def webhook_deliveries(request: Request, webhookId: str) -> Response:
    """Each event sent to the webhook, newest first: status (pending, delivered, failed),
    attempts with their time, HTTP status or error, and duration."""
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.READ)
        require_catalog_query(request.query_params)
        page = await service.deliveries(
            session,
            access=access,
            webhook_id=webhookId,
            query=request.query_params,
            ids=app_state(request).hub.ids,
        )
    return JsonResponse(
        {
            "success": True,
            "status": 200,
            "webhookId": webhookId,
            "data": page,
        }
    )
