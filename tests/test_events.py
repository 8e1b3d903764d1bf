"""Ticket events: the outbox rows written with each change, and the SSE list-updates stream
(order, replay with Last-Event-ID, visibility, heartbeats, token expiry) over real HTTP."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.sse_client import SseEvent, SseReader
from tests.support import Database, Server, Tenant, seed_body, start_server, stop_server
from tests.ticket_api import (
    QUERY,
    assert_error,
    call,
    created,
    delete,
    numbered,
    patch,
    updated,
    user_token,
)
from ticketing.events.hub import HUB_CONNECTION_NAME

UPDATES = "/api/v2/ticketing/ticket/sse/list/updates"
CHANGES = ("created", "updated", "deleted")


def open_stream(
    tenant: Tenant,
    *,
    base_url: str | None = None,
    token: str | None = None,
    last_event_id: str | None = None,
    params: dict[str, str] | None = None,
) -> SseReader:
    headers = tenant.headers(token, accept="text/event-stream")
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    return SseReader(
        f"{base_url or tenant.base_url}{UPDATES}", headers, {**QUERY, **(params or {})}
    )


def changes(events: list[SseEvent]) -> list[SseEvent]:
    return [e for e in events if e.event in CHANGES]


def test_each_change_writes_one_event_row_in_its_transaction(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    object_id = ticket["object_id"]
    ticket = updated(patch(tenant, object_id, {"etag": ticket["etag"], "summary": "Changed"}))
    comment = call(tenant, "POST", f"/ticket/{object_id}/comments", json={"body": "<p>Hi</p>"})
    assert comment.status_code == 200, comment.text
    assert delete(tenant, object_id, ticket["etag"]).status_code == 200
    stale = patch(tenant, object_id, {"etag": ticket["etag"], "summary": "Never"})
    assert stale.status_code == 404
    rows = tenant.db.fetch(
        "SELECT kind, object_id, version FROM ticket_events WHERE tenant_id = :t ORDER BY id",
        t=uuid.UUID(tenant.id),
    )
    assert rows == [
        ("ticket.created", object_id, 2),
        ("ticket.updated", object_id, 3),
        ("comment.created", object_id, 3),
        ("ticket.deleted", object_id, 4),
    ]


def test_a_create_refused_by_validation_writes_no_event(tenant: Tenant) -> None:
    bad = seed_body()
    del bad["ticketBody"]["offerId"]
    assert tenant.create(bad).status_code == 400
    rows = tenant.db.fetch(
        "SELECT count(*) FROM ticket_events WHERE tenant_id = :t", t=uuid.UUID(tenant.id)
    )
    assert rows == [(0,)]


def test_stream_announces_connected_then_each_change_with_the_public_ticket(
    tenant: Tenant, streams: list[SseReader], position: Callable[[Tenant, str | None], int]
) -> None:
    reader = open_stream(tenant)
    streams.append(reader)
    assert reader.status == 200
    assert reader.content_type.startswith("text/event-stream")
    first = reader.wait_for(lambda events: len(events) >= 1)[0]
    assert first.event == "connected"
    assert first.data["tenantId"] == tenant.id
    assert first.data["heartbeatSeconds"] == 15
    uuid.UUID(first.data["clientId"])

    ticket = created(tenant.create())
    object_id = ticket["object_id"]
    after = updated(patch(tenant, object_id, {"etag": ticket["etag"], "status": "In Progress"}))
    assert delete(tenant, object_id, after["etag"]).status_code == 200
    events = changes(reader.wait_for(lambda events: len(changes(events)) >= 3))
    assert [e.event for e in events] == ["created", "updated", "deleted"]
    assert events[0].data == {
        "objectId": object_id,
        "version": 2,
        "etag": ticket["etag"],
        "ticket": ticket,
    }
    assert events[1].data == {
        "objectId": object_id,
        "version": 3,
        "etag": after["etag"],
        "ticket": after,
    }
    assert events[2].data["version"] == 4
    assert events[2].data["ticket"]["deleted_seq"] >= 1
    ids = [position(tenant, e.id) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_snapshot_sends_the_first_page_of_the_default_list(
    tenant: Tenant, streams: list[SseReader]
) -> None:
    tickets = [created(tenant.create(seed_body(summary=f"s{i}"))) for i in range(3)]
    reader = open_stream(tenant, params={"snapshot": "true"})
    streams.append(reader)
    events = reader.wait_for(lambda events: len(events) >= 2)
    assert [e.event for e in events[:2]] == ["connected", "snapshot"]
    listed = call(tenant, "POST", "/ticket/list", json={}).json()["data"]
    assert events[1].data == {"tickets": listed["value"], "total": 3}
    assert {t["object_id"] for t in events[1].data["tickets"]} == {t["object_id"] for t in tickets}


def test_visibility_follows_the_list_tenant_and_own_tickets(
    tenant: Tenant, make_tenant: Callable[..., Tenant], streams: list[SseReader]
) -> None:
    other = make_tenant()
    alice, bob = user_token(tenant, "alice"), user_token(tenant, "bob")
    alice_stream = open_stream(tenant, token=alice)
    agent_stream = open_stream(tenant)
    other_stream = open_stream(other)
    streams.extend([alice_stream, agent_stream, other_stream])

    mine = created(tenant.create(seed_body(summary="alice's"), token=alice))
    created(tenant.create(seed_body(summary="bob's"), token=bob))
    created(tenant.create(seed_body(summary="agent's")))
    created(other.create(seed_body(summary="elsewhere")))

    agent_events = agent_stream.wait_for(lambda events: len(changes(events)) >= 3)
    assert [e.data["ticket"]["summary"] for e in changes(agent_events)] == [
        "alice's",
        "bob's",
        "agent's",
    ]
    other_events = other_stream.wait_for(lambda events: len(changes(events)) >= 1)
    assert [e.data["ticket"]["summary"] for e in changes(other_events)] == ["elsewhere"]
    # Everything the agent saw has been offered to alice's stream by now.
    time.sleep(0.5)
    assert [e.data["objectId"] for e in changes(alice_stream.snapshot())] == [mine["object_id"]]


def test_last_event_id_replays_what_was_missed(
    tenant: Tenant, streams: list[SseReader], position: Callable[[Tenant, str | None], int]
) -> None:
    reader = open_stream(tenant)
    streams.append(reader)
    first = created(tenant.create(seed_body(summary="seen")))
    seen = changes(reader.wait_for(lambda events: len(changes(events)) >= 1))[0]
    reader.close()
    missed = [created(tenant.create(seed_body(summary=f"missed {i}"))) for i in range(3)]

    again = open_stream(tenant, last_event_id=seen.id)
    streams.append(again)
    events = again.wait_for(lambda events: len(changes(events)) >= 3)
    assert events[0].event == "connected" and events[0].id == seen.id
    replayed = changes(events)
    assert [e.data["objectId"] for e in replayed] == [t["object_id"] for t in missed]
    assert first["object_id"] not in [e.data["objectId"] for e in replayed]
    ids = [position(tenant, e.id) for e in replayed]
    assert ids == sorted(ids) and ids[0] > position(tenant, seen.id)
    # Live events follow the replay.
    live = created(tenant.create(seed_body(summary="live")))
    events = again.wait_for(lambda events: len(changes(events)) >= 4)
    assert changes(events)[-1].data["objectId"] == live["object_id"]


def test_replay_from_before_what_is_kept_sends_reset_then_live_events(
    tenant: Tenant, streams: list[SseReader], opaque: Callable[[Tenant, int], str]
) -> None:
    numbered(tenant, created(tenant.create()))
    position = tenant.db.fetch(
        "SELECT max(position) FROM ticket_events WHERE tenant_id = :t", t=uuid.UUID(tenant.id)
    )
    tenant.db.fetch(
        "INSERT INTO event_horizons (tenant_id, pruned_through) VALUES (:t, :p)",
        t=uuid.UUID(tenant.id),
        p=position[0][0],
    )
    reader = open_stream(tenant, last_event_id=opaque(tenant, 0))
    streams.append(reader)
    events = reader.wait_for(lambda events: len(events) >= 2)
    assert [e.event for e in events[:2]] == ["connected", "reset"]
    live = created(tenant.create(seed_body(summary="after reset")))
    events = reader.wait_for(lambda events: len(changes(events)) >= 1)
    assert [e.data["objectId"] for e in changes(events)] == [live["object_id"]]


def test_replay_from_past_the_newest_event_sends_reset_then_live_events(
    tenant: Tenant,
    streams: list[SseReader],
    position: Callable[[Tenant, str | None], int],
    opaque: Callable[[Tenant, int], str],
) -> None:
    numbered(tenant, created(tenant.create()))
    newest = tenant.db.fetch("SELECT max(position) FROM ticket_events")[0][0]
    # An id from another database, or from before a restore: ahead of every event there is.
    reader = open_stream(tenant, last_event_id=opaque(tenant, newest + 100_000))
    streams.append(reader)
    events = reader.wait_for(lambda events: len(events) >= 2)
    assert [e.event for e in events[:2]] == ["connected", "reset"]
    # The stream goes on from an event there is, not from the id the client sent (the event
    # may have been numbered since `newest` was read, by this server's hub or another's).
    assert (
        position(tenant, events[0].id)
        <= tenant.db.fetch("SELECT max(position) FROM ticket_events")[0][0]
    )
    live = created(tenant.create(seed_body(summary="after reset")))
    events = reader.wait_for(lambda events: len(changes(events)) >= 1)
    assert [e.data["objectId"] for e in changes(events)] == [live["object_id"]]


def test_event_ids_tell_a_tenant_nothing_about_other_tenants(
    make_tenant: Callable[..., Tenant],
    streams: list[SseReader],
    position: Callable[[Tenant, str | None], int],
) -> None:
    """Ids are opaque per tenant: another tenant's activity does not move them, one tenant's
    id means nothing to another, and they still resume."""
    quiet, busy = make_tenant(), make_tenant()
    numbered(quiet, created(quiet.create(seed_body(summary="quiet's own"))))

    def connected_id() -> str:
        reader = open_stream(quiet)
        streams.append(reader)
        [hello] = reader.wait_for(lambda events: len(events) >= 1)[:1]
        assert hello.event == "connected" and hello.id is not None
        return hello.id

    before = connected_id()
    for i in range(5):
        numbered(busy, created(busy.create(seed_body(summary=f"busy {i}"))))
    # Five events of another tenant later, the quiet tenant is shown the same id.
    assert connected_id() == before
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", before), before

    reader = open_stream(quiet)
    streams.append(reader)
    ticket = created(quiet.create(seed_body(summary="quiet again")))
    [event] = changes(reader.wait_for(lambda events: len(changes(events)) >= 1))
    assert event.data["objectId"] == ticket["object_id"]
    assert event.id is not None and not event.id.isdigit() and event.id != before
    # The same event's id is the same on every stream, and it resumes.
    again = open_stream(quiet, last_event_id=before)
    streams.append(again)
    replayed = changes(again.wait_for(lambda events: len(changes(events)) >= 1))
    assert [(e.id, e.data["objectId"]) for e in replayed] == [(event.id, ticket["object_id"])]
    assert position(quiet, event.id) > position(quiet, before)
    # Another tenant cannot use it: not an id of theirs.
    refused = busy.client.get(
        f"{busy.base_url}{UPDATES}",
        params=QUERY,
        headers={**busy.headers(accept="text/event-stream"), "Last-Event-ID": event.id},
    )
    assert refused.status_code == 400, refused.text
    assert "Last-Event-ID" in refused.json()["validationResult"]["reason"]
    # Nor are plain numbers ids: taken as positions, they would tell the number of events of
    # every tenant (a tenant would try numbers until one is past the newest).
    for number in ("1", "7", str(position(quiet, event.id))):
        as_number = quiet.client.get(
            f"{quiet.base_url}{UPDATES}",
            params=QUERY,
            headers={**quiet.headers(accept="text/event-stream"), "Last-Event-ID": number},
        )
        assert as_number.status_code == 400, as_number.text


def test_bad_stream_requests_are_refused_in_the_envelope(tenant: Tenant) -> None:
    url = f"{tenant.base_url}{UPDATES}"
    client = tenant.client
    no_token = {k: v for k, v in tenant.headers().items() if k != "authorization"}
    assert_error(client.get(url, params=QUERY, headers=no_token), 401, "AUTHENTICATION_FAILURE")
    bad_id = tenant.headers(**{"Last-Event-ID": "yesterday"})
    reason = assert_error(client.get(url, params=QUERY, headers=bad_id), 400)
    assert "Last-Event-ID" in reason["validationResult"]["reason"]
    bad_flag = client.get(url, params={**QUERY, "snapshot": "maybe"}, headers=tenant.headers())
    assert "snapshot" in assert_error(bad_flag, 400)["validationResult"]["reason"]
    no_query = client.get(url, headers=tenant.headers())
    assert_error(no_query, 400, "INPUT_VALIDATION_FAILURE")


def test_an_expiring_token_ends_its_stream_with_an_error_event(
    tenant: Tenant, streams: list[SseReader]
) -> None:
    reader = open_stream(tenant, token=tenant.token(ttl=2))
    streams.append(reader)
    assert reader.ended.wait(15), "the stream outlived its token"
    events = reader.snapshot()
    assert events[-1].event == "error"
    assert events[-1].data["code"] == "TOKEN_EXPIRED"


@pytest.fixture
def own_server(database: Database, data_dir: Path) -> Iterator[Callable[..., Server]]:
    """Starts servers of the test's own (stopped after it)."""
    started: list[Server] = []

    def start(workers: int = 1, **env: str) -> Server:
        server = start_server(
            database_url=database.url, data_dir=data_dir, env=env, workers=workers
        )
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            stop_server(server)


