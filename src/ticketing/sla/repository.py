"""SLA queries: a tenant's desk settings, and the breach sweeper's reads and writes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ticketing.models import TenantDesk, Ticket

# Written as literals so that the planner can use the partial indexes on live tickets.
_LIVE = text("tickets.deleted_seq = -1")


async def get_desk_settings(
    session: AsyncSession, *, tenant_id: uuid.UUID
) -> dict[str, Any] | None:
    """A tenant's desk settings document, or None when its configuration has none."""
    query = select(TenantDesk.settings).where(TenantDesk.tenant_id == tenant_id)
    settings: dict[str, Any] | None = (await session.execute(query)).scalar_one_or_none()
    return settings


async def sweep_candidates(
    conn: AsyncConnection, *, now: datetime, limit: int
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant, ticket) of live tickets whose next unrecorded due time has passed, across
    tenants, oldest first."""
    if conn.dialect.name == "postgresql":
        # Across tenants: a function of migration 0008 that the tenant policies do not bind.
        result = await conn.execute(
            text("SELECT tenant_id, ticket_id FROM ticketing_sla_sweep_candidates(:now, :limit)"),
            {"now": now, "limit": limit},
        )
    else:
        result = await conn.execute(
            select(Ticket.tenant_id, Ticket.id)
            .where(_LIVE, Ticket.sla_sweep_at.is_not(None), Ticket.sla_sweep_at <= now)
            .order_by(Ticket.sla_sweep_at)
            .limit(limit)
        )
    return [(row[0], row[1]) for row in result.all()]


async def lock_ticket(
    session: AsyncSession, *, tenant_id: uuid.UUID, ticket_id: uuid.UUID
) -> RowMapping | None:
    """A live ticket, locked until the transaction ends."""
    query = (
        select(Ticket.__table__)
        .where(Ticket.tenant_id == tenant_id, Ticket.id == ticket_id, _LIVE)
        .with_for_update()
    )
    row: RowMapping | None = (await session.execute(query)).mappings().first()
    return row


async def set_sweep_at(
    session: AsyncSession, *, tenant_id: uuid.UUID, ticket_id: uuid.UUID, at: datetime | None
) -> None:
    """Moves a ticket's next sweep time (nothing else about it changes)."""
    await session.execute(
        update(Ticket)
        .where(Ticket.tenant_id == tenant_id, Ticket.id == ticket_id)
        .values(sla_sweep_at=at)
    )
