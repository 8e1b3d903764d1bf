"""Relations between tickets, and merging one ticket into another.

Every relation write and every merge of a tenant takes the tenant's relation lock first
(repository.lock_relation_writes), then locks the tickets it reads, then (merges) the
counters: the order updates and deletes take row and counter locks in, so none of them can
wait on another in a circle. Relation changes record a history entry and an event
(`ticket.updated`) on both tickets and leave their etags and versions alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ticketing.auth.access import Access
from ticketing.events import outbox
from ticketing.kit.errors import InputValidationFailure, NotFound, Reasons, TicketingError
from ticketing.kit.time import utcnow
from ticketing.relations import repository
from ticketing.relations.rules import (
    ACYCLIC,
    INVERSE,
    SYMMETRIC,
    VIEWS,
    check_relation,
    view_name,
)
from ticketing.tickets import lifecycle
from ticketing.tickets import repository as tickets
from ticketing.tickets.public import ticket_public
from ticketing.tickets.service import actor, last_updated_by
from ticketing.tickets.validation import NOT_PARSED, parse_body

Executor = AsyncSession | AsyncConnection
DONE_CATEGORY = "Done Category"
MERGE_KEYS = ("into", "etag")


class RelationExists(TicketingError):
    """The relation asked for is already there."""

    status = 409
    code = "RELATION_EXISTS"
    default_message = "The tickets are already related this way"


def _related_public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "objectId": row["object_id"],
        "summary": row["summary"],
        "status_type": row["status_type"],
        "status_category": row["status_category"],
    }


async def _relations_of(db: Executor, *, access: Access, ticket_id: uuid.UUID) -> dict[str, Any]:
    """A ticket's relations under every view name, each to a live ticket the caller may see."""
    view: dict[str, Any] = {name: [] for name in VIEWS}
    view["parent"] = None
    rows = await repository.related_tickets(
        db, tenant_id=access.tenant_id, ticket_id=ticket_id, submitted_by=access.own_only
    )
    for stored, as_source, row in rows:
        name = view_name(stored, as_source=as_source)
        if name == "parent":
            view["parent"] = _related_public(row)
        else:
            view[name].append(_related_public(row))
    return view


def _stored(name: str, this: uuid.UUID, other: uuid.UUID) -> tuple[uuid.UUID, str, uuid.UUID]:
    """(source, stored type, target) of the relation `name` from `this` ticket to `other`."""
    view = VIEWS[name]
    if view.stored == SYMMETRIC:
        low, high = sorted((this, other))
        return low, SYMMETRIC, high
    if view.as_source:
        return this, view.stored, other
    return other, view.stored, this


async def _record_change(
    db: Executor,
    *,
    ticket: Mapping[str, Any],
    action: str,
    by: dict[str, Any],
    at: datetime,
    relation: dict[str, str],
    added: bool,
) -> None:
    """A ticket's history entry and event for a relation added to or removed from it (as the
    ticket sees it). The event is a `ticket.updated` of the ticket as it is, at its version:
    streams, webhooks and notifications learn of the change like of any other."""
    changes = [
        {
            "field": "relation",
            "old": None if added else relation,
            "new": relation if added else None,
        }
    ]
    await tickets.append_history(
        db,
        tenant_id=ticket["tenant_id"],
        ticket_id=ticket["id"],
        version=ticket["version"],
        action=action,
        at=at,
        by=by,
        changes=changes,
    )
    await outbox.record(db, kind=outbox.TICKET_UPDATED, ticket=ticket, actor=by, changes=changes)


async def _record_both(
    db: Executor,
    *,
    access: Access,
    action: str,
    name: str,
    this: Mapping[str, Any],
    other: Mapping[str, Any],
    added: bool,
) -> None:
    """A history entry and an event on each ticket, naming the relation as that ticket
    sees it."""
    now = utcnow()
    by = actor(access.principal)
    for ticket, seen_as, related in ((this, name, other), (other, INVERSE[name], this)):
        await _record_change(
            db,
            ticket=ticket,
            action=action,
            by=by,
            at=now,
            relation={"type": seen_as, "objectId": related["object_id"]},
            added=added,
        )