def test_heartbeats_arrive_at_the_configured_interval(
    tenant: Tenant, own_server: Callable[..., Server], streams: list[SseReader]
) -> None:
    server = own_server(TICKETING_SSE_HEARTBEAT="0.5")
    reader = open_stream(tenant, base_url=server.base_url)
    streams.append(reader)
    events = reader.wait_for(lambda events: len(events) >= 3, timeout=10)
    assert events[0].event == "connected" and events[0].data["heartbeatSeconds"] == 0.5
    assert [e.event for e in events[1:3]] == ["heartbeat", "heartbeat"]


def test_resume_with_last_event_id_across_a_server_restart(
    tenant: Tenant, own_server: Callable[..., Server], streams: list[SseReader]
) -> None:
    server = own_server()
    reader = open_stream(tenant, base_url=server.base_url)
    streams.append(reader)
    created(tenant.create())
    seen = changes(reader.wait_for(lambda events: len(changes(events)) >= 1))[-1]
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    reader.close()
    # Changes made through another process while this one is down.
    missed = [created(tenant.create(seed_body(summary=f"while down {i}"))) for i in range(3)]

    restarted = own_server()
    again = open_stream(tenant, base_url=restarted.base_url, last_event_id=seen.id)
    streams.append(again)
    events = changes(again.wait_for(lambda events: len(changes(events)) >= 3))
    assert [e.data["objectId"] for e in events] == [t["object_id"] for t in missed]


