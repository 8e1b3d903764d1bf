"""A ticket after creation: read, update with etags, soft delete, history."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.attachments.service import FileBinding
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
from ticketing.kit.etags import EntityTag, EntityTags, parse_entity_tag, parse_entity_tags
from ticketing.kit.time import isoformat, utcnow
from ticketing.queues import service as routing
from ticketing.sla import service as sla_service
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


def if_none_match_hits(header: str | None, etag: uuid.UUID) -> bool:
    """Whether If-None-Match names this etag (weak comparison, as for any read) or is `*`."""
    return header is not None and parse_entity_tags(header).weak_match(str(etag))


@dataclass(frozen=True)
class _Precondition:
    """The etag an update is based on: from If-Match, from the body, or both (agreeing)."""

    if_match: EntityTags | None
    body_etag: EntityTag | None

    def check(self, current: uuid.UUID) -> None:
        """Answers 412 (If-Match) or 409 (body etag) unless the change is based on `current`."""
        if self.if_match is not None and not self.if_match.strong_match(str(current)):
            raise PreconditionFailed()
        etag = self.body_etag
        if etag is not None and (etag.weak or etag.opaque != str(current)):
            raise EtagMismatch()

    def stale(self) -> EtagMismatch:
        """The answer when another write got in between reading and writing the ticket."""
        return PreconditionFailed() if self.if_match is not None else EtagMismatch()


def _if_match(headers: Mapping[str, str]) -> EntityTags | None:
    header = headers.get("if-match")
    return parse_entity_tags(header) if header and header.strip() else None


def _precondition(body: dict[str, Any], if_match: EntityTags | None) -> _Precondition:
    """The update's etag: the body's `etag` (quoted or bare) or If-Match; when both are sent
    they must name the same etag, since a client that disagrees with itself has a bug that
    "changed by someone else" would hide."""
    body_etag = None
    if body.get("etag") is not None:
        if not isinstance(body["etag"], str):
            raise InputValidationFailure({"etag": ["etag must be a string"]})
        body_etag = parse_entity_tag(body["etag"])
    if body_etag is None and if_match is None:
        raise EtagRequired()
    if body_etag is not None and if_match is not None and not if_match.names(body_etag.opaque):
        raise InputValidationFailure(
            {"etag": ["The body etag and the If-Match header disagree; send one etag"]}
        )
    return _Precondition(if_match, body_etag)


async def update_ticket(
    session: AsyncSession,
    *,
    access: Access,
    object_id: str,
    raw_body: bytes,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """Applies an update if the caller's etag is current; returns the ticket as it now is.

    An update that changes nothing (only the etag, or every value as it already is) writes
    nothing: the ticket keeps its etag and version, and no history entry is added.
    """
    if_match = _if_match(headers)
    # `If-Match: *` is satisfied by whatever version is current, so that version is locked
    # instead of being compared with the one written.
    current = await find_ticket(
        session,
        access=access,
        object_id=object_id,
        for_update=if_match is not None and if_match.any,
    )
    reasons = Reasons()
    body = parse_body(reasons, raw_body, headers.get("content-type"))
    if body is NOT_PARSED or not isinstance(body, dict):
        if body is not NOT_PARSED:
            reasons.add("body", "Request body must be a JSON object")
        raise InputValidationFailure(reasons.reason)
    precondition = _precondition(body, if_match)
    precondition.check(current["etag"])
    ticket_type = access.catalog.ticket_types.get(current["item_type_id"])
    if ticket_type is None:
        raise InputValidationFailure(
            {"itemTypeId": [f"Item type {current['item_type_id']} no longer exists"]}
        )
    # Routing keys (priority, queueId, assignee) are checked with the rest, reported at once.
    routing_body = {k: body.pop(k) for k in routing.ROUTING_KEYS if k in body}
    routing_reasons = Reasons()
    route = await routing.check_routing_update(
        session, routing_reasons, access=access, ticket=current, body=routing_body
    )
    try:
        request = validate_update(body, ticket_type=ticket_type, current=current)
    except InputValidationFailure as failure:
        raise InputValidationFailure({**routing_reasons.reason, **failure.reason}) from None
    routing_reasons.raise_if_any()

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
    files = FileBinding(access, request.attachments) if request.attachments else None
    if files is not None:
        attachments = {k: list(v) for k, v in (current["attachments"] or {}).items()}
        for key, added in (await files.claim(session)).items():
            attachments[key] = [*attachments.get(key, []), *added]
            old = [a["id"] for a in (current["attachments"] or {}).get(key, [])]
            new = [a["id"] for a in attachments[key]]
            changes.append({"field": f"attachments.{key}", "old": old, "new": new})
        values["attachments"] = attachments
    desk = access.catalog.desk
    derived = routing.priority_from_fields(
        desk, ticket_type_id=ticket_type.id, changed=request.values, data=data
    )
    if derived is not None and "priority" not in routing_body:
        routing.apply_change(route, "priority", "priority", current["priority"], derived)
    changes += route.changes
    if not changes:
        return ticket_public(current)
    data["lastUpdatedBy"] = last_updated_by(access.principal)
    if current["sla"] is not None and ("status_type" in values or route.priority is not None):
        # A comment can stop a clock without a new etag, so the clocks are moved from the
        # row as it is now, locked until this write commits.
        locked = await find_ticket(session, access=access, object_id=object_id, for_update=True)
        if locked["etag"] != current["etag"]:
            raise precondition.stale()
        current = locked
    clocks = move_clocks(access, current, values=values, priority=route.priority)
    changes += clocks.changes
    updated = await _write_version(
        session,
        access=access,
        current=current,
        values={**values, **route.values, **clocks.values, "data": data},
        action="update",
        changes=changes,
    )
    if updated is None:  # another update won the race since we read the ticket
        raise precondition.stale()
    if files is not None:
        await files.bind(session, current["id"])
    # A merged ticket is out of the counters already (ticketing.relations merges).
    if "status_type" in values and current["moved_to"] is None:
        await repository.bump_counters(
            session,
            tenant_id=access.tenant_id,
            deltas={
                repository.status_counter(current["status_type"]): -1,
                repository.status_counter(values["status_type"]): 1,
            },
        )
    return ticket_public(dict(updated))


def move_clocks(
    access: Access,
    current: Mapping[str, Any],
    *,
    values: Mapping[str, Any],
    priority: str | None = None,
) -> sla_service.SlaUpdate:
    """How a write of `values` (a new `status_type` / `status_category`) and a new priority
    move a ticket's SLA clocks (issue 10: response met on entering In-Progress, resolution
    on entering Done, pauses, reopens); shared by updates and merges."""
    status = (values["status_type"], values["status_category"]) if "status_type" in values else None
    return sla_service.on_change(
        access.catalog.desk, current, at=utcnow(), status=status, priority=priority
    )


async def delete_ticket(
    session: AsyncSession, *, access: Access, object_id: str, if_match: str | None
) -> None:
    """Soft-deletes a ticket if If-Match names its current etag; its display ID stays taken."""
    # The row is locked before the counters, the same order an update takes them in.
    current = await find_ticket(session, access=access, object_id=object_id, for_update=True)
    if not if_match or not if_match.strip():
        raise EtagRequired("The current etag is required in the If-Match header")
    if not parse_entity_tags(if_match).strong_match(str(current["etag"])):
        raise PreconditionFailed()
    deltas = {repository.DELETED_COUNTER: 1}
    if current["moved_to"] is None:  # a merged ticket left the other counters when merged
        deltas[repository.status_counter(current["status_type"])] = -1
    counters = await repository.bump_counters(session, tenant_id=access.tenant_id, deltas=deltas)
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


async def write_clock_change(
    session: AsyncSession,
    *,
    access: Access,
    current: dict[str, Any],
    update: sla_service.SlaUpdate,
    action: str,
    at: datetime,
) -> dict[str, Any]:
    """Writes a change of a ticket's SLA clocks alone (an agent's public comment meeting the
    response clock) in place: the ticket keeps its etag, version and `updated_at` (issue 3:
    a comment does not change the etag), the history gets the next entry of the current
    version, as a relation change does, and a `ticket.updated` event carries the ticket with
    its new clocks. The caller holds the row lock; returns the row as it now is."""
    updated = await repository.update_ticket(
        session,
        tenant_id=access.tenant_id,
        ticket_id=current["id"],
        expected_etag=current["etag"],
        values=update.values,
    )
    if updated is None:  # the caller holds the row lock, so nobody else can have written
        raise PreconditionFailed()
    by = actor(access.principal)
    await repository.append_history(
        session,
        tenant_id=access.tenant_id,
        ticket_id=current["id"],
        version=current["version"],
        action=action,
        at=at,
        by=by,
        changes=update.changes,
    )
    ticket = dict(updated)
    await outbox.record(
        session, kind=outbox.TICKET_UPDATED, ticket=ticket, actor=by, changes=update.changes
    )
    return ticket


def not_modified(header: str | None, ticket: Mapping[str, Any]) -> bool:
    """Whether a conditional GET may answer 304: If-None-Match names the ticket's etag and
    its clocks have not changed in place since that version was written (a comment that
    met the response clock keeps the etag, so a copy cached before it would be stale)."""
    return if_none_match_hits(header, ticket["etag"]) and not sla_service.changed_in_place(
        ticket.get("sla"), since=ticket["updated_at"]
    )


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


# --- the versioned write and etag rules, shared with merges (ticketing.relations) ---------


def precondition(body: dict[str, Any], headers: Mapping[str, str]) -> _Precondition:
    """The etag a write of `body` is based on (body `etag` or If-Match), as updates take it."""
    return _precondition(body, _if_match(headers))


write_version = _write_version
