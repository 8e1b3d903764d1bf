"""Attachment queries: the only place attachment SQL is written."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ticketing.models import Attachment

Executor = AsyncSession | AsyncConnection


def _scoped(tenant_id: uuid.UUID):  # type: ignore[no-untyped-def]
    """The one place attachment reads are scoped to a tenant."""
    return select(Attachment).where(Attachment.tenant_id == tenant_id)


async def insert_attachment(db: Executor, *, attachment: Attachment) -> None:
    """Records an upload whose blob is stored."""
    if isinstance(db, AsyncSession):
        db.add(attachment)
        await db.flush()
        return
    await db.execute(
        insert(Attachment).values(
            {c.name: getattr(attachment, c.name) for c in Attachment.__table__.columns}
        )
    )


async def lock_uploads(
    db: Executor, *, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> list[Any]:
    """Gets the tenant's uploads among `ids` (rows with the columns as attributes), locked
    until the transaction ends, so two tickets cannot take the same upload (SQLite renders
    no FOR UPDATE: its writers hold the database lock from BEGIN). Rows are locked in id
    order, so two writes naming the same uploads in different orders cannot deadlock."""
    query = (
        select(Attachment.__table__)
        .where(Attachment.tenant_id == tenant_id, Attachment.id.in_(ids))
        .order_by(Attachment.id)
        .with_for_update()
    )
    return list((await db.execute(query)).all())


async def bind_uploads(
    db: Executor,
    *,
    tenant_id: uuid.UUID,
    ids: Sequence[uuid.UUID],
    uploader: str,
    ticket_id: uuid.UUID,
    field_key: str,
) -> int:
    """Binds unbound uploads of `uploader` to a ticket; returns how many were bound."""
    result = await db.execute(
        update(Attachment)
        .where(
            Attachment.tenant_id == tenant_id,
            Attachment.id.in_(ids),
            Attachment.ticket_id.is_(None),
            Attachment.uploader == uploader,
        )
        .values(ticket_id=ticket_id, field_key=field_key)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def get_bound(
    session: AsyncSession, *, tenant_id: uuid.UUID, ticket_id: uuid.UUID, attachment_id: uuid.UUID
) -> Attachment | None:
    """Gets a file of a ticket."""
    query = _scoped(tenant_id).where(
        Attachment.id == attachment_id, Attachment.ticket_id == ticket_id
    )
    return (await session.execute(query)).scalars().first()


async def unbound_uploads(
    session: AsyncSession, *, tenant_id: uuid.UUID, uploader: str, ids: Sequence[uuid.UUID]
) -> list[Attachment]:
    """Gets the uploads among `ids` that this uploader made and no ticket took yet."""
    if not ids:
        return []
    query = _scoped(tenant_id).where(
        Attachment.id.in_(ids), Attachment.uploader == uploader, Attachment.ticket_id.is_(None)
    )
    return list((await session.execute(query)).scalars().all())


async def delete_unbound(db: AsyncConnection, *, created_before: datetime) -> int:
    """Deletes every tenant's uploads never bound to a ticket and created before a time."""
    result = await db.execute(
        delete(Attachment).where(
            Attachment.ticket_id.is_(None), Attachment.created_at < created_before
        )
    )
    return int(result.rowcount)


async def lock_blob(db: Executor, *, tenant_id: uuid.UUID, sha256: str) -> None:
    """Holds the tenant's blob until the transaction ends, against garbage collection: an
    upload storing it and recording its row, or the collector checking that nothing names it
    and removing it, go one at a time. PostgreSQL: a transaction-level advisory lock on the
    blob; SQLite: the database's write lock, which a transaction takes at its first
    statement (BEGIN IMMEDIATE) and this statement makes sure it has."""
    bind = db.get_bind() if isinstance(db, AsyncSession) else db
    if bind.dialect.name == "postgresql":
        await db.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"ticketing.blob:{tenant_id}:{sha256}"},
        )
    else:
        await db.execute(text("SELECT 1"))


async def is_referenced(db: AsyncConnection, *, tenant_id: uuid.UUID, sha256: str) -> bool:
    """Whether any upload of the tenant names the blob."""
    query = (
        select(Attachment.id)
        .where(Attachment.tenant_id == tenant_id, Attachment.sha256 == sha256)
        .limit(1)
    )
    return (await db.execute(query)).first() is not None