def _work(tenant: Tenant, base_urls: list[str], count: int) -> list[tuple[str, str, int]]:
    """Creates `count` tickets and updates half of them, concurrently, spread over servers;
    returns (objectId, kind, version) of every change that succeeded."""

    async def run() -> list[tuple[str, str, int]]:
        done: list[tuple[str, str, int]] = []
        limits = httpx.Limits(max_connections=24)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:

            async def one(i: int) -> None:
                base = base_urls[i % len(base_urls)]
                response = await client.post(
                    f"{base}/api/v2/ticketing/ticket/create/james/16910",
                    params=QUERY,
                    headers=tenant.headers(),
                    json=seed_body(summary=f"concurrent {i}"),
                )
                assert response.status_code == 200, response.text
                ticket = response.json()["ticket"]
                done.append((ticket["object_id"], "created", 2))
                if i % 2:
                    base = base_urls[(i + 1) % len(base_urls)]
                    response = await client.patch(
                        f"{base}/api/v2/ticketing/ticket/update/{ticket['object_id']}",
                        params=QUERY,
                        headers=tenant.headers(),
                        json={"etag": ticket["etag"], "summary": f"changed {i}"},
                    )
                    assert response.status_code == 200, response.text
                    done.append((ticket["object_id"], "updated", 3))

            await asyncio.gather(*(one(i) for i in range(count)))
        return done

    return asyncio.run(run())


