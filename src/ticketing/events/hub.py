"""The process's one reader of the outbox, fanning events out to the streams of each tenant.

Streams never query for events themselves: they subscribe here and get what this reader
reads, so a thousand streams cost one query per wake-up, and an idle stream holds no database
connection. On PostgreSQL a dedicated connection LISTENs for other processes' wake-ups and
sends this process's (coalesced, outside any write transaction, with an empty payload: the
reader reads by position), and a second one numbers and reads the outbox, one statement at a
time; a poll every `poll_interval` seconds is the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from ticketing.events import outbox, repository
from ticketing.events.ids import EventIds
from ticketing.events.repository import Event
from ticketing.kit.db import DATABASE_ERRORS, StatementPool
from ticketing.kit.errors import ServiceUnavailable

log = logging.getLogger("ticketing.events")

CHANNEL = "ticketing_events"
# The application_name of each process's listening connection.
HUB_CONNECTION_NAME = "ticketing event hub"
BATCH = 500
# A stream that falls this many events behind is closed (it can resume with Last-Event-ID).
QUEUE_SIZE = 10_000


# Seconds a client refused for lack of stream capacity is told to wait.
STREAMS_RETRY_AFTER = 5


@dataclass(eq=False)
class Subscription:
    """One stream's place at the hub: the events of its tenant, from `start` on.

    The hub hands over each read's events at once, and the stream takes everything that
    arrived since it last looked: a stream wakes, and writes, once per read of the hub, not
    once per event (with a thousand streams, the per-write cost is what the process spends).
    """

    tenant_id: uuid.UUID
    start: int
    pending: list[Event] = field(default_factory=list)
    overflowed: bool = False
    closed: bool = False
    # Closed because its user opened more streams than they may keep (the oldest goes).
    evicted: bool = False
    _waiter: asyncio.Future[None] | None = None

    def offer(self, events: list[Event]) -> None:
        """Queues `events` (in order) for the stream; past QUEUE_SIZE waiting events the
        stream is told it fell behind instead."""
        if self.overflowed or self.closed or not events:
            return
        if len(self.pending) + len(events) > QUEUE_SIZE:
            self.overflowed = True
            self.pending.clear()
        else:
            self.pending.extend(events)
        self._wake()

    def close(self) -> None:
        """Ends the stream once it has taken what is already queued."""
        self.closed = True
        self._wake()

    def evict(self) -> None:
        """Ends the stream: its user has opened newer ones past their limit."""
        self.evicted = True
        self.close()

    def nudge(self) -> None:
        """Wakes the stream without events (its heartbeat or token expiry is due)."""
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self) -> list[Event] | None:
        """The events queued since the last take, waiting for some or for a nudge (an empty
        list then); None once the stream must end (closed, or it fell behind: `overflowed`
        says which)."""
        if not self.pending and not self.overflowed and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.pending:
            events, self.pending = self.pending, []
            return events
        if self.overflowed or self.closed:
            return None
        return []


# The hubs of this process, so that a server shutting down can end their streams.
_running: set[EventHub] = set()


def end_all_streams() -> None:
    """Ends every open stream of this process (each sends `error`, then closes), so that a
    server shutting down is not held open by streams that never end on their own."""
    for hub in list(_running):
        hub.end_streams()


def end_streams_on_signals() -> None:
    """Ends this process's streams as soon as SIGTERM or SIGINT arrives, then lets the
    handler the server installed run (it starts draining, which open streams would otherwise
    hold up until its timeout). Called at startup, after the server has put its handlers in
    place: in a single server and in each worker of `serve --workers N` alike. Only the main
    thread can handle signals; elsewhere (an app run in-process by a test client) nothing is
    changed."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        installed = signal.getsignal(sig)
        if not callable(installed):
            continue

        def handle(signum: int, frame: FrameType | None, installed: Any = installed) -> None:
            loop.call_soon_threadsafe(end_all_streams)
            installed(signum, frame)

        signal.signal(sig, handle)


