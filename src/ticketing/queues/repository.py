"""Queue member queries: the only place queue SQL is written."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ticketing.kit.time import utcnow
from ticketing.models import QueueMember


def _scoped(tenant_id: uuid.UUID, queue_id: str | None = None) -> list[ColumnElement[bool]]:
    """The one place member reads are scoped: the tenant (and a queue of it)."""
    where: list[ColumnElement[bool]] = [QueueMember.tenant_id == tenant_id]
    if queue_id is not None:
        where.append(QueueMember.queue_id == queue_id)
    return where


async def add_members(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: str, user_ids: Iterable[str]
) -> list[str]:
    """Adds users to a queue as available; returns those who were not members yet."""
    rows = [
        {
            "tenant_id": tenant_id,
            "queue_id": queue_id,
            "user_id": user_id,
            "availability": "available",
            "added_at": utcnow(),
        }
        for user_id in dict.fromkeys(user_ids)
    ]
    if not rows:
        return []
    bind = session.get_bind()
    insert = postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(QueueMember).values(rows).on_conflict_do_nothing().returning(QueueMember.user_id)
    )
    return list((await session.execute(statement)).scalars().all())


async def list_members(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: str
) -> list[QueueMember]:
    """A queue's members, in the order round robin takes them."""
    query = select(QueueMember).where(*_scoped(tenant_id, queue_id)).order_by(QueueMember.user_id)
    return list((await session.scalars(query)).all())


async def member_ids(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[str]:
    """Every user who is a member of some queue of the tenant, once each, in order."""
    query = (
        select(QueueMember.user_id)
        .where(*_scoped(tenant_id))
        .distinct()
        .order_by(QueueMember.user_id)
    )
    return list((await session.scalars(query)).all())


async def get_member(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: str, user_id: str
) -> QueueMember | None:
    """One member of a queue, or None."""
    query = select(QueueMember).where(
        *_scoped(tenant_id, queue_id),
        QueueMember.user_id == user_id,
    )
    return (await session.scalars(query)).first()


async def queues_of(
    session: AsyncSession, *, tenant_id: uuid.UUID, user_ids: Iterable[str]
) -> list[QueueMember]:
    """The memberships of a user (known by any of `user_ids`: username, email)."""
    query = (
        select(QueueMember)
        .where(*_scoped(tenant_id), QueueMember.user_id.in_(list(user_ids)))
        .order_by(QueueMember.queue_id)
    )
    return list((await session.scalars(query)).all())


async def remove_member(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: str, user_id: str
) -> bool:
    """Removes a member; False when there was none."""
    result = await session.execute(
        delete(QueueMember)
        .where(*_scoped(tenant_id, queue_id), QueueMember.user_id == user_id)
        .returning(QueueMember.user_id)
    )
    return result.first() is not None


async def set_availability(
    session: AsyncSession, *, tenant_id: uuid.UUID, queue_id: str, user_id: str, availability: str
) -> QueueMember | None:
    """Sets a member's availability; None when they are not a member."""
    result = await session.execute(
        update(QueueMember)
        .where(*_scoped(tenant_id, queue_id), QueueMember.user_id == user_id)
        .values(availability=availability)
        .returning(QueueMember.user_id)
    )
    if result.first() is None:
        return None
    return await get_member(session, tenant_id=tenant_id, queue_id=queue_id, user_id=user_id)


async def available_members(
    session: AsyncSession | AsyncConnection, *, tenant_id: uuid.UUID, queue_id: str
) -> list[str]:
    """The members round robin may pick now, in its order."""
    query = (
        select(QueueMember.user_id)
        .where(*_scoped(tenant_id, queue_id), QueueMember.availability == "available")
        .order_by(QueueMember.user_id)
    )
    return list((await session.scalars(query)).all())
