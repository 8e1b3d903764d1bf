"""A ticket after creation: read, update with etags, soft delete, history."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.auth.access import Access
from ticketing.events import outbox
from ticketing.kit.errors import (
    EtagMismatch,
    EtagRequired,
    InputValidationFailure,
    NotFound,
    PreconditionFailed,
    Reasons,
)
from ticketing.kit.time import isoformat, utcnow
from ticketing.tickets import repository
from ticketing.tickets.public import ticket_public
from ticketing.tickets.service import actor, last_updated_by
from ticketing.tickets.validation import NOT_PARSED, parse_body, validate_update


async def find_ticket(
    session: AsyncSession, *, access: Access, object_id: str, for_update: bool = False
) -> dict[str, Any]:
    """Gets a live ticket the caller may see, or answers 404."""
    row = await repository.get_ticket(
        session,
        tenant_id=access.tenant_id,
        object_id=object_id,
        submitted_by=access.own_only,
        for_update=for_update,
    )
    if row is None:
        raise NotFound(f"Ticket {object_id} not found")
    return dict(row)


def _etag_value(header: str) -> str:
    value = header.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def etag_matches(header: str | None, etag: uuid.UUID) -> bool:
    """Whether an If-None-Match / If-Match header names this etag (or is `*`)."""
    if header is None:
        return False
    values = [_etag_value(part) for part in header.split(",")]
    return "*" in values or str(etag) in values


def _expected_etag(body: dict[str, Any], if_match: str | None) -> tuple[str, bool]:
    """The etag the change is based on, and whether it came from If-Match."""
    if "etag" in body and body["etag"] is not None:
        etag = body["etag"]
        if not isinstance(etag, str):
            raise InputValidationFailure({"etag": ["etag must be a string"]})
        return etag, False
    if if_match:
        return _etag_value(if_match), True
    raise EtagRequired()


def _stale(from_header: bool) -> EtagMismatch:
    return PreconditionFailed() if from_header else EtagMismatch()


async def update_ticket(
    session: AsyncSession,
    *,
    access: Access,
    object_id: str,
    raw_body: bytes,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """Applies an update if the caller's etag is current; returns the ticket as it now is."""
    current = await find_ticket(session, access=access, object_id=object_id)
    reasons = Reasons()
    body = parse_body(reasons, raw_body, headers.get("content-type"))
    if body is NOT_PARSED or not isinstance(body, dict):
        if body is not NOT_PARSED:
            reasons.add("body", "Request body must be a JSON object")
        raise InputValidationFailure(reasons.reason)
    expected, from_header = _expected_etag(body, headers.get("if-match"))
    if expected != str(current["etag"]):
        raise _stale(from_header)
    ticket_type = access.catalog.ticket_types.get(current["item_type_id"])
    if ticket_type is None:
        raise InputValidationFailure(
            {"itemTypeId": [f"Item type {current['item_type_id']} no longer exists"]}
        )
    request = validate_update(body, ticket_type=ticket_type, current=current)

    data = dict(current["data"])
    changes: list[dict[str, Any]] = []
    for field_id, value in request.values.items():
        old = data.get(field_id)
        if value is None:
            data.pop(field_id, None)
        else:
            data[field_id] = value
        if old != value:
            changes.append({"field": field_id, "old": old, "new": value})
    for key, watchers in request.watchers.items():
        if data.get(key) != watchers:
            changes.append({"field": key, "old": data.get(key), "new": watchers})
            data[key] = watchers
    values: dict[str, Any] = {}
    if request.summary is not None and request.summary != current["summary"]:
        changes.append({"field": "summary", "old": current["summary"], "new": request.summary})
        values["summary"] = request.summary
    if request.status is not None and request.status != current["status_type"]:
        category = next(
            s["category"] for s in ticket_type.workflow["statuses"] if s["name"] == request.status
        )
        changes.append({"field": "status", "old": current["status_type"], "new": request.status})
        values["status_type"] = request.status
        values["status_category"] = category
    data["lastUpdatedBy"] = last_updated_by(access.principal)
    updated = await _write_version(
        session,
        access=access,
        current=current,
        values={**values, "data": data},
        action="update",
        changes=changes,
    )
    if updated is None:  # another update won the race since we read the ticket
        raise _stale(from_header)
    if "status_type" in values:
        await repository.bump_counters(
            session,
            tenant_id=access.tenant_id,
            deltas={
                repository.status_counter(current["status_type"]): -1,
                repository.status_counter(values["status_type"]): 1,
            },
        )
    return ticket_public(dict(updated))


async def delete_ticket(
    session: AsyncSession, *, access: Access, object_id: str, if_match: str | None
) -> None:
    """Soft-deletes a ticket if If-Match names its current etag; its display ID stays taken."""
    # The row is locked before the counters, the same order an update takes them in.
    current = await find_ticket(session, access=access, object_id=object_id, for_update=True)
    if not if_match:
        raise EtagRequired("The current etag is required in the If-Match header")
    if not etag_matches(if_match, current["etag"]):
        raise PreconditionFailed()
    counters = await repository.bump_counters(
        session,
        tenant_id=access.tenant_id,
        deltas={
            repository.DELETED_COUNTER: 1,
            repository.LIVE_COUNTER: -1,
            repository.status_counter(current["status_type"]): -1,
        },
    )
    sequence = counters[repository.DELETED_COUNTER]
    updated = await _write_version(
        session,
        access=access,
        current=current,
        values={"deleted_seq": sequence},
        action="delete",
        changes=[{"field": "deleted_seq", "old": current["deleted_seq"], "new": sequence}],
    )
    if updated is None:
        raise PreconditionFailed()


async def _write_version(
    session: AsyncSession,
    *,
    access: Access,
    current: dict[str, Any],
    values: dict[str, Any],
    action: str,
    changes: list[dict[str, Any]],
) -> RowMapping | None:
    """Writes the next version of a ticket if it is still at `current`'s etag, and its history
    entry; None (nothing written) when someone else changed it first."""
    now = utcnow()
    version = current["version"] + 1
    updated = await repository.update_ticket(
        session,
        tenant_id=access.tenant_id,
        ticket_id=current["id"],
        expected_etag=current["etag"],
        values={**values, "etag": uuid.uuid4(), "version": version, "updated_at": now},
    )
    if updated is not None:
        await repository.insert_history(
            session,
            tenant_id=access.tenant_id,
            ticket_id=current["id"],
            version=version,
            action=action,
            at=now,
            by=actor(access.principal),
            changes=changes,
        )
        await outbox.record(
            session,
            kind=outbox.TICKET_DELETED if action == "delete" else outbox.TICKET_UPDATED,
            ticket=dict(updated),
            actor=actor(access.principal),
            changes=changes,
        )
    return updated


async def ticket_history(
    session: AsyncSession, *, access: Access, object_id: str
) -> list[dict[str, Any]]:
    """Every change of a ticket, creation first."""
    current = await find_ticket(session, access=access, object_id=object_id)
    entries = await repository.list_history(
        session, tenant_id=access.tenant_id, ticket_id=current["id"]
    )
    return [
        {
            "version": entry.version,
            "action": entry.action,
            "at": isoformat(entry.changed_at),
            "by": entry.changed_by,
            "changes": entry.changes,
        }
        for entry in entries
    ]
