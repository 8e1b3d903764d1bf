"""Slow clients hold neither the database nor a connection for long, on PostgreSQL.

A request's body must arrive within `TICKETING_BODY_TIMEOUT` (408 otherwise, and the connection
closes); no transaction is open while a body is awaited, so clients that send their bodies a
byte at a time cannot take the connection pool from other tenants; a caller who may not make a
call is refused without the server waiting for its body. A connection must send a request's
headers whole within `TICKETING_HEADER_TIMEOUT`, and one idle between requests is closed after
`TICKETING_KEEP_ALIVE_TIMEOUT`.

The server here runs with a pool of two connections and short timeouts, and every route that
takes a body is walked from real sockets.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

import ticketing.app as application
from tests.desk_support import AGENTS, QUEUE, admin_token, agent_token, desk_overrides
from tests.support import (
    UNSET,
    Database,
    Server,
    Tenant,
    new_tenant_config,
    seed_body,
    start_server,
    stop_server,
)
from ticketing.auth.dev_issuer import load_or_create_dev_key

PG_URL = os.environ.get("TICKETING_TEST_DATABASE_URL")

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.skipif(not PG_URL, reason="TICKETING_TEST_DATABASE_URL is not set"),
    pytest.mark.parametrize("database", ["postgresql"], indirect=True),
]

POOL_SIZE = 2
BODY_TIMEOUT = 2.0
HEADER_TIMEOUT = 1.0
KEEP_ALIVE_TIMEOUT = 2.5
# Room for a loaded two-core machine on every bound asserted below.
SLACK = 1.5
# Slow requests sent to each route at once: more than the connections the pool can lend.
PER_ROUTE = POOL_SIZE + 3
# What a slow client says its body is; it sends one byte of it every TRICKLE seconds.
DECLARED = 1000
TRICKLE = 0.3
# The start of an upload's body, whose file then arrives a byte at a time.
UPLOAD_START = (
    b"--slowboundary\r\n"
    b'Content-Disposition: form-data; name="file"; filename="notes.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\n"
)
QUERY = "type=template&module=ticketing"


@pytest.fixture(scope="module")
def slow_server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("slow-clients")
    # The suite's signing key, so that tokens minted here are trusted.
    server = start_server(
        database_url=database.url,
        data_dir=data_dir,
        env={
            "TICKETING_DB_POOL_SIZE": str(POOL_SIZE),
            "TICKETING_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "TICKETING_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "TICKETING_KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE_TIMEOUT),
            # The portal's forms are among the routes with a body.
            "TICKETING_DEV_SIGN_IN": "true",
        },
    )
    yield server
    stop_server(server)


@pytest.fixture
def tenants(slow_server: Server, database: Database) -> Iterator[tuple[Tenant, Tenant]]:
    """Two tenants on the slow server: the one whose users are slow (with queues), another."""
    key_dir = Path(slow_server.log_path).parent
    key = load_or_create_dev_key(key_dir / "dev-signing-key.pem")
    made = []
    with httpx.Client(timeout=30) as client:
        for overrides in (desk_overrides(), {}):
            config = new_tenant_config(**overrides)
            database.load({"tenants": [config]})
            made.append(
                Tenant(
                    id=config["id"],
                    realm=config["realm"],
                    config=config,
                    key=key,
                    base_url=slow_server.base_url,
                    db=database,
                    client=client,
                )
            )
        yield made[0], made[1]


# --- the routes that take a body ---------------------------------------------------------------


def body_routes() -> dict[tuple[str, str], bool]:
    """(method, path template) of every route of the application that may be sent a body,
    read from the routers the application is built of (the direct routes are among them),
    and whether it takes one: it documents a request body, or it is a portal form."""
    routers = [value for value in vars(application).values() if isinstance(value, APIRouter)]
    assert len(routers) >= 10, routers
    found: dict[tuple[str, str], bool] = {}
    for route in (route for router in routers for route in router.routes):
        if not isinstance(route, APIRoute):
            continue
        takes_body = route.path.startswith("/portal/") or bool(
            (route.openapi_extra or {}).get("requestBody")
        )
        for method in route.methods or ():
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                found[method, route.path] = takes_body
    return dict(sorted(found.items()))


def fill(path: str, ticket: str, other: str) -> str:
    values = {
        "teamId": "james",
        "itemTypeId": "16910",
        "objectId": ticket,
        "object_id": ticket,
        "otherObjectId": other,
        "relationType": "relates_to",
        "queueId": QUEUE,
        "userId": AGENTS[0],
        "user": AGENTS[0],
        "notificationId": "00000000-0000-0000-0000-000000000000",
        "offer_id": "x",
        "rest": "nowhere",
    }
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values[m.group(1)], path)


def content_type(path: str) -> str:
    if path.startswith("/portal/"):
        return "application/x-www-form-urlencoded"
    if path.endswith("/attachments"):
        return "multipart/form-data; boundary=slowboundary"
    return "application/json"


def body_start(path: str) -> tuple[bytes, bytes]:
    """The first bytes of a slow body for the route, and the byte that then trickles: what
    the route's body could go on to be, so that nothing is refused before it is whole."""
    if path.endswith("/attachments"):
        return UPLOAD_START, b"a"
    return b"{", b" "


