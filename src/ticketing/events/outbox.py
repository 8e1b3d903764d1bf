"""The outbox: every ticket change writes an event row in the transaction of the change.

Nothing is announced that did not commit, and nothing that committed is lost, because readers
only ever read committed rows of `ticket_events`; the process that wrote them only wakes
readers after its commit.

Order. Readers follow one number, the event's `position`, and resume from the last one they
saw (`position > last_seen`), so a position must never become readable after a greater one.
An id taken from a sequence while writing does not have that property: a transaction can
take id 9, then commit after another one that took id 10. A per-tenant counter row locked
until commit would have it, but would serialise every write of a tenant on one more hot row.
So on PostgreSQL positions are given after commit instead (`ticketing_sequence_events`,
migration 0009): every event records its transaction's id (`xid`); the numbering step takes
only events whose transaction is older than the oldest transaction still running
(`pg_snapshot_xmin`), which have all ended, so every event that could still commit is newer
and will be numbered later, behind them; numbering steps follow one another under an
advisory lock. The write path stays one statement and touches no shared row; an event waits
for any longer transaction that was running when it committed (create, update and comment
transactions are short). On SQLite writers are serial: the position is the insertion id.

Wake-ups. No NOTIFY is sent inside a write transaction (PostgreSQL serialises commits that
notify). After a commit that wrote events, the process wakes its own reader (the hub) and
asks it to send one NOTIFY on its listening connection, coalesced over a short interval, so
other processes wake too; every reader also polls as a safety net.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from ticketing.events import repository
from ticketing.kit.time import utcnow

# Kinds of event.
TICKET_CREATED = "ticket.created"
TICKET_UPDATED = "ticket.updated"
TICKET_DELETED = "ticket.deleted"
COMMENT_CREATED = "comment.created"

# A generator turns an event (kind, ticket row, payload) into notification rows for its
# recipients; registered by ticketing.notifications, extensible by other packages.
NotificationGenerator = Callable[[str, Mapping[str, Any], dict[str, Any]], list[dict[str, Any]]]
_generators: list[NotificationGenerator] = []
# Called after a commit that wrote events (the process's hub registers itself).
_on_commit: list[Callable[[], None]] = []

_WROTE = "ticketing.events.wrote"


def add_notification_generator(generator: NotificationGenerator) -> None:
    """Makes `generator` run on every event recorded from now on."""
    if generator not in _generators:
        _generators.append(generator)


def on_commit(callback: Callable[[], None]) -> Callable[[], None]:
    """Calls `callback` after every commit of this process that wrote events; returns a
    function that removes it."""
    _on_commit.append(callback)
    return lambda: _on_commit.remove(callback)


def committed() -> None:
    """Tells the process's readers that a transaction that wrote events has committed."""
    for callback in list(_on_commit):
        callback()


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_WROTE, False):
        committed()


@sa_event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_WROTE, None)


def jsonable_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ticket row as JSON values, the way PostgreSQL's to_jsonb writes it."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        out[key] = value
    return out


async def record(
    db: AsyncSession | AsyncConnection,
    *,
    kind: str,
    ticket: Mapping[str, Any],
    actor: dict[str, Any],
    changes: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Writes the event of a change of `ticket` (its row as it now is) in the caller's
    transaction, with the notifications it makes."""
    payload: dict[str, Any] = {
        "ticket": jsonable_row(ticket),
        "changes": changes or [],
        "actor": actor,
        **(extra or {}),
    }
    notifications = [row for generate in _generators for row in generate(kind, ticket, payload)]
    if notifications:
        payload["notifications"] = [jsonable_row(row) for row in notifications]
    await repository.insert_event(
        db,
        values={
            "tenant_id": ticket["tenant_id"],
            "kind": kind,
            "ticket_id": ticket["id"],
            "object_id": ticket["object_id"],
            "version": ticket["version"],
            "submitted_by": ticket["submitted_by"],
            "payload": payload,
            "created_at": utcnow(),
        },
    )
    await repository.insert_notifications(db, rows=notifications)
    if isinstance(db, AsyncSession):
        db.info[_WROTE] = True