def test_concurrent_writers_in_several_processes_every_event_once_in_order(
    tenant: Tenant,
    server: Server,
    own_server: Callable[..., Server],
    streams: list[SseReader],
    position: Callable[[Tenant, str | None], int],
    opaque: Callable[[Tenant, int], str],
) -> None:
    others = [own_server(), own_server()]
    base_urls = [server.base_url, *(s.base_url for s in others)]
    readers = [open_stream(tenant, base_url=url) for url in base_urls]
    streams.extend(readers)
    done = _work(tenant, base_urls, 120)
    expected = sorted(done)
    rows = tenant.db.fetch(
        "SELECT count(*) FROM ticket_events WHERE tenant_id = :t", t=uuid.UUID(tenant.id)
    )
    assert rows == [(len(done),)]
    sequences: list[list[tuple[int, str, str, int]]] = []
    for reader in readers:
        events = changes(reader.wait_for(lambda events: len(changes(events)) >= len(done)))
        got = [
            (position(tenant, e.id), e.data["objectId"], e.event, e.data["version"]) for e in events
        ]
        positions = [g[0] for g in got]
        assert positions == sorted(positions), "events out of order"
        assert len(set(positions)) == len(positions), "an event was delivered twice"
        assert sorted(g[1:] for g in got) == expected, "an event is missing or extra"
        sequences.append(got)
    # Every process delivers the same events in the same order with the same ids.
    assert sequences[0] == sequences[1] == sequences[2]
    # A late reader resuming from before the burst replays exactly the same sequence.
    first_id = sequences[0][0][0] - 1
    late = open_stream(tenant, last_event_id=opaque(tenant, first_id))
    streams.append(late)
    replayed = changes(late.wait_for(lambda events: len(changes(events)) >= len(done)))
    assert [
        (position(tenant, e.id), e.data["objectId"], e.event, e.data["version"]) for e in replayed
    ] == sequences[0]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_ends_open_streams_with_an_error_event_and_exits_promptly(
    tenant: Tenant, own_server: Callable[..., Server], streams: list[SseReader], workers: int
) -> None:
    """With `--workers 2` the supervisor passes SIGTERM to each worker, and each ends its
    own streams (four streams, spread over the workers by the kernel)."""
    server = own_server(workers=workers)
    readers = [open_stream(tenant, base_url=server.base_url) for _ in range(2 * workers)]
    streams.extend(readers)
    for reader in readers:
        reader.wait_for(lambda events: len(events) >= 1)
    server.process.send_signal(signal.SIGTERM)
    # Well within the 30-s drain timeout: the streams did not hold the server open.
    assert server.process.wait(timeout=15) == 0
    for reader in readers:
        assert reader.ended.wait(5)
        last = reader.snapshot()[-1]
        assert last.event == "error" and last.data["code"] == "STREAM_CLOSED"


