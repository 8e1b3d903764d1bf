"""HTTP endpoints for the caller's notifications."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from ticketing.auth.access import Action, admit, admit_before_body, app_state
from ticketing.events import sse
from ticketing.events.schemas import LAST_EVENT_ID, STREAM_HEADERS, TICKET, stream_response
from ticketing.kit.db import transaction
from ticketing.kit.requests import read_body
from ticketing.kit.responses import JsonResponse
from ticketing.kit.schemas import (
    CATALOG_QUERY,
    ERROR_RESPONSES,
    TICKETING_HEADERS,
    ErrorEnvelope,
    body_schema,
)
from ticketing.notifications import service
from ticketing.notifications.schemas import (
    NotificationCountResponse,
    NotificationListRequest,
    NotificationListResponse,
    NotificationResponse,
    NotificationUpdate,
    ReadAllResponse,
)
from ticketing.stream_tickets.access import admit_stream, stream_caller
from ticketing.tickets.validation import require_catalog_query

router = APIRouter(prefix="/api/v2/ticketing", tags=["notifications"])

_PARAMETERS = [*TICKETING_HEADERS, *CATALOG_QUERY]
_PLAIN: dict[str, Any] = {"parameters": _PARAMETERS}


def _with_body(model: Any, *, required: bool) -> dict[str, Any]:
    return {"parameters": _PARAMETERS, "requestBody": {**body_schema(model), "required": required}}


@router.post(
    "/ticket/notifications",
    summary="List my notifications",
    response_model=NotificationListResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=_with_body(NotificationListRequest, required=False),
)
async def list_notifications(request: Request) -> Response:
    """The caller's notifications, newest first: filter by read state, type, ticket and
    date range; `top` and `offset` page them."""
    await admit_before_body(request, Action.READ)
    raw_body = await read_body(request)
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.READ)
        require_catalog_query(request.query_params)
        page = await service.list_notifications(
            session,
            access=access,
            raw_body=raw_body,
            content_type=request.headers.get("content-type"),
        )
    return JsonResponse({"success": True, "status": 200, "data": page})


@router.get(
    "/ticket/notification/count",
    summary="Count my unread notifications",
    response_model=NotificationCountResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=_PLAIN,
)
async def count_notifications(request: Request) -> Response:
    """How many of the caller's notifications are unread."""
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.READ)
        require_catalog_query(request.query_params)
        unread = await service.count_unread(session, access=access)
    return JsonResponse({"success": True, "status": 200, "unread": unread})


@router.post(
    "/ticket/notifications/read-all",
    summary="Mark all my notifications read",
    response_model=ReadAllResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=_PLAIN,
)
async def read_all(request: Request) -> Response:
    """Marks every unread notification of the caller read."""
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.READ)
        require_catalog_query(request.query_params)
        changed = await service.mark_all_read(session, access=access)
    return JsonResponse(
        {
            "success": True,
            "message": "notifications marked read",
            "status": 200,
            "updated": changed,
        }
    )


@router.patch(
    "/ticket/notifications/{notificationId}",
    summary="Mark a notification read or unread",
    response_model=NotificationResponse,
    responses={
        **ERROR_RESPONSES,
        404: {"model": ErrorEnvelope, "description": "Tenant not found, or no such notification"},
    },
    openapi_extra=_with_body(NotificationUpdate, required=True),
)
async def mark_notification(request: Request, notificationId: str) -> Response:
    """Sets `read` on one of the caller's notifications."""
    await admit_before_body(request, Action.READ)
    raw_body = await read_body(request)
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.READ)
        require_catalog_query(request.query_params)
        notification = await service.mark(
            session,
            access=access,
            notification_id=notificationId,
            raw_body=raw_body,
            content_type=request.headers.get("content-type"),
        )
    return JsonResponse(
        {
            "success": True,
            "message": "notification updated successfully",
            "status": 200,
            "notification": notification,
        }
    )


@router.get(
    "/ticket/sse/notifications",
    summary="My notifications as they are made (Server-Sent Events)",
    responses=stream_response("connected", "notification", "reset", "heartbeat", "error"),
    response_class=StreamingResponse,
    openapi_extra={"parameters": [*STREAM_HEADERS, *CATALOG_QUERY, TICKET, LAST_EVENT_ID]},
)
async def notification_stream(request: Request) -> Response:
    """`connected`, then a `notification` event for each new notification of the caller,
    with `heartbeat`s; an `error` event before the server ends it. Opened with the bearer
    token and headers, or with a stream ticket (`?ticket=`)."""
    state = app_state(request)
    caller = await stream_caller(request, "notifications")
    async with transaction(state.sessionmaker) as session:
        access = await admit_stream(request, session, caller)
        require_catalog_query(request.query_params)
        body = await service.stream(
            session,
            request=request,
            access=access,
            hub=state.hub,
            heartbeat=state.settings.sse_heartbeat,
            expires_at=caller.expires_at,
        )
    return StreamingResponse(body, media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
