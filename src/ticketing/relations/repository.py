"""Relation queries: the only place relation SQL is written."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Uuid, and_, delete, func, literal, or_, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from ticketing.models import Ticket, TicketRelation
from ticketing.tickets.repository import NOT_DELETED, Executor, scoped

# The first key of the advisory lock that serialises a tenant's relation writes and merges
# (the second is derived from the tenant), apart from the one-key locks of the migrations.
_RELATION_LOCK_CLASS = 0x7E1A


def _dialect(db: Executor) -> str:
    bind = db.get_bind() if isinstance(db, AsyncSession) else db
    return str(bind.dialect.name)


async def lock_relation_writes(db: Executor, *, tenant_id: uuid.UUID) -> None:
    """Makes the tenant's relation writes and merges take turns until the transaction ends,
    so that two writes that each look fine on their own cannot together close a cycle or
    merge a chain. SQLite's writers take turns anyway."""
    if _dialect(db) != "postgresql":
        return
    key = int.from_bytes(tenant_id.bytes[:4], "big", signed=True)
    await db.execute(select(func.pg_advisory_xact_lock(_RELATION_LOCK_CLASS, key)))


async def find_ticket(
    db: Executor,
    *,
    tenant_id: uuid.UUID,
    object_id: str,
    submitted_by: str | None,
    for_update: bool = False,
) -> dict[str, Any] | None:
    """A live ticket the caller may see, locked until the transaction ends: shared (it may not
    be changed or deleted meanwhile) or, with `for_update`, exclusively."""
    query = scoped(tenant_id, submitted_by=submitted_by).where(Ticket.object_id == object_id)
    query = query.with_for_update(read=not for_update)
    row = (await db.execute(query)).mappings().first()
    return None if row is None else dict(row)


def _insert_for(db: Executor) -> Any:
    return postgresql.insert if _dialect(db) == "postgresql" else sqlite.insert


async def insert_relation(
    db: Executor,
    *,
    tenant_id: uuid.UUID,
    source_id: uuid.UUID,
    type: str,
    target_id: uuid.UUID,
    at: datetime,
    by: dict[str, Any],
) -> bool:
    """Stores a relation; False (nothing written) when it is already there."""
    insert = _insert_for(db)
    statement = (
        insert(TicketRelation)
        .values(
            tenant_id=tenant_id,
            source_id=source_id,
            type=type,
            target_id=target_id,
            created_at=at,
            created_by=by,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "source_id", "type", "target_id"])
        .returning(TicketRelation.source_id)
    )
    return (await db.execute(statement)).first() is not None


async def delete_relation(
    db: Executor, *, tenant_id: uuid.UUID, source_id: uuid.UUID, type: str, target_id: uuid.UUID
) -> bool:
    """Removes a relation; False when there was none."""
    statement = (
        delete(TicketRelation)
        .where(
            TicketRelation.tenant_id == tenant_id,
            TicketRelation.source_id == source_id,
            TicketRelation.type == type,
            TicketRelation.target_id == target_id,
        )
        .returning(TicketRelation.source_id)
    )
    return (await db.execute(statement)).first() is not None


async def parent_of(
    db: Executor, *, tenant_id: uuid.UUID, ticket_id: uuid.UUID
) -> tuple[str, uuid.UUID, bool] | None:
    """A ticket's parent: (display ID, id, whether it is deleted); None when it has none."""
    query = (
        select(Ticket.object_id, Ticket.id, Ticket.deleted_seq)
        .join(
            TicketRelation,
            and_(
                TicketRelation.tenant_id == Ticket.tenant_id,
                TicketRelation.target_id == Ticket.id,
            ),
        )
        .where(
            TicketRelation.tenant_id == tenant_id,
            TicketRelation.source_id == ticket_id,
            TicketRelation.type == "parent",
        )
    )
    row = (await db.execute(query)).first()
    if row is None:
        return None
    return str(row[0]), row[1], row[2] != NOT_DELETED


async def reaches(
    db: Executor, *, tenant_id: uuid.UUID, type: str, start: uuid.UUID, goal: uuid.UUID
) -> bool:
    """Whether following `type` relations from source to target, through live tickets, leads
    from `start` to `goal` (one recursive query; UNION drops tickets already reached, so it
    ends on any graph)."""
    edge = aliased(TicketRelation)
    step = aliased(Ticket)
    path = select(literal(start, Uuid()).label("ticket_id")).cte("path", recursive=True)
    path = path.union(
        select(edge.target_id)
        .join(
            path,
            and_(
                edge.tenant_id == tenant_id,
                edge.type == type,
                edge.source_id == path.c.ticket_id,
            ),
        )
        .join(step, and_(step.tenant_id == tenant_id, step.id == edge.target_id))
        .where(step.deleted_seq == NOT_DELETED)
    )
    query = select(path.c.ticket_id).where(path.c.ticket_id == goal).limit(1)
    return (await db.execute(query)).first() is not None


async def related_tickets(
    db: Executor, *, tenant_id: uuid.UUID, ticket_id: uuid.UUID, submitted_by: str | None
) -> list[tuple[str, bool, dict[str, Any]]]:
    """Every live ticket related to a ticket that the caller may see: (stored type, whether
    the ticket is the stored row's source, the other ticket's row), by display ID."""
    outgoing = select(
        TicketRelation.type.label("type"),
        literal(True).label("as_source"),
        TicketRelation.target_id.label("other_id"),
    ).where(TicketRelation.tenant_id == tenant_id, TicketRelation.source_id == ticket_id)
    incoming = select(
        TicketRelation.type.label("type"),
        literal(False).label("as_source"),
        TicketRelation.source_id.label("other_id"),
    ).where(TicketRelation.tenant_id == tenant_id, TicketRelation.target_id == ticket_id)
    links = union_all(outgoing, incoming).subquery("links")
    other = scoped(tenant_id, submitted_by=submitted_by).subquery("other")
    query = (
        select(links.c.type, links.c.as_source, other)
        .join(other, other.c.id == links.c.other_id)
        .order_by(other.c.display_prefix, other.c.display_number)
    )
    rows = (await db.execute(query)).mappings().all()
    return [(row["type"], bool(row["as_source"]), dict(row)) for row in rows]


def children_of(tenant_id: uuid.UUID, parents: Sequence[str]) -> Select[Any]:
    """The ids of the children of the tickets with these display IDs (for list filters).

    Each parent is looked up on its own (one id each), so the planner sees equalities on the
    relations' index on their target rather than a join it would size from table-wide
    statistics.
    """
    parent = aliased(Ticket)
    parent_ids = [
        select(parent.id)
        .where(parent.tenant_id == tenant_id, parent.object_id == object_id)
        .scalar_subquery()
        for object_id in dict.fromkeys(parents)
    ]
    return select(TicketRelation.source_id).where(
        TicketRelation.tenant_id == tenant_id,
        or_(*(TicketRelation.target_id == parent_id for parent_id in parent_ids)),
        TicketRelation.type == "parent",
    )
