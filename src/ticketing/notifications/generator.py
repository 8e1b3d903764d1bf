"""Which users an event notifies, and what it tells them.

Generators run inside the transaction that records the event (ticketing.events.outbox), so a
notification exists exactly when its event does. Recipients are usernames or emails, as
`submittedBy`, the watcher lists and the `assignee` field hold them; nobody is notified of
their own change.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ticketing.events import outbox
from ticketing.kit.time import utcnow

ASSIGNED = "assigned"
COMMENT = "comment"
STATUS_CHANGED = "status_changed"
SLA_BREACHED = "sla_breached"
TYPES = (ASSIGNED, COMMENT, STATUS_CHANGED, SLA_BREACHED)


def _people(ticket: Mapping[str, Any]) -> list[str]:
    """The submitter and the watchers of a ticket."""
    data = ticket.get("data") or {}
    people = [ticket["submitted_by"]]
    for key in ("ccWatchers", "toWatchers"):
        watchers = data.get(key)
        if isinstance(watchers, list):
            people.extend(w for w in watchers if isinstance(w, str))
    return people


def _actor_names(payload: Mapping[str, Any]) -> set[str]:
    actor = payload.get("actor") or {}
    return {v for v in (actor.get("username"), actor.get("email")) if isinstance(v, str)}


def _change(payload: Mapping[str, Any], field: str) -> dict[str, Any] | None:
    for change in payload.get("changes") or []:
        if isinstance(change, dict) and change.get("field") == field:
            return change
    return None


def notifications_for(
    kind: str, ticket: Mapping[str, Any], payload: dict[str, Any]
) -> list[dict[str, Any]]:
    """The notification rows an event makes."""
    actor = _actor_names(payload)
    notices: list[tuple[str, str, str, dict[str, Any]]] = []
    object_id = ticket["object_id"]
    assignee = _change(payload, "assignee")
    if assignee and isinstance(assignee.get("new"), str) and assignee["new"]:
        notices.append(
            (assignee["new"], ASSIGNED, f"{object_id} was assigned to you", {"assignee": assignee})
        )
    if kind == outbox.COMMENT_CREATED:
        comment = payload.get("comment") or {}
        # Internal comments are for agents; the people of a ticket may not be.
        if not comment.get("internal"):
            notices.extend(
                (person, COMMENT, f"New comment on {object_id}", {"comment": comment})
                for person in _people(ticket)
            )
    elif kind == outbox.TICKET_UPDATED:
        breached = [
            c["field"].removeprefix("sla.")
            for c in payload.get("changes") or []
            if isinstance(c, dict)
            and str(c.get("field", "")).startswith("sla.")
            and c.get("new") == "breached"
        ]
        if breached and isinstance(ticket.get("assignee"), str) and ticket["assignee"]:
            notices.append(
                (
                    ticket["assignee"],
                    SLA_BREACHED,
                    f"{object_id} breached its {' and '.join(breached)} SLA",
                    {"slas": breached},
                )
            )
        status = _change(payload, "status")
        if status:
            notices.extend(
                (
                    person,
                    STATUS_CHANGED,
                    f"{object_id} is now {status['new']}",
                    {"from": status["old"], "to": status["new"]},
                )
                for person in _people(ticket)
            )
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    now = utcnow()
    for recipient, notice_type, message, data in notices:
        if recipient in actor or (recipient, notice_type) in seen:
            continue
        seen.add((recipient, notice_type))
        rows.append(
            {
                "tenant_id": ticket["tenant_id"],
                "id": uuid.uuid4(),
                "recipient": recipient,
                "kind": notice_type,
                "ticket_id": ticket["id"],
                "object_id": object_id,
                "message": message,
                "data": {"summary": ticket["summary"], "actor": payload.get("actor"), **data},
                "read": False,
                "created_at": now,
            }
        )
    return rows


def install() -> None:
    """Makes every recorded event generate its notifications."""
    outbox.add_notification_generator(notifications_for)
