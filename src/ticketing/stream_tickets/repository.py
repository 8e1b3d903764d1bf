"""Stream ticket queries: the only place stream ticket SQL is written."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.models import StreamTicket


async def add(session: AsyncSession, values: dict[str, Any]) -> None:
    """Stores a new ticket (`values`: every column)."""
    await session.execute(insert(StreamTicket).values(values))


async def drop_expired(session: AsyncSession, *, tenant_id: uuid.UUID, now: datetime) -> None:
    """Deletes the tenant's tickets that expired unused (a tenant has the few of the last
    minute: they are cleared as the next one is issued)."""
    await session.execute(
        delete(StreamTicket).where(
            StreamTicket.tenant_id == tenant_id, StreamTicket.expires_at < now
        )
    )


async def take(session: AsyncSession, *, tenant_id: uuid.UUID, token_hash: str) -> Any | None:
    """Deletes the ticket and returns its row, or None when there is none (never issued, or
    taken already). One statement: of two takers at once, in any processes, one gets it."""
    result = await session.execute(
        delete(StreamTicket)
        .where(StreamTicket.tenant_id == tenant_id, StreamTicket.token_hash == token_hash)
        .returning(*StreamTicket.__table__.columns)
    )
    return result.one_or_none()
