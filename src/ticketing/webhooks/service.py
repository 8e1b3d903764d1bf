"""A tenant's webhook deliveries, for its admins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.auth.access import Access
from ticketing.events.ids import EventIds
from ticketing.kit.errors import InputValidationFailure, NotFound, PermissionFailure, Reasons
from ticketing.kit.numbers import parse_digits
from ticketing.kit.time import isoformat
from ticketing.models import WebhookDelivery
from ticketing.webhooks import repository

ADMIN_ROLE = "tenant_admin"


def public(delivery: WebhookDelivery, ids: EventIds) -> dict[str, Any]:
    return {
        "eventId": ids.encode(delivery.tenant_id, delivery.event_id),
        "type": delivery.kind,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "createdAt": isoformat(delivery.created_at),
        "nextAttemptAt": isoformat(delivery.next_attempt_at)
        if delivery.status == repository.PENDING
        else None,
        "deliveredAt": isoformat(delivery.delivered_at) if delivery.delivered_at else None,
        "log": delivery.log,
    }


def _paging(query: Mapping[str, str]) -> tuple[int, int]:
    reasons = Reasons()
    values = {}
    for name, default, low, high in (("top", 30, 1, 100), ("offset", 0, 0, 10**9)):
        raw = query.get(name)
        if raw is None:
            values[name] = default
        elif (number := parse_digits(raw)) is None or not low <= number <= high:
            reasons.add(name, f"{name} must be a whole number from {low} to {high}")
        else:
            values[name] = number
    if reasons.reason:
        raise InputValidationFailure(reasons.reason)
    return values["top"], values["offset"]


async def deliveries(
    session: AsyncSession,
    *,
    access: Access,
    webhook_id: str,
    query: Mapping[str, str],
    ids: EventIds,
) -> dict[str, Any]:
    """A page of a webhook's deliveries, newest event first, each with its attempts, and how
    many there are in all (admins only)."""
    if ADMIN_ROLE not in access.principal.roles:
        raise PermissionFailure("You do not have the required permissions to read webhooks")
    top, offset = _paging(query)
    webhook = await repository.get_webhook(
        session, tenant_id=access.tenant_id, webhook_id=webhook_id
    )
    if webhook is None:
        raise NotFound(f"Webhook {webhook_id} not found")
    found, total = await repository.list_deliveries(
        session, tenant_id=access.tenant_id, webhook_id=webhook_id, top=top, offset=offset
    )
    return {"value": [public(d, ids) for d in found], "count": total}