class EventHub:
    """Reads committed events in position order and hands them to subscribers."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        connect: Callable[[], Awaitable[asyncpg.Connection]] | None = None,
        reader: StatementPool | None = None,
        poll_interval: float = 1.0,
        notify_interval: float = 0.05,
        read_interval: float = 0.1,
        keep_seconds: float = 600.0,
        keep_count: int = 10_000,
        ids: EventIds | None = None,
        max_streams: int = 10_000,
        max_streams_per_user: int = 10,
    ) -> None:
        self.engine = engine
        # The event ids tenants are shown (ticketing.events.ids).
        self.ids = ids or EventIds(secrets.token_urlsafe(48))
        # Opens the listening connection (PostgreSQL; None: no other process to hear from).
        self._connect = connect
        # A connection of its own that numbers and reads the outbox, one statement each
        # (PostgreSQL; None: through the engine, whose checkout, tenant hooks and reset cost
        # more than the statements). Not the creates' statement pool: behind their
        # statements the reads waited for a free connection (make bench-sse p99 251-300 ->
        # 398-586 ms).
        self._reader = reader
        self.poll_interval = poll_interval
        self.notify_interval = notify_interval
        self.read_interval = read_interval
        self.keep_seconds = keep_seconds
        self.keep_count = keep_count
        self.cursor = 0
        self.max_streams = max_streams
        self.max_streams_per_user = max_streams_per_user
        # Each user's open streams, oldest first.
        self._users: dict[tuple[uuid.UUID, str], list[Subscription]] = {}
        self._subscribers: dict[uuid.UUID, set[Subscription]] = {}
        self._listeners: list[Callable[[list[Event]], None]] = []
        self._wake = asyncio.Event()
        self._notify = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._remove_hook: Callable[[], None] | None = None
        self.streams = 0
        self._placed = False
        # Committed events not yet numbered, as last seen.
        self.waiting = 0

    async def start(self) -> None:
        """Starts reading after the newest event already numbered."""
        if self._reader is not None:
            await self._reader.start()
        try:
            await self._start_cursor()
        except DATABASE_ERRORS as exc:
            # The reader finds its place once the database answers.
            log.warning("event hub: database unavailable at start: %r", exc)
        self._remove_hook = outbox.on_commit(self.local_commit)
        _running.add(self)
        self._tasks.append(asyncio.create_task(self._read_loop()))
        self._tasks.append(asyncio.create_task(self._prune_loop()))
        if self._connect is not None:
            self._tasks.append(asyncio.create_task(self._listen_loop()))

    def end_streams(self) -> None:
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription.close()

    async def stop(self) -> None:
        _running.discard(self)
        if self._remove_hook:
            self._remove_hook()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self.end_streams()
        if self._reader is not None:
            await self._reader.close()

    def subscribe(self, tenant_id: uuid.UUID) -> Subscription:
        """A stream's subscription; it gets every event read after this call."""
        subscription = Subscription(tenant_id=tenant_id, start=self.cursor)
        self._subscribers.setdefault(tenant_id, set()).add(subscription)
        return subscription

    def check_capacity(self) -> None:
        """Refuses a new stream (503 with Retry-After) when this process serves as many
        as it may."""
        if self.streams >= self.max_streams:
            raise ServiceUnavailable(
                "This server has as many event streams open as it may; retry shortly",
                retry_after=STREAMS_RETRY_AFTER,
            )

    def open_stream(self, user: tuple[uuid.UUID, str], subscription: Subscription) -> None:
        """Counts a stream of `user` (tenant and subject) as open; past the per-user limit
        the user's oldest stream is ended."""
        opened = self._users.setdefault(user, [])
        opened.append(subscription)
        while len(opened) > self.max_streams_per_user:
            opened.pop(0).evict()

    def close_stream(self, user: tuple[uuid.UUID, str], subscription: Subscription) -> None:
        opened = self._users.get(user)
        if opened is not None:
            if subscription in opened:
                opened.remove(subscription)
            if not opened:
                del self._users[user]

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.tenant_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.tenant_id]

    def add_listener(self, listener: Callable[[list[Event]], None]) -> None:
        """Calls `listener` with the events of every read (any tenant), in position order."""
        self._listeners.append(listener)

    def local_commit(self) -> None:
        """A transaction of this process wrote events and committed."""
        self._wake.set()
        self._notify.set()

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_read = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            # Reads are at least `read_interval` apart: under a steady stream of commits each
            # read carries several events, so every stream wakes and writes once for all of
            # them instead of once each (a commit after a quiet spell is read at once), and the
            # reader's numbering and reading queries do not grow with the write rate.
            pause = last_read + self.read_interval - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            self._wake.clear()
            last_read = loop.time()
            try:
                await self._read_all()
            except DATABASE_ERRORS as exc:
                log.warning("event hub: reading failed: %r", exc)
                await asyncio.sleep(self.poll_interval)
            except Exception:
                log.exception("event hub: reading failed")
                await asyncio.sleep(self.poll_interval)

    async def _start_cursor(self) -> None:
        await repository.number_events(self.engine, self._reader)
        self.cursor = await repository.last_position(self.engine)
        self._placed = True

    async def _read_all(self) -> None:
        if not self._placed:
            # Streams and webhooks start with what happens from now on, not the history.
            await self._start_cursor()
        while True:
            waiting = await repository.number_events(self.engine, self._reader)
            if waiting >= 0:
                self.waiting = waiting
            events = await repository.read_after(
                self.engine, after=self.cursor, limit=BATCH, statements=self._reader
            )
            if events:
                self._dispatch(events)
                self.cursor = events[-1].position
            if len(events) == BATCH:
                continue
            if waiting != 0:
                # Committed events wait for an older transaction, or another process is
                # numbering them: look again shortly.
                await asyncio.sleep(self.read_interval)
                continue
            return

    def _dispatch(self, events: list[Event]) -> None:
        by_tenant: dict[uuid.UUID, list[Event]] = {}
        for event in events:
            by_tenant.setdefault(event.tenant_id, []).append(event)
        for tenant_id, tenant_events in by_tenant.items():
            for subscription in self._subscribers.get(tenant_id, ()):
                subscription.offer(tenant_events)
        for listener in self._listeners:
            try:
                listener(events)
            except Exception:
                log.exception("event listener failed")

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(60)
            try:
                await repository.prune(
                    self.engine, keep_seconds=self.keep_seconds, keep_count=self.keep_count
                )
            except Exception as exc:
                log.warning("event hub: pruning failed: %r", exc)

    async def _listen_loop(self) -> None:
        assert self._connect is not None
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await self._connect()
                await connection.add_listener(CHANNEL, lambda *_args: self._wake.set())
                # Whatever was announced while not listening.
                self._wake.set()
                while True:
                    await self._notify.wait()
                    self._notify.clear()
                    await connection.execute(f"NOTIFY {CHANNEL}")
                    await asyncio.sleep(self.notify_interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event hub: listening connection lost: %r", exc)
                await asyncio.sleep(self.poll_interval)
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=1)
