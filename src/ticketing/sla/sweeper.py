"""The breach sweeper: records in each ticket's history, once, every SLA clock that passed
its due time.

A ticket already reads `breached` past its due time (state is computed at read time); the
sweeper writes it down. Every server process runs one; on PostgreSQL an advisory lock lets
one sweep at a time, and each ticket is re-read under its row lock before it is written, so
a breach is recorded once even if two sweeps met (on SQLite, writers are serial anyway).
Candidates come from the indexed `sla_sweep_at` column: the next due time of a ticket whose
breach is not recorded yet.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ticketing.events import outbox
from ticketing.kit.db import transaction
from ticketing.kit.tenancy import bind_tenant
from ticketing.kit.time import utcnow
from ticketing.sla import repository
from ticketing.sla import service as sla_service
from ticketing.tickets import repository as tickets_repository

log = logging.getLogger("ticketing.sla")

SWEEP_LOCK = 7_311_842_010
BATCH = 200
# Who recorded a breach, as the ticket history shows it.
SWEEPER = {"username": "sla-sweeper", "email": "", "firstName": "SLA", "lastName": "Sweeper"}


async def sweep_once(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    now: datetime | None = None,
) -> int:
    """Records the breaches due by `now` (default: now); returns how many tickets changed.
    Returns 0 at once when another process is sweeping."""
    at = now or utcnow()
    if engine.dialect.name != "postgresql":
        return await _sweep(engine, sessionmaker, at)
    async with engine.connect() as lock:
        # Held until this transaction ends, also when the process dies.
        taken = await lock.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK})
        if not taken:
            return 0
        return await _sweep(engine, sessionmaker, at)


async def _sweep(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], at: datetime
) -> int:
    changed = 0
    seen: set[tuple[uuid.UUID, uuid.UUID]] = set()
    while True:
        bind_tenant(None)
        async with engine.connect() as conn:
            candidates = await repository.sweep_candidates(conn, now=at, limit=BATCH)
        fresh = [c for c in candidates if c not in seen]
        for tenant_id, ticket_id in fresh:
            seen.add((tenant_id, ticket_id))
            bind_tenant(tenant_id)
            async with transaction(sessionmaker) as session:
                changed += await _record(session, tenant_id=tenant_id, ticket_id=ticket_id, at=at)
        if len(candidates) < BATCH or not fresh:
            bind_tenant(None)
            return changed


async def _record(
    session: AsyncSession, *, tenant_id: uuid.UUID, ticket_id: uuid.UUID, at: datetime
) -> int:
    ticket = await repository.lock_ticket(session, tenant_id=tenant_id, ticket_id=ticket_id)
    if ticket is None or ticket["sla"] is None:
        return 0
    update = sla_service.record_breaches(ticket["sla"], at=at)
    if not update.changes:
        # Nothing to record (a clock paused or met since): look again at its next due time.
        await repository.set_sweep_at(
            session, tenant_id=tenant_id, ticket_id=ticket_id, at=update.values["sla_sweep_at"]
        )
        return 0
    version = ticket["version"] + 1
    written = await tickets_repository.update_ticket(
        session,
        tenant_id=tenant_id,
        ticket_id=ticket_id,
        expected_etag=ticket["etag"],
        values={**update.values, "etag": uuid.uuid4(), "version": version, "updated_at": at},
    )
    if written is None:
        return 0
    await tickets_repository.insert_history(
        session,
        tenant_id=tenant_id,
        ticket_id=ticket_id,
        version=version,
        action="sla",
        at=at,
        by=SWEEPER,
        changes=update.changes,
    )
    # The breach is a change of the ticket like any other: streams and webhooks see a new
    # version, and the assignee is notified (ticketing.notifications.generator).
    await outbox.record(
        session, kind=outbox.TICKET_UPDATED, ticket=dict(written), actor=SWEEPER,
        changes=update.changes,
    )  # fmt: skip
    return 1


async def run_forever(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], *, interval: float
) -> None:
    """Sweeps every `interval` seconds until cancelled; a failed sweep is logged and retried
    at the next interval."""
    while True:
        await asyncio.sleep(interval)
        try:
            recorded = await sweep_once(engine, sessionmaker)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sla sweep failed")
            continue
        if recorded:
            log.info("sla sweep recorded breaches on %d tickets", recorded)
