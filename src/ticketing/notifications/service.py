"""Notifications of the calling user: list, count, mark read, stream."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from ticketing.auth.access import Access
from ticketing.catalog.fields import invalid_date_message
from ticketing.events import sse
from ticketing.events.hub import EventHub
from ticketing.events.repository import Event
from ticketing.events.service import parse_last_event_id, resume, stream_user
from ticketing.kit.errors import InputValidationFailure, NotFound, Reasons
from ticketing.kit.time import isoformat
from ticketing.models import Notification
from ticketing.notifications import repository
from ticketing.notifications.schemas import NotificationListRequest, NotificationUpdate
from ticketing.tickets.validation import NOT_PARSED, parse_body

_M = type[BaseModel]


def recipients(access: Access) -> tuple[str, ...]:
    """The names a notification for the caller may be addressed to."""
    principal = access.principal
    return tuple({principal.username, principal.submitter})


def public(notification: Notification) -> dict[str, Any]:
    return {
        "id": str(notification.id),
        "type": notification.kind,
        "objectId": notification.object_id,
        "ticketId": str(notification.ticket_id),
        "message": notification.message,
        "data": notification.data,
        "read": notification.read,
        "createdAt": isoformat(notification.created_at),
    }


def _public_from_event(row: dict[str, Any]) -> dict[str, Any]:
    created = datetime.fromisoformat(row["created_at"])
    return {
        "id": row["id"],
        "type": row["kind"],
        "objectId": row["object_id"],
        "ticketId": row["ticket_id"],
        "message": row["message"],
        "data": row["data"],
        "read": row["read"],
        "createdAt": isoformat(created),
    }


def _validated(raw_body: bytes, content_type: str | None, model: _M, *, empty_ok: bool) -> Any:
    reasons = Reasons()
    if empty_ok and not raw_body.strip():
        body: Any = {}
    else:
        body = parse_body(reasons, raw_body, content_type)
        if body is NOT_PARSED:
            raise InputValidationFailure(reasons.reason)
    if not isinstance(body, dict):
        raise InputValidationFailure({"body": ["Request body must be a JSON object"]})
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        for error in exc.errors():
            key = ".".join(str(p) for p in error["loc"]) or "body"
            reasons.add(key, str(error["msg"]))
        raise InputValidationFailure(reasons.reason) from None


def _instant(reasons: Reasons, key: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        reasons.add(key, invalid_date_message(key))
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def list_notifications(
    session: AsyncSession, *, access: Access, raw_body: bytes, content_type: str | None
) -> dict[str, Any]:
    """A page of the caller's notifications matching the filters, and the total."""
    request = _validated(raw_body, content_type, NotificationListRequest, empty_ok=True)
    reasons = Reasons()
    since = _instant(reasons, "from", request.from_)
    until = _instant(reasons, "to", request.to)
    reasons.raise_if_any()
    page, total = await repository.list_notifications(
        session,
        tenant_id=access.tenant_id,
        recipients=recipients(access),
        top=request.top,
        offset=request.offset,
        read=request.read,
        kind=request.type,
        object_id=request.ticket,
        since=since,
        until=until,
    )
    return {"value": [public(n) for n in page], "count": total}


async def count_unread(session: AsyncSession, *, access: Access) -> int:
    """How many of the caller's notifications are unread."""
    return await repository.count_unread(
        session, tenant_id=access.tenant_id, recipients=recipients(access)
    )


async def mark(
    session: AsyncSession,
    *,
    access: Access,
    notification_id: str,
    raw_body: bytes,
    content_type: str | None,
) -> dict[str, Any]:
    """Marks one of the caller's notifications read or unread."""
    try:
        key = uuid.UUID(notification_id)
    except ValueError:
        raise NotFound(f"Notification {notification_id} not found") from None
    request = _validated(raw_body, content_type, NotificationUpdate, empty_ok=False)
    notification = await repository.mark(
        session,
        tenant_id=access.tenant_id,
        recipients=recipients(access),
        notification_id=key,
        read=request.read,
    )
    if notification is None:
        raise NotFound(f"Notification {notification_id} not found")
    return public(notification)


async def mark_all_read(session: AsyncSession, *, access: Access) -> int:
    """Marks all of the caller's notifications read; returns how many changed."""
    return await repository.mark_all_read(
        session, tenant_id=access.tenant_id, recipients=recipients(access)
    )


async def stream(
    session: AsyncSession,
    *,
    request: Request,
    access: Access,
    hub: EventHub,
    heartbeat: float,
    expires_at: float | None = None,
) -> AsyncIterator[bytes]:
    """The caller's notifications as they are made (`connected`, `notification`,
    `heartbeat`, `error`); resumes after `Last-Event-ID`, or sends `reset` when it cannot
    (see ticketing.events.service.resume). It ends when the caller's token expires
    (`expires_at`; None: the request's bearer token's)."""
    last_event_id = parse_last_event_id(request.headers, hub.ids, access.tenant_id)
    hub.check_capacity()
    subscription = hub.subscribe(access.tenant_id)
    try:
        replay, last_sent, reset = await resume(
            session, subscription=subscription, last_event_id=last_event_id
        )
    except BaseException:
        hub.unsubscribe(subscription)
        raise
    mine = set(recipients(access))
    ids, tenant_id = hub.ids, access.tenant_id

    def render(event: Event) -> bytes:
        return b"".join(
            sse.frame(
                "notification", _public_from_event(row), ids.encode(tenant_id, event.position)
            )
            for row in event.payload.get("notifications", ())
            if row.get("recipient") in mine
        )

    opening: list[tuple[str, Any]] = [
        (
            "connected",
            {
                "clientId": str(uuid.uuid4()),
                "tenantId": str(access.tenant_id),
                "heartbeatSeconds": int(heartbeat) if heartbeat.is_integer() else heartbeat,
            },
        )
    ]
    if reset is not None:
        opening.append(("reset", {"reason": reset}))
    return sse.run_stream(
        hub,
        subscription,
        opening=opening,
        replay=replay,
        last_sent=last_sent,
        render=render,
        heartbeat=heartbeat,
        expires_at=expires_at if expires_at is not None else sse.token_expiry(request),
        user=stream_user(access),
    )
