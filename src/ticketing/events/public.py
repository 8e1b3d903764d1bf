"""What readers of the outbox show of an event's ticket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ticketing.events.repository import Event
from ticketing.tickets.public import ticket_public

_TIMES = ("created_at", "updated_at")


def event_ticket(event: Event) -> dict[str, Any]:
    """The public ticket as the event recorded it."""
    row: dict[str, Any] = dict(event.payload["ticket"])
    for key in _TIMES:
        if isinstance(row.get(key), str):
            row[key] = datetime.fromisoformat(row[key])
    return ticket_public(row)
