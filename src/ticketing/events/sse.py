"""Server-Sent Events framing and the stream loop every SSE endpoint shares."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import jwt
import orjson
from starlette.requests import Request

from ticketing.events.hub import EventHub, Subscription
from ticketing.events.repository import Event

MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def frame(event: str, data: Any, event_id: str) -> bytes:
    """One event: `id:`, `event:` and one `data:` line of JSON (`data` as JSON bytes already,
    or a value to serialise)."""
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id.encode(), event.encode(), body)


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
    render: Callable[[Event], bytes],
    heartbeat: float,
    expires_at: float | None,
    user: tuple[uuid.UUID, str],
) -> AsyncIterator[bytes]:
    """Opening events, then the replayed events, then live ones past `last_sent`, with
    heartbeats; ends with an `error` event when the token expires or the stream falls behind.
    `render` turns an event into the frames this stream shows of it (b"" when not visible);
    everything the hub hands over at once is written at once.

    `user` (tenant and subject) may keep the hub's `max_streams_per_user` streams open: a
    newer one ends the oldest, with an `error` event (`TOO_MANY_STREAMS`).

    A heartbeat goes out when nothing was written for `heartbeat` seconds. The stream's one
    timer is set for the next heartbeat or the token's expiry, whichever is first, and moved
    only when it fires early (events were written since): not once per wake-up.
    """
    hub.streams += 1
    hub.open_stream(user, subscription)
    loop = asyncio.get_running_loop()
    tenant_id = subscription.tenant_id
    encode = hub.ids.encode

    def sent() -> str:
        # The id of the last event sent (or of the position the stream started at).
        return encode(tenant_id, last_sent)

    timer: asyncio.TimerHandle | None = None
    rang = False

    def ring() -> None:
        nonlocal rang
        rang = True
        subscription.nudge()

    try:
        for name, data in opening:
            yield frame(name, data, sent())
        for missed in replay:
            shown = render(missed)
            if shown:
                yield shown
            last_sent = max(last_sent, missed.position)
        # Token expiry as a time of the loop's clock.
        expiry = None if expires_at is None else loop.time() + (expires_at - time.time())
        next_beat = loop.time() + heartbeat
        while True:
            now = loop.time()
            if expiry is not None and now >= expiry:
                yield frame(
                    "error",
                    {"code": "TOKEN_EXPIRED", "message": "The token has expired"},
                    sent(),
                )
                return
            if now >= next_beat:
                yield frame("heartbeat", {"at": int(time.time())}, sent())
                next_beat = now + heartbeat
            if timer is None or rang:
                # (A loop may run a timer up to a millisecond early: then it is set again.)
                rang = False
                due = next_beat if expiry is None else min(next_beat, expiry)
                timer = loop.call_at(due, ring)
            events = await subscription.take()
            if events is None and subscription.evicted:
                yield frame(
                    "error",
                    {
                        "code": "TOO_MANY_STREAMS",
                        "kind": "STREAM_CLOSED",
                        "message": "The user opened more streams than they may keep; "
                        "this one, their oldest, is closed",
                    },
                    sent(),
                )
                return
            if events is None:
                message = (
                    "The stream fell behind; reconnect with Last-Event-ID"
                    if subscription.overflowed
                    else "The server is shutting down; reconnect with Last-Event-ID"
                )
                yield frame("error", {"code": "STREAM_CLOSED", "message": message}, sent())
                return
            frames = []
            for event in events:
                if event.position <= last_sent:
                    continue
                shown = render(event)
                if shown:
                    frames.append(shown)
                last_sent = event.position
            if frames:
                yield b"".join(frames)
                next_beat = loop.time() + heartbeat
    finally:
        if timer is not None:
            timer.cancel()
        hub.streams -= 1
        hub.close_stream(user, subscription)
        hub.unsubscribe(subscription)
