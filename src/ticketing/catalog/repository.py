"""Queries for tenants and their catalog: the only place catalog SQL is written."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ticketing.kit.db import StatementPool
from ticketing.models import Offer, Team, Tenant, TicketField, TicketType


async def get_tenant(session: AsyncSession, *, tenant_id: uuid.UUID) -> Tenant | None:
    """Gets a tenant by its id."""
    return await session.get(Tenant, tenant_id)


async def get_tenant_version(
    session: AsyncSession, *, tenant_id: uuid.UUID
) -> tuple[str, int] | None:
    """Gets a tenant's realm and configuration version, the two things checked per request."""
    row = (
        await session.execute(
            select(Tenant.realm, Tenant.config_version).where(Tenant.id == tenant_id)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def list_catalog_rows(
    session: AsyncSession, *, tenant_id: uuid.UUID
) -> tuple[list[Team], list[TicketType], list[TicketField], list[Offer]]:
    """Gets every catalog row of one tenant."""

    async def rows(model: Any, *order: Any) -> list[Any]:
        query = select(model).where(model.tenant_id == tenant_id).order_by(*order)
        return list((await session.scalars(query)).all())

    return (
        await rows(Team, Team.id),
        await rows(TicketType, TicketType.position, TicketType.id),
        await rows(TicketField, TicketField.ticket_type_id, TicketField.position),
        await rows(Offer, Offer.id),
    )


async def replace_fields(
    session: AsyncSession, *, tenant_id: uuid.UUID, ticket_type_id: str, fields: list[TicketField]
) -> None:
    """Replaces a ticket type's field list as a whole."""
    await session.execute(
        delete(TicketField).where(
            TicketField.tenant_id == tenant_id, TicketField.ticket_type_id == ticket_type_id
        )
    )
    await session.flush()
    session.add_all(fields)


async def tenant_realms(engine: AsyncEngine, statements: StatementPool | None) -> set[str]:
    """The realms of every tenant the database holds, for a request with no verified tenant
    yet: on PostgreSQL through the owner's function that reads past the tenant policies
    (migration 0020); on SQLite (no `statements`) a plain query."""
    if statements is not None:
        records = await statements.fetch("SELECT * FROM ticketing_tenant_realms()")
        return {str(record[0]) for record in records}
    async with engine.connect() as conn:
        rows = await conn.execute(select(Tenant.realm).distinct())
        return {str(row[0]) for row in rows}
