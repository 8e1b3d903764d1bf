"""The delivery worker of one server process: turns events into deliveries and posts them.

Deliveries are rows (`webhook_deliveries`), one per webhook and event, made from the events
the process's hub reads; every process makes them and the key keeps one. A delivery is taken
for an attempt with a lease (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so any number of
workers share the work), posted with a timeout and bounded concurrency, and recorded: 2xx is
delivered; anything else (another status, a timeout, any error) is tried again after an
exponentially growing, jittered delay until 24 hours have passed. A worker that dies
mid-attempt leaves the lease to expire, and the delivery is tried again: at least once.
On start a worker also makes the deliveries of the last `backfill_seconds` of events, in
case a process died between reading an event and recording its deliveries. A webhook is
only sent the events that happened while it was active (`Webhook.active_since`), and only
active webhooks' deliveries are claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ticketing.events import outbox
from ticketing.events import repository as events
from ticketing.events.hub import EventHub
from ticketing.events.ids import EventIds
from ticketing.events.public import event_ticket
from ticketing.events.repository import Event
from ticketing.kit.db import StatementPool, transaction
from ticketing.kit.tenancy import bind_tenant
from ticketing.kit.time import isoformat, utcnow
from ticketing.models import Webhook
from ticketing.webhooks import repository, targets
from ticketing.webhooks.signing import signature
from ticketing.webhooks.targets import Resolver, TargetRefused, system_resolver

log = logging.getLogger("ticketing.webhooks")

KINDS = frozenset(
    {outbox.TICKET_CREATED, outbox.TICKET_UPDATED, outbox.TICKET_DELETED, outbox.COMMENT_CREATED}
)
GIVE_UP_AFTER = timedelta(hours=24)
MAX_DELAY = 3600.0


def webhook_body(event: Event, ids: EventIds) -> bytes:
    """What is posted for an event: {"id", "type", "occurredAt", "tenantId", "data"}."""
    data: dict[str, Any] = {
        "objectId": event.object_id,
        "version": event.version,
        "ticket": event_ticket(event),
    }
    if "comment" in event.payload:
        data["comment"] = event.payload["comment"]
    return orjson.dumps(
        {
            "id": ids.encode(event.tenant_id, event.position),
            "type": event.kind,
            "occurredAt": isoformat(event.created_at),
            "tenantId": str(event.tenant_id),
            "data": data,
        }
    )


def _aware(at: datetime) -> datetime:
    # SQLite gives back times without their zone; they are UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _while_active(webhook: Webhook, event: Event) -> bool:
    """Whether the event happened while the webhook was active (since it was created or
    last activated): a webhook is sent nothing from before, also when a worker that starts
    makes the deliveries of the recent events it may have missed."""
    since = webhook.active_since
    return since is None or _aware(event.created_at) >= _aware(since)


class WebhookWorker:
    """Makes and posts the deliveries of one process."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        hub: EventHub,
        *,
        allow_private: bool,
        timeout: float,
        concurrency: int,
        retry_base: float,
        poll_interval: float = 1.0,
        backfill_seconds: float = 600.0,
        statements: StatementPool | None = None,
    ) -> None:
        self.engine = engine
        # Where single statements run on PostgreSQL (None on SQLite).
        self.statements = statements
        self.sessionmaker = sessionmaker
        self.hub = hub
        self.allow_private = allow_private
        self.timeout = timeout
        self.concurrency = concurrency
        self.retry_base = retry_base
        self.poll_interval = poll_interval
        self.backfill_seconds = backfill_seconds
        self.on_outcome: Callable[[str], None] = lambda _outcome: None
        # Events read by the hub and not yet made into deliveries, oldest first.
        self._incoming: list[Event] = []
        self._arrived = asyncio.Event()
        self._due = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: list[asyncio.Task[None]] = []
        self._attempts: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        # How target hosts are resolved (once per attempt; see targets.check_target).
        self.resolver: Resolver = system_resolver

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=self.concurrency),
        )
        self.hub.add_listener(self._on_events)
        self._tasks = [
            asyncio.create_task(self._make_deliveries()),
            asyncio.create_task(self._send_due()),
            asyncio.create_task(self._backfill()),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._attempts]:
            task.cancel()
        for task in [*self._tasks, *self._attempts]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()

    def _on_events(self, events: list[Event]) -> None:
        wanted = [event for event in events if event.kind in KINDS]
        if wanted:
            self._incoming.extend(wanted)
            self._arrived.set()

    def _again(self, events: list[Event]) -> None:
        """Puts events whose deliveries could not be made back in front, in order."""
        self._incoming[:0] = events
        self._arrived.set()

    async def _backfill(self) -> None:
        try:
            cutoff = utcnow() - timedelta(seconds=self.backfill_seconds)
            after = max(0, self.hub.cursor - 10_000)
            while after < self.hub.cursor:
                batch = await events.read_after(self.engine, after=after, limit=500)
                if not batch:
                    return
                recent = [
                    event
                    for event in batch
                    if event.position <= self.hub.cursor
                    and event.created_at.replace(tzinfo=cutoff.tzinfo) >= cutoff
                ]
                self._on_events(recent)
                if batch[-1].position >= self.hub.cursor:
                    return
                after = batch[-1].position
        except Exception as exc:
            log.warning("webhooks: backfill failed: %r", exc)

    async def _make_deliveries(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            batch, self._incoming = self._incoming[:500], self._incoming[500:]
            if self._incoming:
                self._arrived.set()
            if not batch:
                continue
            by_tenant: dict[uuid.UUID, list[Event]] = {}
            for event in batch:
                by_tenant.setdefault(event.tenant_id, []).append(event)
            try:
                # One question for the batch; most tenants have no webhook.
                subscribed = await repository.tenants_with_webhooks(
                    self.engine, tenant_ids=list(by_tenant), statements=self.statements
                )
            except Exception as exc:
                log.warning("webhooks: reading webhooks failed: %r", exc)
                await asyncio.sleep(self.poll_interval)
                self._again(batch)
                continue
            if not subscribed:
                continue
            for tenant_id, tenant_events in by_tenant.items():
                if tenant_id not in subscribed:
                    continue
                try:
                    await self._deliveries_for(tenant_id, tenant_events)
                except Exception as exc:
                    log.warning("webhooks: making deliveries failed: %r", exc)
                    # Not lost: the events are read again by the backfill of the next start;
                    # try again shortly meanwhile.
                    await asyncio.sleep(self.poll_interval)
                    self._again(tenant_events)
            self._due.set()

    async def _deliveries_for(self, tenant_id: uuid.UUID, tenant_events: list[Event]) -> None:
        bind_tenant(tenant_id)
        async with transaction(self.sessionmaker) as session:
            webhooks = await repository.active_webhooks(session, tenant_id=tenant_id)
            now = utcnow()
            rows: list[dict[str, Any]] = [
                {
                    "tenant_id": tenant_id,
                    "webhook_id": webhook.id,
                    "event_id": event.position,
                    "kind": event.kind,
                    "body": webhook_body(event, self.hub.ids).decode(),
                    "status": repository.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "delivered_at": None,
                    "log": [],
                }
                for event in tenant_events
                for webhook in webhooks
                if event.kind in webhook.events and _while_active(webhook, event)
            ]
            await repository.add_deliveries(session, rows=rows)

    async def _send_due(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), self.poll_interval)
            self._due.clear()
            try:
                free = self.concurrency - len(self._attempts)
                if free <= 0:
                    continue
                claimed = await repository.claim_due(
                    self.engine, limit=free, lease_seconds=self.timeout + 30
                )
            except Exception as exc:
                log.warning("webhooks: claiming deliveries failed: %r", exc)
                continue
            for delivery in claimed:
                task = asyncio.create_task(self._attempt(delivery))
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)
            if len(claimed) == free:
                self._due.set()

    async def _attempt(self, delivery: repository.Claimed) -> None:
        async with self._slots:
            started = time.perf_counter()
            attempt: dict[str, Any] = {"at": isoformat(utcnow())}
            status_code: int | None = None
            try:
                body = delivery.body.encode()
                timestamp = str(int(time.time()))
                assert self._client is not None
                response = await targets.post(
                    self._client,
                    delivery.url,
                    content=body,
                    allow_private=self.allow_private,
                    resolver=self.resolver,
                    headers={
                        "content-type": "application/json",
                        "user-agent": "ticketing-webhooks",
                        "X-Ticketing-Event": delivery.kind,
                        "X-Ticketing-Delivery": self.hub.ids.encode(
                            delivery.tenant_id, delivery.event_id
                        ),
                        "X-Ticketing-Timestamp": timestamp,
                        "X-Ticketing-Signature": signature(delivery.secret, timestamp, body),
                    },
                )
                status_code = response.status_code
                attempt["status"] = status_code
            except TargetRefused as exc:
                attempt["error"] = f"refused: {exc}"
            except httpx.TimeoutException:
                attempt["error"] = f"timed out after {self.timeout:g} s"
            except httpx.HTTPError as exc:
                attempt["error"] = f"{type(exc).__name__}: {exc}"[:500]
            except Exception as exc:
                # Anything else (a URL the client cannot use, say) is a failed attempt too:
                # recorded, retried with the backoff and given up after 24 hours, rather than
                # ending this task and leaving the delivery to be claimed again at every lease.
                log.warning(
                    "webhooks: attempt of %s event %s failed: %r",
                    delivery.webhook_id,
                    delivery.event_id,
                    exc,
                )
                attempt["error"] = f"{type(exc).__name__}: {exc}"[:500]
            attempt["ms"] = round((time.perf_counter() - started) * 1000, 1)
        delivered = status_code is not None and 200 <= status_code < 300
        now = utcnow()
        if delivered:
            status, next_at, outcome = repository.DELIVERED, now, "delivered"
        elif now - delivery.created_at.replace(tzinfo=now.tzinfo) >= GIVE_UP_AFTER:
            status, next_at, outcome = repository.FAILED, now, "gave_up"
        else:
            delay = min(MAX_DELAY, self.retry_base * 2**delivery.attempts)
            delay *= random.uniform(0.5, 1.5)
            status, next_at, outcome = repository.PENDING, now + timedelta(seconds=delay), "retry"
        try:
            bind_tenant(delivery.tenant_id)
            async with transaction(self.sessionmaker) as session:
                await repository.record_attempt(
                    session,
                    claimed=delivery,
                    attempt=attempt,
                    status=status,
                    next_attempt_at=next_at,
                )
        except Exception as exc:
            # The lease runs out and the delivery is attempted again: at least once.
            log.warning("webhooks: recording an attempt failed: %r", exc)
        self.on_outcome(outcome)
        if status == repository.PENDING:
            loop = asyncio.get_running_loop()
            loop.call_later(max(0.0, (next_at - utcnow()).total_seconds()), self._due.set)
