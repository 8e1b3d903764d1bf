"""Garbage collection of attachments, as a command and as a periodic task of `serve`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator

from ticketing.attachments.service import GcReport, collect_garbage
from ticketing.attachments.storage import BlobStore
from ticketing.config import Settings
from ticketing.kit.db import create_engine

log = logging.getLogger("ticketing.attachments")


async def run_gc(settings: Settings, store: BlobStore) -> GcReport:
    """One collection. It works across tenants, so it connects as the login user (the
    tables' owner, as for `migrate`), not as the service's row-level-security role."""
    engine = create_engine(settings.resolved_database_url, pool_size=1)
    try:
        return await collect_garbage(engine, store, ttl=settings.upload_ttl)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def periodic_gc(settings: Settings, store: BlobStore) -> AsyncIterator[None]:
    """Runs a collection every `gc_interval` seconds while the block runs (none when 0).
    Several processes may run it: PostgreSQL lets one at a time through."""
    if settings.gc_interval <= 0:
        yield
        return

    async def loop() -> None:
        # Processes started together spread their first runs over the interval.
        await asyncio.sleep(settings.gc_interval * random.uniform(0.5, 1.0))
        while True:
            try:
                await run_gc(settings, store)
            except Exception as exc:  # a failed run must not end the loop; the next retries
                log.warning("garbage collection failed: %r", exc)
            await asyncio.sleep(settings.gc_interval)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
