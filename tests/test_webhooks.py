"""Webhooks with real receivers: signed deliveries, retries until a failing receiver
recovers, a hanging receiver that does not hold up creates, the deliveries endpoint, and
the targets refused without TICKETING_WEBHOOKS_ALLOW_PRIVATE, URLs refused at load and
failed at delivery, webhooks sent only what happened while they were active."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Database, Server, Tenant, seed_body, start_server, stop_server
from tests.ticket_api import assert_error, call, created, patch, updated
from ticketing.catalog.config_file import ConfigError, parse_config
from ticketing.webhooks import targets
from ticketing.webhooks.targets import TargetRefused, check_target

SECRET = "a-secret-of-sixteen-or-more"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """A webhook receiver on loopback: fails its first `failures` requests with 500, hangs
    while `hang` is set (at most 30 s), answers 200 otherwise."""

    failures: int = 0
    hang: threading.Event = field(default_factory=threading.Event)
    requests: list[Received] = field(default_factory=list)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def delivered(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.answered == 200]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with state.lock:
                state.in_flight += 1
            if state.hang.is_set():
                deadline = time.monotonic() + 30
                while state.hang.is_set() and time.monotonic() < deadline:
                    time.sleep(0.05)
            with state.lock:
                state.in_flight -= 1
                status = 500 if state.failures > 0 else 200
                state.failures -= 1
                state.requests.append(Received(dict(self.headers.items()), body, status))
            try:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender gave up waiting

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/ticketing"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.hang.clear()
    server.shutdown()
    server.server_close()


def with_webhook(
    make_tenant: Callable[..., Tenant], receiver: Receiver, events: list[str]
) -> Tenant:
    return make_tenant(
        webhooks=[{"id": "hook", "url": receiver.url, "events": events, "secret": SECRET}]
    )


def deliveries(tenant: Tenant, webhook: str = "hook", **kw: Any) -> Any:
    admin = tenant.token(roles=["tenant_admin"])
    return call(tenant, "GET", f"/tenant/webhooks/{webhook}/deliveries", token=admin, **kw)


def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    assert predicate()


def test_a_receiver_that_fails_then_recovers_gets_every_event_once_signed(
    make_tenant: Callable[..., Tenant], receiver: Receiver
) -> None:
    receiver.failures = 2
    tenant = with_webhook(make_tenant, receiver, ["ticket.created", "comment.created"])
    tickets = [created(tenant.create(seed_body(summary=f"hooked {i}"))) for i in range(3)]
    response = call(
        tenant, "POST", f"/ticket/{tickets[0]['object_id']}/comments", json={"body": "hi"}
    )
    assert response.status_code == 200
    updated(patch(tenant, tickets[1]["object_id"], {"etag": tickets[1]["etag"], "summary": "x"}))

    wait_until(lambda: len(receiver.delivered()) >= 4)
    time.sleep(1)  # anything extra (a duplicate, the update) would arrive by now
    good = receiver.delivered()
    ids = [r.headers["X-Ticketing-Delivery"] for r in good]
    assert len(ids) == len(set(ids)) == 4, ids
    # Opaque per tenant (ticketing.events.ids): no count of other tenants' events in them.
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids), ids
    assert len([r for r in receiver.requests if r.answered == 500]) == 2
    bodies = []
    for request in receiver.requests:
        timestamp = request.headers["X-Ticketing-Timestamp"]
        expected = hmac.new(
            SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
        ).hexdigest()
        assert request.headers["X-Ticketing-Signature"] == f"sha256={expected}"
        assert abs(int(timestamp) - time.time()) < 300
        body = json.loads(request.body)
        assert set(body) == {"id", "type", "occurredAt", "tenantId", "data"}
        assert str(body["id"]) == request.headers["X-Ticketing-Delivery"]
        assert body["type"] == request.headers["X-Ticketing-Event"]
        assert body["tenantId"] == tenant.id
        bodies.append(body)
    delivered = {json.loads(r.body)["id"]: json.loads(r.body) for r in good}
    kinds = sorted(b["type"] for b in delivered.values())
    assert kinds == ["comment.created", "ticket.created", "ticket.created", "ticket.created"]
    created_ids = {
        b["data"]["objectId"] for b in delivered.values() if b["type"] == "ticket.created"
    }
    assert created_ids == {t["object_id"] for t in tickets}
    first = next(b for b in delivered.values() if b["data"]["objectId"] == tickets[2]["object_id"])
    assert first["data"]["ticket"] == tickets[2]

    listed = deliveries(tenant)
    assert listed.status_code == 200, listed.text
    rows = listed.json()["data"]["value"]
    assert len(rows) == 4 and all(r["status"] == "delivered" for r in rows)
    assert sum(r["attempts"] for r in rows) == 6
    retried = [r for r in rows if r["attempts"] > 1]
    assert retried and all(r["log"][0]["status"] == 500 for r in retried)
    assert all(r["log"][-1]["status"] == 200 for r in rows)


def test_a_hanging_receiver_does_not_hold_up_creates(
    make_tenant: Callable[..., Tenant], receiver: Receiver
) -> None:
    receiver.hang.set()
    tenant = with_webhook(make_tenant, receiver, ["ticket.created"])
    created(tenant.create())
    wait_until(lambda: receiver.in_flight >= 1)
    started = time.monotonic()
    for i in range(10):
        created(tenant.create(seed_body(summary=f"while hanging {i}")))
    # All ten answered while the receiver still hangs (it holds requests up to 30 s).
    assert receiver.hang.is_set() and time.monotonic() - started < 30
    wait_until(
        lambda: any(
            "timed out" in attempt.get("error", "")
            for row in deliveries(tenant).json()["data"]["value"]
            for attempt in row["log"]
        )
    )
    receiver.hang.clear()
    wait_until(lambda: len({r.headers["X-Ticketing-Delivery"] for r in receiver.delivered()}) >= 11)


def test_the_deliveries_endpoint_is_for_admins_and_known_webhooks(
    make_tenant: Callable[..., Tenant], receiver: Receiver
) -> None:
    tenant = with_webhook(make_tenant, receiver, ["ticket.created"])
    agent = call(tenant, "GET", "/tenant/webhooks/hook/deliveries")
    assert_error(agent, 401, "USER_PERMISSION_FAILURE")
    assert_error(deliveries(tenant, "nope"), 404)
    bad = deliveries(tenant, params={"type": "agent", "module": "ticketing", "top": "0"})
    assert "top" in assert_error(bad, 400)["validationResult"]["reason"]
    other = make_tenant()
    admin = other.token(roles=["tenant_admin"])
    assert_error(call(other, "GET", "/tenant/webhooks/hook/deliveries", token=admin), 404)


def test_loopback_and_private_targets_are_refused_unless_allowed() -> None:
    async def refused(url: str) -> bool:
        try:
            await check_target(url, allow_private=False)
        except TargetRefused:
            return True
        return False

    for url in (
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.0.10/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "ftp://example.com/x",
        # IPv6 forms that embed an IPv4 address, public or not: NAT64, 6to4, Teredo,
        # IPv4-mapped and IPv4-compatible.
        "http://[64:ff9b::7f00:1]/x",
        "http://[64:ff9b::808:808]/x",
        "http://[64:ff9b:1::a00:1]/x",
        "http://[2002:7f00:1::]/x",
        "http://[2002:808:808::]/x",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://[::ffff:10.0.0.1]/x",
        "http://[::127.0.0.1]/x",
    ):
        assert asyncio.run(refused(url)), url
    assert not asyncio.run(refused("https://93.184.215.14/hook"))
    assert not asyncio.run(refused("https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hook"))
    asyncio.run(check_target("http://127.0.0.1/x", allow_private=True))


def test_webhook_configuration_is_validated() -> None:
    base = {
        "id": "4b0f5f3e-8f9e-4a55-9a57-3c2f6a1e0b11",
        "name": "N",
        "realm": "n",
        "prefix": "REQ",
    }
    good = {
        "id": "h",
        "url": "https://example.com/h",
        "events": ["ticket.created"],
        "secret": SECRET,
    }
    parse_config({"tenants": [{**base, "webhooks": [good]}]}, source="t")
    for bad in (
        {**good, "url": "example.com/h"},
        {**good, "events": ["ticket.exploded"]},
        {**good, "events": []},
        {**good, "secret": "short"},
        # Each of these once passed and then failed every delivery attempt.
        {**good, "url": "http://[::1/h"},
        {**good, "url": "http://x.example.com:abc/h"},
        {**good, "url": "http://example.com:99999/x"},
    ):
        with pytest.raises(ConfigError):
            parse_config({"tenants": [{**base, "webhooks": [bad]}]}, source="t")
    with pytest.raises(ConfigError):
        parse_config({"tenants": [{**base, "webhooks": [good, good]}]}, source="t")


def _webhook(receiver: Receiver, **overrides: Any) -> dict[str, Any]:
    return {
        "id": "hook",
        "url": receiver.url,
        "events": ["ticket.created"],
        "secret": SECRET,
        **overrides,
    }


def _load_webhooks(tenant: Tenant, *webhooks: dict[str, Any]) -> None:
    tenant.db.load({"tenants": [{**tenant.config, "webhooks": list(webhooks)}]})


def _rows(tenant: Tenant, webhook: str = "hook") -> list[dict[str, Any]]:
    response = deliveries(tenant, webhook)
    assert response.status_code == 200, response.text
    return response.json()["data"]["value"]  # type: ignore[no-any-return]


def test_the_deliveries_count_is_every_delivery_of_the_webhook(
    make_tenant: Callable[..., Tenant], receiver: Receiver
) -> None:
    tenant = with_webhook(make_tenant, receiver, ["ticket.created"])
    for i in range(3):
        created(tenant.create(seed_body(summary=f"counted {i}")))
    wait_until(lambda: len(_rows(tenant)) == 3)
    query = {"type": "agent", "module": "ticketing"}
    first = deliveries(tenant, params={**query, "top": "1"}).json()["data"]
    assert (len(first["value"]), first["count"]) == (1, 3)
    last = deliveries(tenant, params={**query, "top": "2", "offset": "2"}).json()["data"]
    assert (len(last["value"]), last["count"]) == (1, 3)


def _retries(server_url: str) -> float:
    text = httpx.get(f"{server_url}/metrics").text
    match = re.search(r'^ticketing_webhook_deliveries_total\{outcome="retry"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_an_unusable_url_is_a_failed_attempt_retried_then_given_up(
    make_tenant: Callable[..., Tenant], server: Server
) -> None:
    """A webhook whose URL the HTTP client cannot use (stored before the configuration
    refused such URLs): each attempt is recorded as failed, retried with backoff, counted,
    and given up after 24 hours; the worker carries on."""
    tenant = make_tenant(
        webhooks=[
            {"id": "v6", "url": "http://example.com/h", "events": ["ticket.created"],
             "secret": SECRET},
            {"id": "port", "url": "http://example.com/h", "events": ["ticket.created"],
             "secret": SECRET},
        ]
    )  # fmt: skip
    for webhook, url in (("v6", "http://[::1/h"), ("port", "http://x.example.com:abc/h")):
        tenant.db.fetch(
            "UPDATE webhooks SET url = :u WHERE tenant_id = :t AND id = :w",
            u=url,
            t=uuid.UUID(tenant.id),
            w=webhook,
        )
    retries = _retries(server.base_url)
    created(tenant.create())
    for webhook, error in (("v6", "ValueError"), ("port", "not a usable URL")):
        wait_until(lambda webhook=webhook: sum(r["attempts"] for r in _rows(tenant, webhook)) >= 2)
        [row] = _rows(tenant, webhook)
        assert row["status"] == "pending" and row["nextAttemptAt"] is not None
        assert all(error in attempt["error"] for attempt in row["log"]), row["log"]
    assert _retries(server.base_url) >= retries + 4
    # A day later, the next attempt gives up.
    day_ago = (
        "created_at - interval '25 hours'"
        if tenant.db.name == "postgresql"
        else "datetime(created_at, '-25 hours')"
    )
    tenant.db.fetch(
        f"UPDATE webhook_deliveries SET created_at = {day_ago} WHERE tenant_id = :t",
        t=uuid.UUID(tenant.id),
    )
    wait_until(lambda: all(_rows(tenant, w)[0]["status"] == "failed" for w in ("v6", "port")))
    assert "Task exception was never retrieved" not in server.log()


def test_a_webhook_is_sent_only_events_from_while_it_was_active(
    make_tenant: Callable[..., Tenant],
    receiver: Receiver,
    database: Database,
    data_dir: Path,
) -> None:
    """Also by a worker that starts and makes the deliveries of the recent events it may
    have missed."""
    tenant = make_tenant()
    before = created(tenant.create(seed_body(summary="before the webhook")))
    _load_webhooks(tenant, _webhook(receiver))
    first = created(tenant.create(seed_body(summary="while active")))
    wait_until(lambda: len(receiver.delivered()) == 1)
    _load_webhooks(tenant, _webhook(receiver, active=False))
    retired = created(tenant.create(seed_body(summary="while retired")))
    _load_webhooks(tenant, _webhook(receiver))
    restarted = start_server(database_url=database.url, data_dir=data_dir)
    try:
        again = created(tenant.create(seed_body(summary="active again")))
        wait_until(lambda: len(receiver.delivered()) >= 2)
        time.sleep(2)  # what the new worker's start would add arrives by now
    finally:
        stop_server(restarted)
    sent = [json.loads(r.body)["data"]["objectId"] for r in receiver.delivered()]
    assert sent == [first["object_id"], again["object_id"]], sent
    assert before["object_id"] not in sent and retired["object_id"] not in sent


def test_a_retired_webhook_is_sent_nothing_more(
    make_tenant: Callable[..., Tenant], receiver: Receiver
) -> None:
    receiver.failures = 10**6
    tenant = with_webhook(make_tenant, receiver, ["ticket.created"])
    created(tenant.create())
    wait_until(lambda: len(receiver.requests) >= 2)
    _load_webhooks(tenant, _webhook(receiver, active=False))
    [row] = _rows(tenant)
    assert row["status"] == "failed"
    assert row["log"][-1]["error"] == "not sent: the webhook was retired"
    # A pending delivery of a retired webhook (one made as it was retired) is not claimed.
    tenant.db.fetch(
        "UPDATE webhook_deliveries SET status = 'pending',"
        " next_attempt_at = '2000-01-01 00:00:00.000000' WHERE tenant_id = :t",
        t=uuid.UUID(tenant.id),
    )
    time.sleep(0.5)  # an attempt in flight as it was retired ends
    sent = len(receiver.requests)
    time.sleep(3)
    assert len(receiver.requests) == sent
    assert _rows(tenant)[0]["status"] == "pending"


def test_a_delivery_connects_to_the_address_that_was_checked(receiver: Receiver) -> None:
    """DNS rebinding: the name resolves to one address when checked and to another a moment
    later. The post goes to the checked address, resolved once, with the URL's host name in
    `Host`."""
    # A second receiver on another loopback address stands for where rebinding would send it.
    other = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            other.requests.append(Received(dict(self.headers.items()), b"", 200))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    port = int(receiver.url.rsplit(":", 1)[1].split("/", 1)[0])
    try:
        rebound = ThreadingHTTPServer(("127.0.0.3", port), Handler)
    except OSError:
        rebound = ThreadingHTTPServer(("127.0.0.3", 0), Handler)
    threading.Thread(target=rebound.serve_forever, daemon=True).start()
    answers = [["127.0.0.1"], ["127.0.0.3"]]
    asked: list[tuple[str, int]] = []

    async def rebinding(host: str, port_: int) -> list[str]:
        asked.append((host, port_))
        return answers[min(len(asked), len(answers)) - 1]

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as client:
            return await targets.post(
                client,
                f"http://hooks.example.test:{port}/receive",
                content=b"{}",
                headers={"content-type": "application/json"},
                allow_private=True,
                resolver=rebinding,
            )

    try:
        response = asyncio.run(send())
    finally:
        rebound.shutdown()
        rebound.server_close()
    assert response.status_code == 200
    assert asked == [("hooks.example.test", port)]
    assert len(receiver.requests) == 1 and other.requests == []
    sent = [(k.lower(), v) for k, v in receiver.requests[0].headers.items()]
    assert [v for k, v in sent if k == "host"] == [f"hooks.example.test:{port}"]


def test_a_name_that_resolves_to_a_private_address_is_refused_before_connecting() -> None:
    async def private(_host: str, _port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]

    async def send() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            await targets.post(
                client,
                "https://hooks.example.test/receive",
                content=b"{}",
                headers={},
                allow_private=False,
                resolver=private,
            )

    with pytest.raises(TargetRefused, match=r"10\.0\.0\.7"):
        asyncio.run(send())
