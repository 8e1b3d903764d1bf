"""Ticket queries: the only place ticket and display-ID SQL is written."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.models import DisplayIdCounter, Ticket, TicketHistory


def _insert_for(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def next_display_number(session: AsyncSession, *, tenant_id: uuid.UUID, prefix: str) -> int:
    """Takes the next display number of a tenant and prefix.

    The upsert locks the counter row until the transaction ends, so numbers are unique
    across processes, and a rolled-back create gives its number back: no gaps.
    """
    insert = _insert_for(session)
    statement = (
        insert(DisplayIdCounter)
        .values(tenant_id=tenant_id, prefix=prefix, last_value=1)
        .on_conflict_do_update(
            index_elements=[DisplayIdCounter.tenant_id, DisplayIdCounter.prefix],
            set_={"last_value": DisplayIdCounter.last_value + 1},
        )
        .returning(DisplayIdCounter.last_value)
    )
    return int((await session.execute(statement)).scalar_one())


async def insert_ticket(session: AsyncSession, *, values: dict[str, Any]) -> int:
    """Inserts a ticket row and returns its id_serial."""
    insert = _insert_for(session)
    if session.get_bind().dialect.name == "sqlite":
        # SQLite has no identity for a non-key column; its writers are serialised, so the
        # next value can be read inside the insert.
        values = {
            **values,
            "id_serial": select(func.coalesce(func.max(Ticket.id_serial), 0) + 1).scalar_subquery(),
        }
    statement = insert(Ticket).values(**values).returning(Ticket.id_serial)
    return int((await session.execute(statement)).scalar_one())


async def insert_history(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    ticket_id: uuid.UUID,
    version: int,
    action: str,
    at: Any,
    by: dict[str, Any],
    changes: list[dict[str, Any]],
) -> None:
    """Records one change of a ticket."""
    await session.execute(
        sa_insert(TicketHistory).values(
            tenant_id=tenant_id,
            ticket_id=ticket_id,
            version=version,
            action=action,
            changed_at=at,
            changed_by=by,
            changes=changes,
        )
    )
