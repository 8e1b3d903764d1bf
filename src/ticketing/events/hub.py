"""The process's one reader of the outbox, fanning events out to the streams of each tenant.

Streams never query for events themselves: they subscribe here and get what this reader
reads, so a thousand streams cost one query per wake-up, and an idle stream holds no database
connection. On PostgreSQL a dedicated connection LISTENs for other processes' wake-ups and
sends this process's (coalesced, outside any write transaction, with an empty payload: the
reader reads by position); a poll every `poll_interval` seconds is the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ticketing.events import outbox, repository
from ticketing.events.repository import Event
from ticketing.kit.db import DATABASE_ERRORS

log = logging.getLogger("ticketing.events")

CHANNEL = "ticketing_events"
BATCH = 500
# A stream that falls this many events behind is closed (it can resume with Last-Event-ID).
QUEUE_SIZE = 10_000


@dataclass(eq=False)
class Subscription:
    """One stream's place at the hub: the events of its tenant, from `start` on."""

    tenant_id: uuid.UUID
    start: int
    queue: asyncio.Queue[Event | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE)
    )
    overflowed: bool = False

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            # Make room for the sentinel that tells the stream it fell behind.
            self.queue.get_nowait()
            self.queue.put_nowait(None)


# The hubs of this process, so that a server shutting down can end their streams.
_running: set[EventHub] = set()


def end_all_streams() -> None:
    """Ends every open stream of this process (each sends `error`, then closes), so that a
    server shutting down is not held open by streams that never end on their own."""
    for hub in list(_running):
        hub.end_streams()


class EventHub:
    """Reads committed events in position order and hands them to subscribers."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        listen_url: str | None = None,
        poll_interval: float = 1.0,
        notify_interval: float = 0.05,
        read_interval: float = 0.05,
        keep_seconds: float = 600.0,
        keep_count: int = 10_000,
    ) -> None:
        self.engine = engine
        self.listen_url = listen_url
        self.poll_interval = poll_interval
        self.notify_interval = notify_interval
        self.read_interval = read_interval
        self.keep_seconds = keep_seconds
        self.keep_count = keep_count
        self.cursor = 0
        self._subscribers: dict[uuid.UUID, set[Subscription]] = {}
        self._listeners: list[Callable[[Event], None]] = []
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
        try:
            await self._start_cursor()
        except DATABASE_ERRORS as exc:
            # The reader finds its place once the database answers.
            log.warning("event hub: database unavailable at start: %r", exc)
        self._remove_hook = outbox.on_commit(self.local_commit)
        _running.add(self)
        self._tasks.append(asyncio.create_task(self._read_loop()))
        self._tasks.append(asyncio.create_task(self._prune_loop()))
        if self.listen_url:
            self._tasks.append(asyncio.create_task(self._listen_loop()))

    def end_streams(self) -> None:
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                with contextlib.suppress(asyncio.QueueFull):
                    subscription.queue.put_nowait(None)

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

    def subscribe(self, tenant_id: uuid.UUID) -> Subscription:
        """A stream's subscription; it gets every event read after this call."""
        subscription = Subscription(tenant_id=tenant_id, start=self.cursor)
        self._subscribers.setdefault(tenant_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.tenant_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.tenant_id]

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Calls `listener` with every event read (any tenant)."""
        self._listeners.append(listener)

    def local_commit(self) -> None:
        """A transaction of this process wrote events and committed."""
        self._wake.set()
        self._notify.set()

    async def _read_loop(self) -> None:
        clock = asyncio.get_running_loop().time
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            started = clock()
            try:
                await self._read_all()
            except DATABASE_ERRORS as exc:
                log.warning("event hub: reading failed: %r", exc)
                await asyncio.sleep(self.poll_interval)
            except Exception:
                log.exception("event hub: reading failed")
                await asyncio.sleep(self.poll_interval)
            # Under steady writes the wake-up is set again by the next commit at once: one
            # pass per `read_interval` at most, each numbering and reading what committed
            # meanwhile as one batch, keeps the reader's queries from growing with the write
            # rate (passes back to back took a database core's share from the creates).
            await asyncio.sleep(max(0.0, self.read_interval - (clock() - started)))

    async def _start_cursor(self) -> None:
        await repository.number_events(self.engine)
        self.cursor = await repository.last_position(self.engine)
        self._placed = True

    async def _read_all(self) -> None:
        if not self._placed:
            # Streams and webhooks start with what happens from now on, not the history.
            await self._start_cursor()
        while True:
            waiting = await repository.number_events(self.engine)
            if waiting >= 0:
                self.waiting = waiting
            events = await repository.read_after(self.engine, after=self.cursor, limit=BATCH)
            for event in events:
                self._dispatch(event)
                self.cursor = event.position
            if len(events) == BATCH:
                continue
            if waiting != 0:
                # Committed events wait for an older transaction, or another process is
                # numbering them: look again shortly.
                await asyncio.sleep(self.read_interval)
                continue
            return

    def _dispatch(self, event: Event) -> None:
        for subscription in self._subscribers.get(event.tenant_id, ()):
            subscription.offer(event)
        for listener in self._listeners:
            try:
                listener(event)
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
        assert self.listen_url
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self.listen_url)
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


def listen_url(database_url: str) -> str | None:
    """The plain PostgreSQL URL for the listening connection (None for SQLite)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
