"""Webhook and delivery queries: the only place webhook SQL is written."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ticketing.kit.db import StatementPool
from ticketing.kit.time import isoformat, utcnow
from ticketing.models import Webhook, WebhookDelivery

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Claimed:
    """A delivery taken by this worker for one attempt."""

    tenant_id: uuid.UUID
    webhook_id: str
    event_id: int
    kind: str
    body: str
    attempts: int
    created_at: datetime
    url: str
    secret: str


async def active_webhooks(session: AsyncSession, *, tenant_id: uuid.UUID) -> list[Webhook]:
    """The tenant's active webhooks."""
    query = select(Webhook).where(Webhook.tenant_id == tenant_id, Webhook.active.is_(True))
    return list((await session.scalars(query)).all())


async def tenants_with_webhooks(
    engine: AsyncEngine, *, tenant_ids: list[uuid.UUID], statements: StatementPool | None
) -> set[uuid.UUID]:
    """Which of these tenants have an active webhook (any tenant's, so outside the policies).

    On PostgreSQL (`statements`: the process's statement pool) one statement of a function
    that reads past the policies; on SQLite (None) a plain query.
    """
    if statements is not None:
        records = await statements.fetch("SELECT * FROM ticketing_webhook_tenants($1)", tenant_ids)
        return {record[0] for record in records}
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Webhook.tenant_id)
            .where(Webhook.tenant_id.in_(tenant_ids), Webhook.active.is_(True))
            .distinct()
        )
        return {row[0] if isinstance(row[0], uuid.UUID) else uuid.UUID(str(row[0])) for row in rows}


async def get_webhook(
    session: AsyncSession, *, tenant_id: uuid.UUID, webhook_id: str
) -> Webhook | None:
    """One of the tenant's webhooks."""
    query = select(Webhook).where(Webhook.tenant_id == tenant_id, Webhook.id == webhook_id)
    webhook: Webhook | None = await session.scalar(query)
    return webhook


async def save_webhook(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    webhook_id: str,
    url: str,
    events: list[str],
    secret: str,
    active: bool,
    now: datetime,
) -> None:
    """Creates or updates one of the tenant's webhooks. A new webhook, or one activated
    again, is active since `now` (it receives the events from then on). Retiring one ends
    its pending deliveries: failed, with an attempt that says so."""
    webhook = await get_webhook(session, tenant_id=tenant_id, webhook_id=webhook_id)
    if webhook is None:
        webhook = Webhook(tenant_id=tenant_id, id=webhook_id, active=False)
        session.add(webhook)
    was_active = webhook.active
    webhook.url, webhook.events, webhook.secret, webhook.active = url, events, secret, active
    if active and not was_active:
        webhook.active_since = now
    if was_active and not active:
        pending = await session.scalars(
            select(WebhookDelivery).where(
                WebhookDelivery.tenant_id == tenant_id,
                WebhookDelivery.webhook_id == webhook_id,
                WebhookDelivery.status == PENDING,
            )
        )
        retired = {"at": isoformat(now), "error": "not sent: the webhook was retired"}
        for delivery in pending:
            delivery.status = FAILED
            delivery.log = [*delivery.log, retired]
    await session.flush()


async def add_deliveries(session: AsyncSession, *, rows: list[dict[str, Any]]) -> None:
    """Adds deliveries; one already there for the same webhook and event is kept as it is."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(insert(WebhookDelivery).values(rows).on_conflict_do_nothing())


async def claim_due(engine: AsyncEngine, *, limit: int, lease_seconds: float) -> list[Claimed]:
    """Takes up to `limit` due deliveries of every tenant's active webhooks for one attempt
    each: they are not due again for `lease_seconds` (another worker takes them then, if this
    one died). On PostgreSQL, concurrent workers skip each other's rows."""
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = (
                await conn.execute(
                    text("SELECT * FROM ticketing_claim_deliveries(:n, :lease)"),
                    {"n": limit, "lease": lease_seconds},
                )
            ).all()
        else:
            now = utcnow()
            due = (
                await conn.execute(
                    select(
                        WebhookDelivery.tenant_id,
                        WebhookDelivery.webhook_id,
                        WebhookDelivery.event_id,
                        WebhookDelivery.kind,
                        WebhookDelivery.body,
                        WebhookDelivery.attempts,
                        WebhookDelivery.created_at,
                        Webhook.url,
                        Webhook.secret,
                    )
                    .join(
                        Webhook,
                        and_(
                            Webhook.tenant_id == WebhookDelivery.tenant_id,
                            Webhook.id == WebhookDelivery.webhook_id,
                        ),
                    )
                    .where(
                        WebhookDelivery.status == PENDING,
                        WebhookDelivery.next_attempt_at <= now,
                        Webhook.active.is_(True),
                    )
                    .order_by(WebhookDelivery.next_attempt_at)
                    .limit(limit)
                )
            ).all()
            for row in due:
                await conn.execute(
                    update(WebhookDelivery)
                    .where(_key(row[0], row[1], row[2]))
                    .values(next_attempt_at=now + timedelta(seconds=lease_seconds))
                )
            rows = list(due)
        await conn.commit()
    return [
        Claimed(
            tenant_id=row[0] if isinstance(row[0], uuid.UUID) else uuid.UUID(str(row[0])),
            webhook_id=row[1],
            event_id=int(row[2]),
            kind=row[3],
            body=row[4],
            attempts=int(row[5]),
            created_at=row[6],
            url=row[7],
            secret=row[8],
        )
        for row in rows
    ]


def _key(tenant_id: uuid.UUID, webhook_id: str, event_id: int) -> Any:
    return and_(
        WebhookDelivery.tenant_id == tenant_id,
        WebhookDelivery.webhook_id == webhook_id,
        WebhookDelivery.event_id == event_id,
    )


async def record_attempt(
    session: AsyncSession,
    *,
    claimed: Claimed,
    attempt: dict[str, Any],
    status: str,
    next_attempt_at: datetime,
) -> None:
    """Writes an attempt's result and what happens next (nothing more happens to a delivery
    ended meanwhile: its webhook was retired during the attempt)."""
    delivery = await session.scalar(
        select(WebhookDelivery).where(_key(claimed.tenant_id, claimed.webhook_id, claimed.event_id))
    )
    if delivery is None:
        return
    delivery.attempts = claimed.attempts + 1
    delivery.log = [*delivery.log, attempt]
    if delivery.status != PENDING:
        await session.flush()
        return
    delivery.status = status
    delivery.next_attempt_at = next_attempt_at
    if status == DELIVERED:
        delivery.delivered_at = utcnow()
    await session.flush()


async def list_deliveries(
    session: AsyncSession, *, tenant_id: uuid.UUID, webhook_id: str, top: int, offset: int
) -> tuple[list[WebhookDelivery], int]:
    """A page of a webhook's deliveries, newest event first, and how many it has in all."""
    of_webhook = (
        WebhookDelivery.tenant_id == tenant_id,
        WebhookDelivery.webhook_id == webhook_id,
    )
    query = (
        select(WebhookDelivery)
        .where(*of_webhook)
        .order_by(WebhookDelivery.event_id.desc())
        .limit(top)
        .offset(offset)
    )
    page = list((await session.scalars(query)).all())
    total = await session.scalar(
        select(func.count()).select_from(WebhookDelivery).where(*of_webhook)
    )
    return page, int(total or 0)
