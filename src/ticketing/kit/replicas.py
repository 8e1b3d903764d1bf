"""Streaming replicas of the primary database: which one may serve a read, and how fresh it is.

Reads that change nothing (a ticket, a list, a count, history, comments, the discovery
endpoints, an event stream's snapshot) may be served by a replica; everything else stays on the
primary. A replica serves a read only when it is up and its lag is within `max_lag` seconds,
and, for a caller who has written, only once it has replayed that caller's write (read your
writes); otherwise the primary serves it.

Lag is measured against this process's own clock, not the servers': every check samples the
primary's WAL position, and a replica that has not yet replayed a position the primary had at
time T is at least `now - T` behind. So an idle primary never makes a replica look late, and a
replica that stopped replaying (or receiving) looks later the longer it stays stopped.

A caller's write is remembered without a statement on the write's path (creates are one
statement): the write only takes a number. A later read by the same caller needs a primary
WAL position sampled after that number was taken, which is at or past the write's commit;
the sample is shared by every caller waiting for one (and the periodic check takes one too),
so the primary sees one `pg_current_wal_lsn()` per round, whatever the number of writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ticketing.kit.db import (
    DATABASE_ERRORS,
    create_engine,
    create_sessionmaker,
    database_unavailable,
)

log = logging.getLogger("ticketing.replicas")

# WAL positions as byte offsets (bigint), so they compare as numbers in Python.
_PRIMARY_POSITION = text("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint")
_REPLAYED = text("SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint")
_REPLICA_STATE = text(
    "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint"
)


_CHECK_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_ERRORS, TimeoutError)


def replica_name(url: str) -> str:
    """How a replica is named in logs and /healthz: host:port/database, never a password."""
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


@dataclass
class Replica:
    """One replica: its engine and what the last check found."""

    name: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    up: bool = False
    replayed: int | None = None
    lag: float | None = None
    error: str | None = None
    checked_at: float | None = None

    async def replayed_position(self) -> int | None:
        """Asks the replica how far it has replayed."""
        async with self.engine.connect() as conn:
            value = (await conn.execute(_REPLAYED)).scalar()
        if value is not None:
            self.replayed = max(self.replayed or 0, int(value))
        return self.replayed


@dataclass
class _Write:
    number: int
    at: float
    position: int | None = None


@dataclass
class ReplicaSet:
    """The replicas of one process, their health, and the callers' recent writes."""

    primary: AsyncEngine
    replicas: list[Replica]
    max_lag: float
    wait: float
    interval: float
    # (monotonic time, primary WAL position), oldest first: what lag is measured against.
    _samples: deque[tuple[float, int]] = field(default_factory=deque)
    _writes: dict[str, _Write] = field(default_factory=dict)
    _write_number: int = 0
    _sampled_number: int = -1
    _sampled_position: int = 0
    _sampling: asyncio.Future[None] | None = None
    _rotation: itertools.count[int] = field(default_factory=itertools.count)
    _task: asyncio.Task[None] | None = None
    # Told which database served each read: "replica" or "primary" (for the metrics).
    on_read: Callable[[str], None] = lambda _source: None

    @classmethod
    def from_urls(
        cls,
        primary: AsyncEngine,
        urls: Sequence[str],
        *,
        pool_size: int,
        timeout: float,
        role: str | None,
        max_lag: float,
        wait: float,
        interval: float,
    ) -> ReplicaSet:
        replicas = []
        for url in urls:
            engine = create_engine(url, pool_size=pool_size, timeout=timeout, role=role)
            replicas.append(Replica(replica_name(url), engine, create_sessionmaker(engine)))
        return cls(primary, replicas, max_lag=max_lag, wait=wait, interval=interval)

    # --- lifecycle ---

    async def start(self) -> None:
        """Checks every replica once, then keeps checking them in the background."""
        await self.check()
        self._task = asyncio.create_task(self._check_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for replica in self.replicas:
            await replica.engine.dispose()

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # the loop must outlive any one failed round
                log.exception("replica check failed")

    # --- health ---

    async def check(self) -> None:
        """Samples the primary's position, then asks each replica how far it has replayed."""
        try:
            await self._sample_primary()
        except DATABASE_ERRORS as exc:
            # Lag cannot be measured without the primary; the replicas keep their last state.
            log.warning("replica check: primary unreachable: %r", exc)
            return
        await asyncio.gather(*(self._check_one(replica) for replica in self.replicas))
        self._forget_old_writes()

    async def _check_one(self, replica: Replica) -> None:
        try:
            async with asyncio.timeout(self.interval + 1.0):
                async with replica.engine.connect() as conn:
                    in_recovery, replayed = (await conn.execute(_REPLICA_STATE)).one()
        except _CHECK_ERRORS as exc:
            if replica.up:
                log.warning("replica %s is unreachable: %r", replica.name, exc)
            replica.up, replica.lag, replica.error = False, None, "unreachable"
            replica.checked_at = time.monotonic()
            return
        now = time.monotonic()
        replica.checked_at = now
        if not in_recovery or replayed is None:
            # A server that is not replaying WAL is no replica of ours: never read from it.
            replica.up, replica.lag, replica.error = False, None, "not a replica"
            return
        replica.replayed = max(replica.replayed or 0, int(replayed))
        replica.lag = self._lag_of(replica.replayed, now)
        if not replica.up:
            log.info("replica %s is up (lag %.3f s)", replica.name, replica.lag)
        replica.up, replica.error = True, None

    def _lag_of(self, replayed: int, now: float) -> float:
        """How long ago the primary first had a position the replica has not replayed."""
        for at, position in self._samples:
            if position > replayed:
                return max(0.0, now - at)
        return 0.0

    def usable(self, replica: Replica) -> bool:
        """Up, and no further behind than the bound."""
        return replica.up and replica.lag is not None and replica.lag <= self.max_lag

    def report(self) -> list[dict[str, Any]]:
        """Each replica as /healthz shows it."""
        out = []
        for replica in self.replicas:
            if not replica.up:
                status = replica.error or "unreachable"
            elif not self.usable(replica):
                status = "lagging"
            else:
                status = "ok"
            lag = None if replica.lag is None else round(replica.lag, 3)
            out.append({"name": replica.name, "status": status, "lagSeconds": lag})
        return out

    # --- the primary's position ---

    async def _sample_primary(self) -> None:
        number = self._write_number
        async with self.primary.connect() as conn:
            position = int((await conn.execute(_PRIMARY_POSITION)).scalar_one())
        now = time.monotonic()
        if not self._samples or position != self._samples[-1][1]:
            self._samples.append((now, position))
        # Kept long enough to show any lag past the bound (older samples only lengthen it).
        keep = self.max_lag + 2 * self.interval + 1.0
        while len(self._samples) > 1 and self._samples[1][0] < now - keep:
            self._samples.popleft()
        if number > self._sampled_number:
            self._sampled_number, self._sampled_position = number, position

    async def _position_after(self, number: int) -> int:
        """A primary position sampled after write `number` took its number (so past its
        commit); one sample serves every caller waiting."""
        while self._sampled_number < number:
            if self._sampling is None or self._sampling.done():
                self._sampling = asyncio.ensure_future(self._sample_primary())
            await asyncio.shield(self._sampling)
        return self._sampled_position

    # --- reads and writes ---

    def note_write(self, caller: str) -> None:
        """Remembers that `caller` has just written (its transaction has committed)."""
        self._write_number += 1
        self._writes.pop(caller, None)  # re-inserted last: the dict stays oldest first
        self._writes[caller] = _Write(self._write_number, time.monotonic())

    def _forget_old_writes(self) -> None:
        # A replica within the bound has replayed everything the primary had `max_lag`
        # seconds before its last check; writes older than that (and a sample) need no wait.
        horizon = time.monotonic() - (self.max_lag + 2 * self.interval + 1.0)
        while self._writes:
            caller, write = next(iter(self._writes.items()))
            if write.at >= horizon:
                break
            del self._writes[caller]

    async def required_position(self, caller: str | None, *, fresh: bool = False) -> int | None:
        """The position a replica must have replayed to serve `caller` (None: any will do).

        `fresh`: also everything committed before now (an event stream's snapshot must hold
        every event before the stream's start).
        """
        needed: int | None = None
        write = self._writes.get(caller) if caller else None
        if write is not None:
            if write.position is None:
                write.position = await self._position_after(write.number)
            needed = write.position
        if fresh:
            self._write_number += 1
            position = await self._position_after(self._write_number)
            needed = max(needed or 0, position)
        return needed

    async def choose(self, needed: int | None) -> Replica | None:
        """A usable replica that has replayed `needed`, waiting up to `wait` seconds for one;
        None: read from the primary."""
        usable = [r for r in self.replicas if self.usable(r)]
        if not usable:
            return None
        start = next(self._rotation) % len(usable)
        ordered = usable[start:] + usable[:start]
        if needed is None:
            return ordered[0]
        for replica in ordered:
            if replica.replayed is not None and replica.replayed >= needed:
                return replica
        best = max(ordered, key=lambda r: r.replayed or 0)
        deadline = time.monotonic() + self.wait
        pause = 0.001
        try:
            while True:
                replayed = await best.replayed_position()
                if replayed is not None and replayed >= needed:
                    return best
                if time.monotonic() + pause > deadline:
                    return None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.02)
        except DATABASE_ERRORS as exc:
            self.failed(best, exc)
            return None

    def failed(self, replica: Replica, exc: BaseException) -> None:
        """A read on `replica` failed (the primary serves it instead); when the replica is
        unreachable it is skipped until a check finds it up again."""
        log.warning("replica %s failed a read, using the primary: %r", replica.name, exc)
        if database_unavailable(exc):
            replica.up, replica.error = False, "unreachable"
