"""Notification queries: the only place notification SQL is written."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.models import Notification


def scoped(tenant_id: uuid.UUID, recipients: tuple[str, ...]) -> ColumnElement[bool]:
    """The one place notifications are scoped: the tenant's, addressed to the caller."""
    return (Notification.tenant_id == tenant_id) & Notification.recipient.in_(recipients)


def _filtered(
    tenant_id: uuid.UUID,
    recipients: tuple[str, ...],
    *,
    read: bool | None = None,
    kind: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[Any]:
    query = select(Notification).where(scoped(tenant_id, recipients))
    if read is not None:
        query = query.where(Notification.read.is_(read))
    if kind is not None:
        query = query.where(Notification.kind == kind)
    if object_id is not None:
        query = query.where(Notification.object_id == object_id)
    # The date range is compared on an expression the index cannot answer: SQLite 3.40 was
    # seen to return a row whose created_at is past `until` when it searched
    # ix_notifications_recipient for the recipients' IN list and the range together (the
    # same comparison row by row was false, and the database passed its integrity check).
    # Tenant and recipient still narrow the rows through the index.
    created_at = func.coalesce(Notification.created_at, Notification.created_at)
    if since is not None:
        query = query.where(created_at >= since)
    if until is not None:
        query = query.where(created_at <= until)
    return query


async def list_notifications(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    recipients: tuple[str, ...],
    top: int,
    offset: int,
    **filters: Any,
) -> tuple[list[Notification], int]:
    """A page of the caller's notifications, newest first, and how many match in all."""
    query = _filtered(tenant_id, recipients, **filters)
    page = await session.scalars(
        query.order_by(Notification.created_at.desc(), Notification.id).limit(top).offset(offset)
    )
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    return list(page.all()), int(total or 0)


async def count_unread(
    session: AsyncSession, *, tenant_id: uuid.UUID, recipients: tuple[str, ...]
) -> int:
    """How many of the caller's notifications are unread."""
    query = _filtered(tenant_id, recipients, read=False).with_only_columns(Notification.id)
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)


async def mark(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    recipients: tuple[str, ...],
    notification_id: uuid.UUID,
    read: bool,
) -> Notification | None:
    """Marks one of the caller's notifications read or unread; None when it has none such."""
    notification = await session.scalar(
        select(Notification).where(
            scoped(tenant_id, recipients), Notification.id == notification_id
        )
    )
    if notification is not None:
        notification.read = read
        await session.flush()
    return notification


async def mark_all_read(
    session: AsyncSession, *, tenant_id: uuid.UUID, recipients: tuple[str, ...]
) -> int:
    """Marks every unread notification of the caller read; returns how many."""
    result = await session.execute(
        update(Notification)
        .where(scoped(tenant_id, recipients), Notification.read.is_(False))
        .values(read=True)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