def test_streams_carry_on_when_the_event_hub_loses_its_listening_connection(
    tenant: Tenant, streams: list[SseReader]
) -> None:
    if tenant.db.name != "postgresql":
        pytest.skip("the event hub listens on a connection of its own on PostgreSQL only")
    reader = open_stream(tenant)
    streams.append(reader)
    reader.wait_for(lambda events: len(events) >= 1)
    first = created(tenant.create())["object_id"]
    reader.wait_for(lambda events: len(changes(events)) >= 1)
    ended = tenant.db.fetch(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = :name",
        name=HUB_CONNECTION_NAME,
    )
    assert ended and all(row[1] for row in ended)
    second = created(tenant.create())["object_id"]
    events = changes(reader.wait_for(lambda events: len(changes(events)) >= 2))
    assert [e.data["objectId"] for e in events] == [first, second]
    # And the hub listens again, on a new connection.
    gone = {row[0] for row in ended}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listening = tenant.db.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :name",
            name=HUB_CONNECTION_NAME,
        )
        if listening and not {row[0] for row in listening} & gone:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the event hub did not listen again")


def test_streams_are_capped_per_user_and_per_process(
    tenant: Tenant, own_server: Callable[..., Server], streams: list[SseReader]
) -> None:
    """A user keeps TICKETING_SSE_MAX_PER_USER streams: a newer one ends their oldest with an
    `error` event (TOO_MANY_STREAMS); a process serves TICKETING_SSE_MAX streams: past it a
    new one is 503 with Retry-After."""
    server = own_server(
        TICKETING_SSE_MAX_PER_USER="3", TICKETING_SSE_MAX="5", TICKETING_SSE_HEARTBEAT="1"
    )
    alice, bob = user_token(tenant, "alice"), user_token(tenant, "bob")

    def opened(token: str) -> SseReader:
        reader = open_stream(tenant, base_url=server.base_url, token=token)
        streams.append(reader)
        reader.wait_for(lambda events: len(events) >= 1)
        return reader

    first, *others = [opened(alice) for _ in range(3)]
    assert not first.ended.is_set()
    newest = opened(alice)
    assert first.ended.wait(10), "the oldest stream was not closed"
    error = first.snapshot()[-1]
    assert error.event == "error"
    assert error.data["code"] == "TOO_MANY_STREAMS"
    assert error.data["kind"] == "STREAM_CLOSED"
    assert not any(reader.ended.is_set() for reader in [*others, newest])
    # Another user has streams of their own, up to the process's limit (5 in all).
    bobs = [opened(bob), opened(bob)]
    assert not any(reader.ended.is_set() for reader in bobs)
    refused = tenant.client.get(
        f"{server.base_url}{UPDATES}",
        params=QUERY,
        headers=tenant.headers(bob, accept="text/event-stream"),
    )
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "SERVICE_UNAVAILABLE"
    assert refused.headers["retry-after"] == "5"
    # A stream that ends makes room again (noticed at its next heartbeat, 1 s here).
    bobs[0].close()
    deadline = time.monotonic() + 15
    while True:
        reader = open_stream(tenant, base_url=server.base_url, token=bob)
        streams.append(reader)
        if reader.status == 200:
            break
        assert reader.status == 503, reader.error_body
        assert time.monotonic() < deadline, "no room after a stream ended"
        time.sleep(0.3)
    assert reader.wait_for(lambda events: len(events) >= 1)[0].event == "connected"