async def _relate(
    db: Executor, *, access: Access, name: str, this: Mapping[str, Any], other: Mapping[str, Any]
) -> None:
    """Stores the relation `name` from `this` to `other` after checking the rules; the
    caller holds the tenant's relation lock and both tickets' row locks."""
    source, stored, target = _stored(name, this["id"], other["id"])
    tenant_id = access.tenant_id
    if stored == "parent":
        current = await repository.parent_of(db, tenant_id=tenant_id, ticket_id=source)
        if current is not None and current[1] != target:
            if current[2]:
                # A deleted parent no longer counts: the new one replaces it.
                await repository.delete_relation(
                    db, tenant_id=tenant_id, source_id=source, type=stored, target_id=current[1]
                )
            else:
                child = this if source == this["id"] else other
                raise InputValidationFailure(
                    {"type": [f"Ticket {child['object_id']} already has a parent ({current[0]})"]}
                )
    if stored in ACYCLIC and await repository.reaches(
        db, tenant_id=tenant_id, type=stored, start=target, goal=source
    ):
        raise InputValidationFailure(
            {"objectId": [f"{this['object_id']} {name} {other['object_id']} would create a cycle"]}
        )
    inserted = await repository.insert_relation(
        db,
        tenant_id=tenant_id,
        source_id=source,
        type=stored,
        target_id=target,
        at=utcnow(),
        by=actor(access.principal),
    )
    if not inserted:
        raise RelationExists(
            f"{this['object_id']} is already related to {other['object_id']} as {name}"
        )
    await _record_both(
        db, access=access, action="relate", name=name, this=this, other=other, added=True
    )


class NewTicketRelation:
    """The `ticketRelation` of a create, written in the create's transaction: the related
    ticket is looked up and share-locked first (so it cannot be deleted before the create
    commits), the relation and the related ticket's history entry and event once the ticket
    exists. The new ticket's own create entry and event name the relation."""

    def __init__(self, access: Access, relation: dict[str, str]) -> None:
        self.access = access
        self.relation = relation
        self.target: dict[str, Any] | None = None

    async def before(self, conn: AsyncConnection) -> None:
        tenant_id = self.access.tenant_id
        await repository.lock_relation_writes(conn, tenant_id=tenant_id)
        object_id = self.relation["objectId"]
        self.target = await repository.find_ticket(
            conn, tenant_id=tenant_id, object_id=object_id, submitted_by=self.access.own_only
        )
        if self.target is None:
            raise InputValidationFailure(
                {"ticketRelation": [f"Related ticket {object_id} not found"]}
            )

    async def after(self, conn: AsyncConnection, *, ticket_id: uuid.UUID, object_id: str) -> None:
        assert self.target is not None
        name = self.relation["type"]
        source, stored, target = _stored(name, ticket_id, self.target["id"])
        now = utcnow()
        by = actor(self.access.principal)
        await repository.insert_relation(
            conn,
            tenant_id=self.access.tenant_id,
            source_id=source,
            type=stored,
            target_id=target,
            at=now,
            by=by,
        )
        await _record_change(
            conn,
            ticket=self.target,
            action="relate",
            by=by,
            at=now,
            relation={"type": INVERSE[name], "objectId": object_id},
            added=True,
        )


def _json_object(raw_body: bytes, content_type: str | None) -> dict[str, Any]:
    reasons = Reasons()
    body = parse_body(reasons, raw_body, content_type)
    if body is NOT_PARSED or not isinstance(body, dict):
        if body is not NOT_PARSED:
            reasons.add("body", "Request body must be a JSON object")
        raise InputValidationFailure(reasons.reason)
    return body


async def _locked(
    db: Executor, *, access: Access, object_id: str, for_update: bool = False
) -> dict[str, Any]:
    """The ticket addressed by the URL, locked; 404 when the caller may not see it."""
    row = await repository.find_ticket(
        db,
        tenant_id=access.tenant_id,
        object_id=object_id,
        submitted_by=access.own_only,
        for_update=for_update,
    )
    if row is None:
        raise NotFound(f"Ticket {object_id} not found")
    return row


async def list_relations(
    session: AsyncSession, *, access: Access, object_id: str
) -> dict[str, Any]:
    """A ticket's relations, each related ticket with its summary and status."""
    ticket = await lifecycle.find_ticket(session, access=access, object_id=object_id)
    return await _relations_of(session, access=access, ticket_id=ticket["id"])


async def add_relation(
    session: AsyncSession,
    *,
    access: Access,
    object_id: str,
    raw_body: bytes,
    content_type: str | None,
) -> dict[str, Any]:
    """Relates a ticket to another; returns the ticket's relations as they now are."""
    await lifecycle.find_ticket(session, access=access, object_id=object_id)
    reasons = Reasons()
    relation = check_relation(reasons, _json_object(raw_body, content_type), key=None)
    reasons.raise_if_any()
    assert relation is not None
    await repository.lock_relation_writes(session, tenant_id=access.tenant_id)
    this = await _locked(session, access=access, object_id=object_id)
    other_id = relation["objectId"]
    if other_id == object_id:
        raise InputValidationFailure({"objectId": ["A ticket cannot be related to itself"]})
    other = await repository.find_ticket(
        session, tenant_id=access.tenant_id, object_id=other_id, submitted_by=access.own_only
    )
    if other is None:
        raise InputValidationFailure({"objectId": [f"Related ticket {other_id} not found"]})
    await _relate(session, access=access, name=relation["type"], this=this, other=other)
    return await _relations_of(session, access=access, ticket_id=this["id"])


