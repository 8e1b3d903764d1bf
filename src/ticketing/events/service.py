"""The list-updates stream: what a caller may see of each ticket event, replay, snapshot."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from ticketing.auth.access import Access
from ticketing.events import outbox, repository, sse
from ticketing.events.hub import EventHub, Subscription
from ticketing.events.ids import EventIds
from ticketing.events.public import event_ticket
from ticketing.events.repository import Event
from ticketing.kit.errors import InputValidationFailure
from ticketing.tickets import listing

# What each ticket event is called on the list-updates stream.
LIST_EVENTS = {
    outbox.TICKET_CREATED: "created",
    outbox.TICKET_UPDATED: "updated",
    outbox.TICKET_DELETED: "deleted",
}


StreamBody = AsyncIterator[bytes]

# Every stream of a process that shows an event shows the same frame: it is serialised and
# framed once, by the first stream to write it.
_RENDERED: OrderedDict[int, bytes] = OrderedDict()
_RENDERED_SIZE = 4096


def list_update_json(event: Event) -> bytes:
    """The data of a list-update event, as JSON."""
    ticket = event_ticket(event)
    return orjson.dumps(
        {
            "objectId": event.object_id,
            "version": event.version,
            "etag": ticket["etag"],
            "ticket": ticket,
        }
    )


def list_update_frame(event: Event, name: str, ids: EventIds) -> bytes:
    """The list-update event `name` (`created`, `updated`, `deleted`) of `event`, framed."""
    rendered = _RENDERED.get(event.position)
    if rendered is None:
        event_id = ids.encode(event.tenant_id, event.position)
        rendered = sse.frame(name, list_update_json(event), event_id)
        _RENDERED[event.position] = rendered
        if len(_RENDERED) > _RENDERED_SIZE:
            _RENDERED.popitem(last=False)
    return rendered


def visible(access: Access, event: Event) -> bool:
    """The list's visibility: the caller's tenant, and only own tickets for those who may
    see only their own."""
    if event.tenant_id != access.tenant_id:
        return False
    own = access.own_only
    return own is None or event.submitted_by == own


def parse_last_event_id(
    headers: Mapping[str, str], ids: EventIds, tenant_id: uuid.UUID
) -> int | None:
    """The `Last-Event-ID` header as a position (400 when it is not an id this tenant was
    sent)."""
    value = headers.get("last-event-id")
    if value is None or value.strip() == "":
        return None
    position = ids.decode(tenant_id, value.strip())
    if position is None:
        raise InputValidationFailure(
            {"Last-Event-ID": ["Last-Event-ID must be an event id sent by this stream"]}
        )
    return position


async def resume(
    session: AsyncSession,
    *,
    subscription: Subscription,
    last_event_id: int | None,
) -> tuple[list[Event], int, str | None]:
    """Where a stream with `subscription` starts: the events to replay, the position it has
    sent up to, and why it must send `reset` (None: it need not).

    Without `Last-Event-ID` the stream starts live. From before what is kept, or from past
    the newest event there is (an id from another database, or a restored one), the client
    cannot be told what it missed: `reset`, then live events. An id past this process's
    reader but not past the newest event is one another process has already sent: nothing
    to replay, and live events from after it.
    """
    start = subscription.start
    if last_event_id is None:
        return [], await _own_start(session, subscription), None
    horizon = await repository.pruned_through(session, tenant_id=subscription.tenant_id)
    if last_event_id < horizon:
        return [], await _own_start(session, subscription), "Events since Last-Event-ID are gone"
    if last_event_id > start and last_event_id > await repository.newest_position(session):
        return [], await _own_start(session, subscription), "Last-Event-ID is past the newest event"
    replay = await repository.tenant_events(
        session, tenant_id=subscription.tenant_id, after=last_event_id, through=start
    )
    return replay, last_event_id, None


async def _own_start(session: AsyncSession, subscription: Subscription) -> int:
    # A stream that starts live starts after the tenant's own newest event up to where the
    # subscription begins: no event of the tenant lies in between, and the id it is shown
    # for that point (the `connected` event's) moves with the tenant's own events only, not
    # with every tenant's (ticketing.events.ids).
    return await repository.tenant_position(
        session, tenant_id=subscription.tenant_id, through=subscription.start
    )


def stream_user(access: Access) -> tuple[uuid.UUID, str]:
    """Whose stream it is, for the per-user limit: the tenant and the token's subject."""
    principal = access.principal
    return access.tenant_id, principal.subject or principal.username


def parse_flag(query: Mapping[str, str], name: str) -> bool:
    """A `true`/`false` query parameter (absent: false)."""
    value = query.get(name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise InputValidationFailure({name: [f"{name} must be true or false"]})
    return value == "true"


async def list_updates(
    session: AsyncSession,
    *,
    request: Request,
    access: Access,
    hub: EventHub,
    subscription: Subscription,
    heartbeat: float,
    expires_at: float | None = None,
) -> StreamBody:
    """Prepares a list-updates stream (snapshot and replay are read now, with `session`) and
    returns its body; the body holds no database connection. It ends when the bearer token
    expires (`expires_at`: when the caller's token, if not a bearer header's, expires).

    `subscription` is the caller's, taken before `session` began: the snapshot and the replay
    must hold every event up to its start (a replica's session must have replayed past it).
    The caller unsubscribes when this raises; the body unsubscribes when it ends.
    """
    if subscription.tenant_id != access.tenant_id:
        raise ValueError("the subscription is for another tenant")
    snapshot = parse_flag(request.query_params, "snapshot")
    last_event_id = parse_last_event_id(request.headers, hub.ids, access.tenant_id)
    opening: list[tuple[str, Any]] = [
        (
            "connected",
            {
                "clientId": str(uuid.uuid4()),
                "tenantId": str(access.tenant_id),
                "heartbeatSeconds": int(heartbeat) if heartbeat.is_integer() else heartbeat,
            },
        )
    ]
    if snapshot:
        page = await listing.list_tickets(session, access=access, raw_body=b"", content_type=None)
        opening.append(("snapshot", {"tickets": page["value"], "total": page["count"]}))
    replay, last_sent, reset = await resume(
        session, subscription=subscription, last_event_id=last_event_id
    )
    if reset is not None:
        opening.append(("reset", {"reason": reset}))

    def render(event: Event) -> bytes:
        name = LIST_EVENTS.get(event.kind)
        if name is None or not visible(access, event):
            return b""
        return list_update_frame(event, name, hub.ids)

    return sse.run_stream(
        hub,
        subscription,
        opening=opening,
        replay=replay,
        last_sent=last_sent,
        render=render,
        heartbeat=heartbeat,
        expires_at=expires_at if expires_at is not None else sse.token_expiry(request),
        user=stream_user(access),
    )