# --- a slow client on a real socket ------------------------------------------------------------


@dataclass
class Slow:
    """A request whose head goes at once and whose body comes one byte every TRICKLE s,
    never whole; the answer, when it came, and when the server closed the connection."""

    label: str
    head: bytes
    started: float = 0.0
    raw: bytes = b""
    answered: float | None = None
    closed: float | None = None
    reset: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def status(self) -> int | None:
        if self.answered is None:
            return None
        return int(self.raw.split(b" ", 2)[1])

    @property
    def response_head(self) -> str:
        return self.raw.partition(b"\r\n\r\n")[0].decode("latin-1").lower()

    @property
    def body(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[2]

    def complete(self) -> bool:
        head, sep, body = self.raw.partition(b"\r\n\r\n")
        if not sep:
            return False
        match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        return match is not None and len(body) >= int(match.group(1))


def run_slow(base_url: str, slow: Slow, *, until: float) -> Slow:
    """Sends `slow`'s head and then its body a byte at a time, reading whatever comes back,
    until the server has closed the connection for good (a send fails) or `until`."""
    url = urlsplit(base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=5)
    try:
        slow.started = time.monotonic()
        path = slow.head.split(b" ", 2)[1].decode().split("?")[0]
        start, trickle = body_start(path)
        sock.sendall(slow.head + start)
        eof = False
        while time.monotonic() < until:
            readable, _, _ = select.select([sock], [], [], TRICKLE)
            if readable and not eof:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    slow.closed, slow.reset = time.monotonic(), True
                    break
                if data:
                    slow.raw += data
                    if slow.answered is None and slow.complete():
                        slow.answered = time.monotonic()
                else:
                    eof = True
                continue
            # Still sending after the answer: the server must close the connection all the
            # same (a send then fails), not keep reading a body it will not use.
            try:
                sock.send(trickle)
            except (BrokenPipeError, ConnectionResetError):
                slow.closed = time.monotonic()
                break
    finally:
        sock.close()
    return slow


def slow_request(
    method: str, path: str, headers: dict[str, str], *, declared: int = DECLARED
) -> bytes:
    lines = [f"{method} {path}?{QUERY} HTTP/1.1", "Host: x"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name != "content-type"]
    lines += [f"Content-Type: {content_type(path)}", f"Content-Length: {declared}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def run_all(base_url: str, slows: list[Slow], seconds: float) -> list[Slow]:
    until = time.monotonic() + seconds
    with ThreadPoolExecutor(len(slows)) as pool:
        return list(pool.map(lambda s: run_slow(base_url, s, until=until), slows))


def idle_in_transaction(database: Database) -> list[tuple[Any, ...]]:
    """The server's transactions that have waited more than a second on something other than
    the database."""
    return database.fetch(
        "SELECT pid, now() - state_change, left(query, 80) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND state = 'idle in transaction' AND now() - state_change > interval '1 second'"
    )


def probe(other: Tenant, client: httpx.Client) -> dict[str, tuple[int, float]]:
    """Another tenant's list, count and queue list, and /healthz: status and seconds taken."""
    api = f"{other.base_url}/api/v2/ticketing"
    calls: dict[str, Callable[[], httpx.Response]] = {
        "list": lambda: client.post(
            f"{api}/ticket/list", params=QUERY, headers=other.headers(), json={}
        ),
        "count": lambda: client.post(
            f"{api}/ticket/count", params=QUERY, headers=other.headers(), json={}
        ),
        "queues": lambda: client.get(f"{api}/queue/list", params=QUERY, headers=other.headers()),
        "healthz": lambda: client.get(f"{other.base_url}/healthz"),
    }
    found = {}
    for name, call in calls.items():
        started = time.monotonic()
        try:
            status = call().status_code
        except httpx.HTTPError:
            status = 0
        found[name] = (status, round(time.monotonic() - started, 2))
    return found


# --- 1. bodies -----------------------------------------------------------------------------


def test_slow_bodies_on_every_route_hold_no_transaction_and_end_in_408(
    tenants: tuple[Tenant, Tenant], database: Database
) -> None:
    slow_tenant, other = tenants
    ticket = slow_tenant.create().json()["objectId"]
    second = slow_tenant.create().json()["objectId"]
    token = slow_tenant.token(roles=["tenant_admin", "ticket_agent"])
    headers = slow_tenant.headers(token)
    routes = body_routes()
    # Every capability's writes are among them (a route added later is walked too).
    assert ("PUT", "/api/v2/ticketing/queue/{queueId}/users/{userId}") in routes
    assert ("POST", "/api/v2/ticketing/ticket/create/{teamId}/{itemTypeId}") in routes
    assert ("POST", "/api/v2/ticketing/attachments") in routes
    assert ("POST", "/portal/sign-in") in routes
    slows = [
        Slow(f"{method} {path}", slow_request(method, fill(path, ticket, second), headers))
        for method, path in routes
        for _ in range(PER_ROUTE)
    ]
    # What the routes that take a body read is a body; DELETE routes and read-all take none.
    assert sum(routes.values()) >= 17, routes

    probes: list[dict[str, tuple[int, float]]] = []
    held: list[list[tuple[Any, ...]]] = []

    def watch() -> None:
        # While every slow request is waiting for its body.
        with httpx.Client(timeout=10) as client:
            time.sleep(0.5)
            while time.monotonic() < watch_until:
                probes.append(probe(other, client))
                held.append(idle_in_transaction(database))
                time.sleep(0.2)

    watch_until = time.monotonic() + BODY_TIMEOUT
    watcher = threading.Thread(target=watch)
    watcher.start()
    done = run_all(slow_tenant.base_url, slows, BODY_TIMEOUT + 3 * SLACK + 2)
    watcher.join()

    # Other tenants are served at once meanwhile, and no transaction waits for a body.
    assert probes, "no probe ran while the bodies were awaited"
    slow_probes = [p for p in probes if any(s != 200 or t > SLACK for s, t in p.values())]
    assert not slow_probes, slow_probes
    assert not any(held), held
    for slow in done:
        method, path = slow.label.split()
        if not routes[method, path]:
            # A route that takes no body answers at once, then the connection is closed.
            assert slow.answered is not None, slow
            assert slow.answered - slow.started < SLACK, slow.label
        else:
            assert slow.status == 408, (slow.label, slow.raw[:300])
            waited = slow.answered - slow.started if slow.answered else None
            assert waited is not None and BODY_TIMEOUT - 0.2 < waited < BODY_TIMEOUT + SLACK
            if not slow.label.split()[1].startswith("/portal/"):
                assert json.loads(slow.body) == {
                    "error": True,
                    "code": "REQUEST_TIMEOUT",
                    "message": f"The request body did not arrive within {BODY_TIMEOUT:g} s",
                    "status": 408,
                }, slow.label
        assert "connection: close" in slow.response_head, slow.label
        # The connection is closed, though the client is still sending.
        assert slow.closed is not None, slow.label
        assert slow.answered is not None and slow.closed - slow.answered < 2 + SLACK
    # Nothing was written: no ticket, comment, relation or member came of a partial body.
    assert slow_tenant.ticket_count() == 2


def test_a_caller_who_may_not_make_the_call_is_refused_without_waiting_for_the_body(
    tenants: tuple[Tenant, Tenant],
) -> None:
    slow_tenant, _ = tenants
    ticket = slow_tenant.create().json()["objectId"]
    agent = agent_token(slow_tenant, AGENTS[0])
    no_token = {k: v for k, v in slow_tenant.headers().items() if k != "authorization"}
    slows = [
        # Without a token, on every API route that takes a body.
        Slow(f"{method} {path}", slow_request(method, fill(path, ticket, ticket), no_token))
        for method, path in body_routes()
        if path.startswith("/api/")
    ]
    queue_path = f"/api/v2/ticketing/queue/{QUEUE}/users"
    slows += [
        # An agent adding a member, or setting another member's availability: admins only.
        Slow("agent adds", slow_request("POST", queue_path, slow_tenant.headers(agent))),
        Slow(
            "agent sets another's",
            slow_request("PUT", f"{queue_path}/{AGENTS[1]}", slow_tenant.headers(agent)),
        ),
    ]
    done = run_all(slow_tenant.base_url, slows, BODY_TIMEOUT + 2 * SLACK)
    for slow in done:
        assert slow.answered is not None, (slow.label, slow.raw[:200])
        assert slow.answered - slow.started < BODY_TIMEOUT / 2, slow.label
        assert slow.status == 401, (slow.label, slow.raw[:300])
        expected = "USER_PERMISSION_FAILURE" if slow.label.startswith("agent") else None
        assert json.loads(slow.body)["code"] == (expected or "AUTHENTICATION_FAILURE")
        assert "connection: close" in slow.response_head, slow.label
        assert slow.closed is not None, slow.label


def test_a_body_that_keeps_coming_within_the_timeout_is_served(
    tenants: tuple[Tenant, Tenant],
) -> None:
    slow_tenant, _ = tenants
    body = json.dumps({"availability": "away"}).encode()
    head = slow_request(
        "PUT",
        f"/api/v2/ticketing/queue/{QUEUE}/users/{AGENTS[2]}",
        slow_tenant.headers(admin_token(slow_tenant)),
        declared=len(body),
    )
    url = urlsplit(slow_tenant.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head)
        # The body in four parts over about three quarters of the timeout.
        for start in range(0, len(body), len(body) // 4 + 1):
            time.sleep(BODY_TIMEOUT * 0.75 / 4)
            sock.sendall(body[start : start + len(body) // 4 + 1])
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["data"]["availability"] == "away"


def _upload(tenant: Tenant, parts: list[tuple[bytes, float]]) -> tuple[bytes, float]:
    """POST /attachments of notes.txt whose content is `parts`, each sent after its pause
    unless the server has answered by then; the answer and the seconds from the first part
    to its first byte."""
    content_length = len(UPLOAD_START) + sum(len(p) for p, _ in parts) + len(UPLOAD_END)
    head = slow_request(
        "POST", "/api/v2/ticketing/attachments", tenant.headers(), declared=content_length
    )
    url = urlsplit(tenant.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head + UPLOAD_START)
        started = time.monotonic()
        for part, pause in [*parts, (UPLOAD_END, 0)]:
            answered, _, _ = select.select([sock], [], [], pause)
            if answered:
                break
            sock.sendall(part)
        select.select([sock], [], [], BODY_TIMEOUT * 4)
        took = time.monotonic() - started
        received, _closed = _read_until_closed(sock, SLACK)
        return received, took


UPLOAD_END = b"\r\n--slowboundary--\r\n"


def test_an_upload_has_the_body_timeout_for_each_mib(tenants: tuple[Tenant, Tenant]) -> None:
    slow_tenant, _ = tenants
    mib = b"a" * (1024 * 1024)
    # Three MiB over longer than the timeout, each MiB within it: stored.
    pause = BODY_TIMEOUT * 0.6
    answer, took = _upload(slow_tenant, [(mib, 0), (mib, pause), (mib, pause)])
    assert took > BODY_TIMEOUT, took
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(body)["attachment"]["size"] == 3 * len(mib)
    # One MiB at once, then a byte at a time: 408 once the second MiB's time is out.
    answer, took = _upload(slow_tenant, [(mib, 0)] + [(b"a", TRICKLE)] * 100)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert 2 * BODY_TIMEOUT - 0.2 < took < 2 * BODY_TIMEOUT + SLACK, took
    assert json.loads(body)["message"] == (
        f"The request body did not arrive within {BODY_TIMEOUT:g} s per MiB"
    )


# --- 5. headers and idle connections -------------------------------------------------------


def _connect(server: Server) -> socket.socket:
    url = urlsplit(server.base_url)
    return socket.create_connection((url.hostname, url.port), timeout=10)


def _read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float | None]:
    """What the server sends until it closes the connection, and when it closed it (None:
    still open after `within` seconds)."""
    received = b""
    until = time.monotonic() + within
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return received, None
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            return received, None
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return received, time.monotonic()
        if not data:
            return received, time.monotonic()
        received += data


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_connections_that_send_nothing_or_half_a_head_are_closed(slow_server: Server) -> None:
    def silent() -> tuple[bytes, float | None, float]:
        with _connect(slow_server) as sock:
            opened = time.monotonic()
            received, closed = _read_until_closed(sock, HEADER_TIMEOUT + 3 * SLACK)
            return received, closed, opened

    def half_a_head() -> tuple[bytes, float | None, float]:
        with _connect(slow_server) as sock:
            opened = time.monotonic()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            received, closed = _read_until_closed(sock, HEADER_TIMEOUT + 3 * SLACK)
            return received, closed, opened

    def dripping() -> tuple[bytes, float | None, float]:
        # A byte every 0.2 s: the head never completes, though the connection is never idle.
        with _connect(slow_server) as sock:
            opened = time.monotonic()
            request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100
            for byte in request:
                try:
                    sock.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    return b"", time.monotonic(), opened
                received, closed = _read_until_closed(sock, 0.2)
                if closed is not None or received:
                    rest, closed = _read_until_closed(sock, 1)
                    return received + rest, closed or time.monotonic(), opened
            return b"", None, opened

    with ThreadPoolExecutor(9) as pool:
        kinds = [silent] * 3 + [half_a_head] * 3 + [dripping] * 3
        outcomes = list(pool.map(lambda kind: (kind.__name__, kind()), kinds))
    for kind, (received, closed, opened) in outcomes:
        assert closed is not None, f"{kind}: still open after {HEADER_TIMEOUT + 3 * SLACK} s"
        assert HEADER_TIMEOUT - 0.2 < closed - opened < HEADER_TIMEOUT + SLACK, kind
        if kind == "silent":
            assert received == b"", received
        else:
            head, _, body = received.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), (kind, received)
            assert b"connection: close" in head.lower()
            assert json.loads(body) == {
                "error": True,
                "code": "REQUEST_TIMEOUT",
                "message": f"The request headers did not arrive within {HEADER_TIMEOUT:g} s",
                "status": 408,
            }


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    slow_server: Server,
) -> None:
    def idle_after_answer() -> tuple[bytes, float | None, float]:
        with _connect(slow_server) as sock:
            sock.sendall(HEALTHZ)
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            answered = time.monotonic()
            # Longer than the header timeout: waiting between requests is not a slow head.
            received, closed = _read_until_closed(sock, KEEP_ALIVE_TIMEOUT + 3 * SLACK)
            return received, closed, answered

    def half_a_head_after_answer() -> tuple[bytes, float | None, float]:
        with _connect(slow_server) as sock:
            sock.sendall(HEALTHZ)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(0.5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            started = time.monotonic()
            received, closed = _read_until_closed(sock, HEADER_TIMEOUT + 3 * SLACK)
            return received, closed, started

    with ThreadPoolExecutor(6) as pool:
        idle = [pool.submit(idle_after_answer) for _ in range(3)]
        half = [pool.submit(half_a_head_after_answer) for _ in range(3)]
        for future in idle:
            received, closed, answered = future.result()
            assert received == b""
            assert closed is not None, "an idle keep-alive connection stayed open"
            assert KEEP_ALIVE_TIMEOUT - 0.2 < closed - answered < KEEP_ALIVE_TIMEOUT + SLACK
        for future in half:
            received, closed, started = future.result()
            assert closed is not None, "half a head after an answer stayed open"
            assert HEADER_TIMEOUT - 0.2 < closed - started < HEADER_TIMEOUT + SLACK
            assert received.startswith(b"HTTP/1.1 408"), received


def test_a_slow_but_complete_head_and_a_used_keep_alive_connection_are_served(
    slow_server: Server, tenants: tuple[Tenant, Tenant]
) -> None:
    _, other = tenants
    raw = json.dumps(seed_body()).encode()
    headers = "".join(f"{k}: {v}\r\n" for k, v in other.headers().items())
    create = (
        f"POST /api/v2/ticketing/ticket/create/james/16910?{QUERY} HTTP/1.1\r\nHost: x\r\n"
        f"{headers}Content-Length: {len(raw)}\r\n\r\n"
    ).encode() + raw

    def slow_but_in_time() -> list[bytes]:
        answers = []
        with _connect(slow_server) as sock:
            # The head in three parts within 0.6 of the header timeout, the body after it.
            for part in (create[:20], create[20:200], create[200:]):
                sock.sendall(part)
                time.sleep(HEADER_TIMEOUT * 0.2)
            answers.append(sock.recv(65536))
            # Idle for longer than the header timeout, under the keep-alive timeout: the
            # connection is still there for the next request.
            time.sleep(HEADER_TIMEOUT + 0.5)
            sock.sendall(HEALTHZ)
            answers.append(sock.recv(65536))
        return answers

    with ThreadPoolExecutor(3) as pool:
        for answers in pool.map(lambda _: slow_but_in_time(), range(3)):
            assert answers[0].startswith(b"HTTP/1.1 200"), answers[0][:300]
            assert answers[1].startswith(b"HTTP/1.1 200"), answers[1][:300]
    assert other.ticket_count() == 3


def test_the_default_timeouts_are_ten_seconds_for_a_head_and_five_idle(
    database: Database, tmp_path: Path
) -> None:
    """With no setting: a connection that sends nothing is closed after 10 s, one idle after
    an answer after 5 s."""
    server = start_server(
        database_url=database.url,
        data_dir=tmp_path,
        env={
            "TICKETING_HEADER_TIMEOUT": UNSET,
            "TICKETING_KEEP_ALIVE_TIMEOUT": UNSET,
            "TICKETING_BODY_TIMEOUT": UNSET,
        },
    )
    try:

        def silent() -> tuple[float | None, float]:
            with _connect(server) as sock:
                opened = time.monotonic()
                return _read_until_closed(sock, 10 + 3 * SLACK)[1], opened

        def idle() -> tuple[float | None, float]:
            with _connect(server) as sock:
                sock.sendall(HEALTHZ)
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
                answered = time.monotonic()
                return _read_until_closed(sock, 5 + 3 * SLACK)[1], answered

        with ThreadPoolExecutor(2) as pool:
            quiet, waiting = pool.submit(silent), pool.submit(idle)
            closed, opened = quiet.result()
            assert closed is not None and 10 - 0.2 < closed - opened < 10 + SLACK
            closed, answered = waiting.result()
            assert closed is not None and 5 - 0.2 < closed - answered < 5 + SLACK
    finally:
        stop_server(server)