async def remove_relation(
    session: AsyncSession, *, access: Access, object_id: str, name: str, other_id: str
) -> dict[str, Any]:
    """Removes the relation `name` from a ticket to another (any key of the relations view);
    returns the ticket's relations as they now are."""
    await lifecycle.find_ticket(session, access=access, object_id=object_id)
    if name not in VIEWS:
        raise InputValidationFailure({"type": [f"type must be one of: {', '.join(VIEWS)}"]})
    await repository.lock_relation_writes(session, tenant_id=access.tenant_id)
    this = await _locked(session, access=access, object_id=object_id)
    other = await _locked(session, access=access, object_id=other_id)
    source, stored, target = _stored(name, this["id"], other["id"])
    removed = await repository.delete_relation(
        session, tenant_id=access.tenant_id, source_id=source, type=stored, target_id=target
    )
    if not removed:
        raise NotFound(f"Ticket {object_id} has no relation {name} {other_id}")
    await _record_both(
        session, access=access, action="unrelate", name=name, this=this, other=other, added=False
    )
    return await _relations_of(session, access=access, ticket_id=this["id"])


async def merge_ticket(
    session: AsyncSession,
    *,
    access: Access,
    object_id: str,
    raw_body: bytes,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """Merges a ticket into another if the caller's etag is current: the ticket moves to the
    other (`moved_to`) in the first Done-category status of its workflow, its SLA clocks
    stopped as an update to that status stops them, and leaves the default lists; the other
    ticket records the merge. Returns the merged ticket."""
    await lifecycle.find_ticket(session, access=access, object_id=object_id)
    body = _json_object(raw_body, headers.get("content-type"))
    reasons = Reasons()
    for key in body:
        if key not in MERGE_KEYS:
            reasons.add(key, f"Unknown key {key}")
    into = body.get("into")
    if not isinstance(into, str) or not into.strip():
        reasons.add("into", "into must be the display ID of the ticket to merge into")
    reasons.raise_if_any()
    assert isinstance(into, str)
    precondition = lifecycle.precondition(body, headers)

    await repository.lock_relation_writes(session, tenant_id=access.tenant_id)
    current = await _locked(session, access=access, object_id=object_id, for_update=True)
    precondition.check(current["etag"])
    if current["moved_to"] is not None:
        raise InputValidationFailure(
            {"objectId": [f"Ticket {object_id} was already merged into {current['moved_to']}"]}
        )
    if into == object_id:
        raise InputValidationFailure({"into": ["A ticket cannot be merged into itself"]})
    target = await repository.find_ticket(
        session, tenant_id=access.tenant_id, object_id=into, submitted_by=None
    )
    if target is None:
        raise InputValidationFailure({"into": [f"Ticket {into} not found"]})
    if target["moved_to"] is not None:
        raise InputValidationFailure(
            {"into": [f"Ticket {into} was merged into {target['moved_to']}"]}
        )
    done = _done_status(access, current["item_type_id"])

    data = dict(current["data"])
    data["lastUpdatedBy"] = last_updated_by(access.principal)
    values = {
        "moved_to": into,
        "status_type": done["name"],
        "status_category": done["category"],
        "data": data,
    }
    # Entering the Done category moves the clocks as an update to that status does.
    clocks = lifecycle.move_clocks(access, current, values=values)
    updated = await lifecycle.write_version(
        session,
        access=access,
        current=current,
        values={**values, **clocks.values},
        action="merge",
        changes=[
            {"field": "moved_to", "old": None, "new": into},
            {"field": "status", "old": current["status_type"], "new": done["name"]},
            *clocks.changes,
        ],
    )
    if updated is None:
        raise precondition.stale()
    # A merged ticket leaves the default lists, so it leaves the counters that answer them.
    await tickets.bump_counters(
        session,
        tenant_id=access.tenant_id,
        deltas={tickets.status_counter(current["status_type"]): -1},
    )
    await tickets.append_history(
        session,
        tenant_id=access.tenant_id,
        ticket_id=target["id"],
        version=target["version"],
        action="merge",
        at=updated["updated_at"],
        by=actor(access.principal),
        changes=[{"field": "mergedFrom", "old": None, "new": object_id}],
    )
    return ticket_public(dict(updated))


def _done_status(access: Access, item_type_id: str) -> dict[str, str]:
    ticket_type = access.catalog.ticket_types.get(item_type_id)
    statuses = ticket_type.workflow.get("statuses", []) if ticket_type else []
    done = next((s for s in statuses if s.get("category") == DONE_CATEGORY), None)
    if done is None:
        raise InputValidationFailure(
            {"objectId": [f"The workflow of item type {item_type_id} has no Done-category status"]}
        )
    return {"name": done["name"], "category": done["category"]}
