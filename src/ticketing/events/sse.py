"""Server-Sent Events framing and the stream loop every SSE endpoint shares."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import jwt
import orjson
from starlette.requests import Request

from ticketing.events.hub import EventHub, Subscription
from ticketing.events.repository import Event

MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def frame(event: str, data: Any, event_id: int) -> bytes:
    """One event: `id:`, `event:` and one `data:` line of JSON (`data` as JSON bytes already,
    or a value to serialise)."""
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, event.encode(), body)


def token_expiry(request: Request) -> float | None:
    """When the (already verified) bearer token of the request expires, as a Unix time."""
    header = request.headers.get("authorization", "")
    token = header.split(" ", 1)[1] if " " in header else ""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


async def run_stream(
    hub: EventHub,
    subscription: Subscription,
    *,
    opening: Iterable[tuple[str, Any]],
    replay: Iterable[Event],
    last_sent: int,
    render: Callable[[Event], Iterable[tuple[str, Any]]],
    heartbeat: float,
    expires_at: float | None,
) -> AsyncIterator[bytes]:
    """Opening events, then the replayed events, then live ones past `last_sent`, with
    heartbeats; ends with an `error` event when the token expires or the stream falls behind.
    `render` turns an event into what this stream shows of it (nothing when not visible)."""
    hub.streams += 1
    try:
        for name, data in opening:
            yield frame(name, data, last_sent)
        for missed in replay:
            for name, data in render(missed):
                yield frame(name, data, missed.position)
            last_sent = max(last_sent, missed.position)
        while True:
            wait = heartbeat
            if expires_at is not None:
                wait = min(wait, expires_at - time.time())
                if wait <= 0:
                    yield frame(
                        "error",
                        {"code": "TOKEN_EXPIRED", "message": "The token has expired"},
                        last_sent,
                    )
                    return
            try:
                event: Event | None = await asyncio.wait_for(subscription.queue.get(), wait)
            except TimeoutError:
                if expires_at is None or time.time() < expires_at:
                    yield frame("heartbeat", {"at": int(time.time())}, last_sent)
                continue
            if event is None:
                message = (
                    "The stream fell behind; reconnect with Last-Event-ID"
                    if subscription.overflowed
                    else "The server is shutting down; reconnect with Last-Event-ID"
                )
                yield frame("error", {"code": "STREAM_CLOSED", "message": message}, last_sent)
                return
            if event.position <= last_sent:
                continue
            for name, data in render(event):
                yield frame(name, data, event.position)
            last_sent = event.position
    finally:
        hub.streams -= 1
        hub.unsubscribe(subscription)
