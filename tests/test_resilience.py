"""Resilience on PostgreSQL: many processes, kill -9 and SIGTERM under load, database outage.

Every test here needs PostgreSQL (TICKETING_TEST_DATABASE_URL); the outage test also starts
its own PostgreSQL instance (initdb in a temporary folder, on its own port) so that it can
stop and restart it without disturbing anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    F_TEXT,
    Database,
    Server,
    Tenant,
    everything_body,
    free_port,
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
]
# The tests on the suite's PostgreSQL database (the session's `database` fixture, PostgreSQL
# only).
on_postgresql = pytest.mark.parametrize("database", ["postgresql"], indirect=True)
CREATE_PATH = "/api/v2/ticketing/ticket/create/{team}/{item_type}"


# --- load ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """One kind of create: a tenant, a ticket type, and the display prefix it numbers under."""

    tenant: Tenant
    item_type: str
    catalog_type: str
    prefix: str
    headers: dict[str, str] = dataclasses.field(hash=False, compare=False)

    def body(self, marker: str) -> dict[str, Any]:
        if self.item_type == "20000":
            body = everything_body(**{F_TEXT: "load"})
            body["summary"] = marker
            return body
        return seed_body(summary=marker)

    def path(self) -> str:
        return CREATE_PATH.format(team="james", item_type=self.item_type)


@dataclass
class Outcome:
    """What one create got back: a response, or a transport error (no response at all)."""

    marker: str
    stream: Stream
    base_url: str
    started: float
    finished: float
    status: int | None = None
    headers: httpx.Headers | None = None
    body: Any = None
    error: str | None = None
    # Sent on a connection opened for it (else on one that had carried an answered request).
    new_connection: bool = False
    # When the whole request had been written to the connection (None: it never was).
    sent: float | None = None

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def object_id(self) -> str:
        return str(self.body["objectId"])


async def send(client: httpx.AsyncClient, stream: Stream, base_url: str, marker: str) -> Outcome:
    started = time.monotonic()
    outcome = Outcome(marker, stream, base_url, started, started)

    async def trace(event: str, _info: dict[str, Any]) -> None:
        if event.startswith("connection.connect_tcp"):
            outcome.new_connection = True
        elif event == "http11.send_request_body.complete":
            outcome.sent = time.monotonic()

    try:
        response = await client.post(
            base_url + stream.path(),
            params={"type": stream.catalog_type, "module": "ticketing"},
            headers=stream.headers,
            json=stream.body(marker),
            extensions={"trace": trace},
        )
    except httpx.TransportError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    else:
        outcome.status = response.status_code
        outcome.headers = response.headers
        try:
            outcome.body = response.json()
        except ValueError:
            outcome.body = response.text
    outcome.finished = time.monotonic()
    return outcome


def fire(
    jobs: list[tuple[Stream, str]],
    *,
    concurrency: int = 32,
    progress: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """Sends one create per job (stream, base URL), at most `concurrency` at a time.

    `progress` is called with the number of finished requests after each one finishes.
    """
    run = uuid.uuid4().hex[:8]

    async def main() -> list[Outcome]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        gate = asyncio.Semaphore(concurrency)
        finished = 0
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:

            async def one(i: int, stream: Stream, base_url: str) -> Outcome:
                nonlocal finished
                async with gate:
                    outcome = await send(client, stream, base_url, f"load-{run}-{i}")
                finished += 1
                if progress is not None:
                    progress(finished)
                return outcome

            return list(await asyncio.gather(*(one(i, s, b) for i, (s, b) in enumerate(jobs))))

    return asyncio.run(main())


# --- tenants and checks ----------------------------------------------------------------------


def key_dir(tmp_path: Path) -> Path:
    """A data folder with a dev signing key, shared by every server a test starts."""
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    load_or_create_dev_key(folder / "dev-signing-key.pem")
    return folder


def load_streams(db: Database, data_dir: Path, client: httpx.Client) -> list[Stream]:
    """Three fresh tenants and four numbering sequences.

    Tenant 1 numbers CTC (tenant prefix) and ALL (ticket-type prefix override, type 20000),
    tenant 2 numbers REQ (its own tenant prefix), tenant 3 numbers CTC on its own.
    """
    key = load_or_create_dev_key(data_dir / "dev-signing-key.pem")
    configs = [new_tenant_config(), new_tenant_config(prefix="REQ"), new_tenant_config()]
    db.load({"tenants": configs})
    tenants = [Tenant(c["id"], c["realm"], c, key, "http://unused", db, client) for c in configs]

    def stream(tenant: Tenant, item_type: str, catalog_type: str, prefix: str) -> Stream:
        return Stream(tenant, item_type, catalog_type, prefix, tenant.headers())

    return [
        stream(tenants[0], "16910", "template", "CTC"),
        stream(tenants[0], "20000", "agent", "ALL"),
        stream(tenants[1], "16910", "template", "REQ"),
        stream(tenants[2], "16910", "template", "CTC"),
    ]


def stored(db: Database, streams: list[Stream]) -> dict[tuple[str, str], dict[int, str]]:
    """{(tenant id, prefix): {display number: summary}} as committed in the database."""
    result: dict[tuple[str, str], dict[int, str]] = {}
    for tenant_id in sorted({s.tenant.id for s in streams}):
        rows = db.fetch(
            "SELECT display_prefix, display_number, object_id, summary FROM tickets "
            "WHERE tenant_id = :t",
            t=uuid.UUID(tenant_id),
        )
        for prefix, number, object_id, summary in rows:
            assert object_id == f"{prefix}-{number:04d}"
            numbers = result.setdefault((tenant_id, prefix), {})
            assert number not in numbers, f"duplicate display number {object_id}"
            numbers[number] = summary
    return result


def check_acknowledged_and_gap_free(
    db: Database, streams: list[Stream], outcomes: list[Outcome]
) -> dict[tuple[str, str], dict[int, str]]:
    """Every 200 is in the database under its objectId; numbers are 1..N per tenant and prefix."""
    committed = stored(db, streams)
    for key, numbers in committed.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), (
            f"gap in {key}: {sorted(set(range(1, max(numbers) + 1)) - set(numbers))}"
        )
    missing = []
    for outcome in outcomes:
        if outcome.status != 200:
            continue
        prefix, _, number = outcome.object_id.rpartition("-")
        assert prefix == outcome.stream.prefix, outcome.body
        found = committed.get((outcome.stream.tenant.id, prefix), {}).get(int(number))
        if found != outcome.marker:
            missing.append((outcome.object_id, outcome.marker, found))
    assert not missing, f"acknowledged but not in the database: {missing[:10]} ({len(missing)})"
    return committed


def committed_markers(committed: dict[tuple[str, str], dict[int, str]]) -> set[str]:
    return {summary for numbers in committed.values() for summary in numbers.values()}


def describe(outcomes: list[Outcome]) -> Counter[str]:
    return Counter(str(o.status) if o.status else (o.error or "?").split(":")[0] for o in outcomes)


def spread(values: Iterator[float]) -> str:
    seen = sorted(values)
    return f"{seen[0]:.2f}..{seen[-1]:.2f}" if seen else "-"


def logged_errors(server: Server, expected: tuple[str, ...] = ()) -> list[str]:
    """Error-level log entries (JSON lines) except those whose message starts as expected."""
    found = []
    for line in server.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if "Error" in line or "Traceback" in line:
                found.append(line[:300])
            continue
        if entry.get("level") not in ("error", "critical"):
            continue
        message = str(entry.get("message", ""))
        if message.startswith(expected) and expected:
            continue
        last = str(entry.get("exception", "")).strip().splitlines()[-1:]
        found.append(f"{entry.get('logger')}: {message.strip()[:160]} {' '.join(last)[:200]}")
    return found


# --- processes -------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [pid], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            tree.append(child)
            todo.append(child)
    return tree


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def kill_hard(server: Server) -> list[int]:
    """SIGKILL to the server process and every process it started (uvicorn workers)."""
    pids = process_tree(server.process.pid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


@pytest.fixture
def pg(database: Database) -> Database:
    assert database.name == "postgresql"
    return database


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        yield http


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts; all stopped at teardown (killed ones are reaped)."""
    started: list[Server] = []
    yield started
    for server in started:
        stop_server(server)


def create_on(stream: Stream, base_url: str, client: httpx.Client, marker: str) -> httpx.Response:
    return client.post(
        base_url + stream.path(),
        params={"type": stream.catalog_type, "module": "ticketing"},
        headers=stream.headers,
        json=stream.body(marker),
    )


# --- 2. many processes, one database ---------------------------------------------------------


@on_postgresql
def test_thousands_of_creates_from_three_processes_are_all_stored_gap_free(
    pg: Database, tmp_path: Path, client: httpx.Client, servers: list[Server]
) -> None:
    data_dir = key_dir(tmp_path)
    servers.extend(
        start_server(database_url=pg.url, data_dir=data_dir, workers=w) for w in (1, 1, 2)
    )
    streams = load_streams(pg, data_dir, client)
    count = 2000
    jobs = [(streams[i % 4], servers[i % 3].base_url) for i in range(count)]

    outcomes = fire(jobs, concurrency=32)

    statuses = describe(outcomes)
    assert statuses == {"200": count}, (
        statuses,
        [o.body or o.error for o in outcomes if o.status != 200][:5],
        [s.log()[-2000:] for s in servers],
    )
    committed = check_acknowledged_and_gap_free(pg, streams, outcomes)
    assert {k: len(v) for k, v in committed.items()} == {
        (s.tenant.id, s.prefix): count // 4 for s in streams
    }
    object_ids = [(o.stream.tenant.id, o.object_id) for o in outcomes]
    assert len(set(object_ids)) == count
    assert [e for s in servers for e in logged_errors(s)] == []


# --- 3. crash safety -------------------------------------------------------------------------


@on_postgresql
def test_kill_9_during_load_loses_no_acknowledged_ticket_and_leaves_no_gap(
    pg: Database, tmp_path: Path, client: httpx.Client, servers: list[Server]
) -> None:
    data_dir = key_dir(tmp_path)
    servers.extend(
        start_server(database_url=pg.url, data_dir=data_dir, workers=w) for w in (1, 2, 1)
    )
    victim, survivors = servers[1], [servers[0], servers[2]]
    streams = load_streams(pg, data_dir, client)
    count = 1500
    jobs = [(streams[i % 4], servers[i % 3].base_url) for i in range(count)]
    killed: list[int] = []
    killed_at: list[float] = []

    def progress(finished: int) -> None:
        if finished >= count // 3 and not killed:
            killed.extend(kill_hard(victim))
            killed_at.append(time.monotonic())

    outcomes = fire(jobs, concurrency=32, progress=progress)

    assert len(killed) >= 3, f"uvicorn master and two workers expected, killed {killed}"
    victim.process.wait(timeout=10)
    assert victim.process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in killed)

    on_victim = [o for o in outcomes if o.base_url == victim.base_url]
    on_survivors = [o for o in outcomes if o.base_url != victim.base_url]
    # The survivors answered everything; the victim answered 200 or not at all.
    assert describe(on_survivors) == {"200": len(on_survivors)}, describe(on_survivors)
    victim_statuses = describe(on_victim)
    cut_off = {"ConnectError", "ReadError", "RemoteProtocolError"}
    assert set(victim_statuses) <= {"200", *cut_off}, victim_statuses
    unanswered = [o for o in on_victim if o.status is None]
    assert unanswered, "the kill came too late to cut anything off"
    # Nothing failed before the kill.
    assert min(o.finished for o in unanswered) >= killed_at[0]

    # Give statements the killed processes had sent a moment to finish at the database.
    time.sleep(1)
    committed = check_acknowledged_and_gap_free(pg, streams, outcomes)
    markers = committed_markers(committed)
    acknowledged = sum(1 for o in outcomes if o.status == 200)
    # Unanswered requests may or may not have been committed; nothing else was.
    assert markers <= {o.marker for o in outcomes}
    assert acknowledged <= len(markers) <= acknowledged + len(unanswered)

    # The survivors keep serving; the numbering continues from the committed maximum.
    for server in survivors:
        for stream in streams:
            marker = f"after-{uuid.uuid4().hex[:8]}"
            response = create_on(stream, server.base_url, client, marker)
            assert response.status_code == 200, response.text
    after = stored(pg, streams)
    for key, numbers in after.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), key
        assert len(numbers) == len(committed[key]) + len(survivors)
    assert [e for s in survivors for e in logged_errors(s)] == []
    print(
        f"\nkill -9: sent {count}, acknowledged {acknowledged}, committed {len(markers)}, "
        f"unanswered {len(unanswered)} ({victim_statuses}), killed pids {killed}"
    )


# --- 3. SIGTERM drains in-flight requests ----------------------------------------------------


@on_postgresql
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_in_flight_creates_finish_and_exits_cleanly(
    pg: Database, tmp_path: Path, client: httpx.Client, servers: list[Server], workers: int
) -> None:
    data_dir = key_dir(tmp_path)
    server = start_server(database_url=pg.url, data_dir=data_dir, workers=workers)
    servers.append(server)
    streams = load_streams(pg, data_dir, client)[:1]
    # One tenant: its creates take turns in the server, so many wait there at once.
    count = 400
    signalled: list[float] = []

    # The signal comes once more requests have been answered than there are connections, so
    # every connection has been accepted: what is in flight then is on accepted connections,
    # none waits in the listening socket's queue (which closes at SIGTERM, refusing them).
    def progress(finished: int) -> None:
        if finished >= 150 and not signalled:
            server.process.send_signal(signal.SIGTERM)
            signalled.append(time.monotonic())

    outcomes = fire([(streams[0], server.base_url)] * count, concurrency=100, progress=progress)
    try:
        returncode: int | None = server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        returncode = None
    exited = time.monotonic()

    sigterm = signalled[0]
    answered = [o for o in outcomes if o.status is not None]
    unanswered = [o for o in outcomes if o.status is None]
    drained = [o for o in answered if o.finished > sigterm]
    # In flight at SIGTERM: written whole to its connection before the signal and not
    # answered before it, on a connection the server had accepted (one that had carried an
    # answered request). Requests whose connection was still being opened may meet the
    # listening socket closing, and requests written after the signal may meet their
    # connection closing (refused or reset, never read): they are not in flight, and must
    # not be carried out.
    in_flight = [
        o
        for o in outcomes
        if o.sent is not None
        and o.sent < sigterm
        and not o.finished < sigterm
        and not o.new_connection
    ]
    cut_in_flight = [o for o in in_flight if o.status is None]
    committed = check_acknowledged_and_gap_free(pg, streams, outcomes)
    markers = committed_markers(committed)
    summary = (
        f"workers={workers}: {describe(outcomes)}; {len(in_flight)} in flight at SIGTERM, "
        f"{len(drained)} answered after it; "
        f"exit {returncode} {exited - sigterm:.1f} s after SIGTERM; committed {len(markers)}; "
        f"unanswered ended {spread(o.finished - sigterm for o in unanswered)} s after SIGTERM"
    )
    print("\n" + summary)
    problems = []
    # Every request that got an answer got 200, including those finished during the drain.
    if describe(answered) != {"200": len(answered)}:
        problems.append(f"answers other than 200: {describe(answered)}")
    if not in_flight:
        problems.append("nothing was in flight at SIGTERM; the test proved nothing")
    # Every request in flight at SIGTERM is answered, not only some.
    if cut_in_flight:
        errors = Counter(o.error for o in cut_in_flight)
        problems.append(f"{len(cut_in_flight)} in-flight requests cut off: {errors.most_common(3)}")
    # A request cut off without an answer must not have been carried out either. (Refused or
    # reset connections of requests the server never read are what a client retries.)
    cut_but_committed = [o.error for o in unanswered if o.marker in markers]
    if cut_but_committed:
        problems.append(f"committed without an answer: {cut_but_committed[:5]}")
    if returncode is None:
        problems.append("still running 15 s after SIGTERM")
    elif exited - sigterm > 10:
        problems.append(f"exited {exited - sigterm:.1f} s after SIGTERM")
    if returncode != 0:
        problems.append(f"exit status {returncode}, not 0, after a graceful SIGTERM")
    assert not problems, (summary, problems, server.log()[-2000:])


@on_postgresql
def test_bursts_beyond_the_connection_pool_log_no_errors(
    pg: Database, tmp_path: Path, client: httpx.Client, servers: list[Server]
) -> None:
    # A small pool makes every burst borrow extra connections, closed when given back.
    data_dir = key_dir(tmp_path)
    server = start_server(
        database_url=pg.url, data_dir=data_dir, env={"TICKETING_DB_POOL_SIZE": "2"}
    )
    servers.append(server)
    streams = load_streams(pg, data_dir, client)
    for _ in range(3):
        outcomes = fire([(streams[i % 4], server.base_url) for i in range(120)], concurrency=60)
        assert describe(outcomes) == {"200": len(outcomes)}, describe(outcomes)
    check_acknowledged_and_gap_free(pg, streams, outcomes)
    errors = logged_errors(server)
    assert not errors, f"{len(errors)} errors logged, e.g. {errors[:3]}"


# --- 4. database outage ----------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve())
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(Path(out.stdout.strip()) / "initdb")
    except OSError:
        pass
    for initdb in candidates:
        if all((initdb.parent / tool).is_file() for tool in ("initdb", "pg_ctl", "psql")):
            return initdb.parent
    return None


@dataclass
class OwnPostgres:
    """A PostgreSQL instance in a temporary folder, on its own port, owned by the test."""

    bindir: Path
    root: Path
    port: int
    as_user: list[str]

    @property
    def datadir(self) -> Path:
        return self.root / "pgdata"

    def url(self, database: str = "ticketing") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [*self.as_user, str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        assert done.returncode == 0, f"{tool} {args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self.run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.root / "pg.log"), "-o", options,
            "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        done = subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "status"],
            capture_output=True,
        )
        return done.returncode == 0

    def log(self) -> str:
        path = self.root / "pg.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if not PG_URL:
        pytest.skip("TICKETING_TEST_DATABASE_URL is not set")
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    root = Path(tempfile.mkdtemp(prefix="ticketing-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root.
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no postgres user for initdb")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    instance = OwnPostgres(bindir, root, free_port(), as_user)
    try:
        instance.run(
            "initdb", "-D", str(instance.datadir), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-sync", timeout=120,
        )  # fmt: skip
        instance.start()
        instance.run(
            "psql", "-h", "127.0.0.1", "-p", str(instance.port), "-U", "postgres",
            "-d", "postgres", "-qc", "CREATE DATABASE ticketing",
        )  # fmt: skip
        yield instance
    finally:
        if instance.datadir.exists() and instance.running():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                instance.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Outage:
    stopping: float = 0.0  # pg_ctl stop called
    stopped: float = 0.0  # the database is down from here (pg_ctl stop returned)
    restarting: float = 0.0  # pg_ctl start called
    restarted: float = 0.0  # pg_ctl start returned
    recovered: float = 0.0  # first 200 of a create sent after `restarted`
    health_down: list[tuple[int, Any, float]] = dataclasses.field(default_factory=list)


def test_database_outage_answers_503_and_the_service_recovers_by_itself(
    own_postgres: OwnPostgres, tmp_path: Path, client: httpx.Client, servers: list[Server]
) -> None:
    timeout = 5.0  # the default TICKETING_DB_TIMEOUT
    db = Database("postgresql", own_postgres.url())
    db.migrate()
    data_dir = key_dir(tmp_path)
    server = start_server(
        database_url=db.url, data_dir=data_dir, env={"TICKETING_DB_TIMEOUT": str(int(timeout))}
    )
    servers.append(server)
    streams = load_streams(db, data_dir, client)
    run = uuid.uuid4().hex[:8]
    outage = Outage()

    async def traffic() -> list[Outcome]:
        outcomes: list[Outcome] = []
        done = asyncio.Event()
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:

            async def worker(w: int) -> None:
                i = 0
                while not done.is_set():
                    stream = streams[(w + i) % len(streams)]
                    outcome = await send(http, stream, server.base_url, f"out-{run}-{w}-{i}")
                    outcomes.append(outcome)
                    i += 1
                    if outcome.status != 200:
                        await asyncio.sleep(0.05)  # a client backing off a little

            async def health() -> tuple[int, Any, float]:
                # A connection of its own: the creates' connections may be closed under it.
                started = time.monotonic()
                async with httpx.AsyncClient(timeout=30) as probe:
                    response = await probe.get(server.base_url + "/healthz")
                return response.status_code, response.json(), time.monotonic() - started

            async def conductor() -> None:
                try:
                    await outage_script()
                finally:
                    done.set()  # the workers stop even when a step fails

            async def outage_script() -> None:
                # Creates flow before the database goes: some must be answered well before.
                for _ in range(200):  # up to 20 s
                    if sum(o.status == 200 for o in outcomes) >= 20:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.5)
                outage.stopping = time.monotonic()
                await asyncio.to_thread(own_postgres.stop, "fast")
                outage.stopped = time.monotonic()
                for _ in range(3):
                    await asyncio.sleep(0.7)
                    outage.health_down.append(await health())
                outage.restarting = time.monotonic()
                await asyncio.to_thread(own_postgres.start)
                outage.restarted = time.monotonic()
                deadline = outage.restarted + 20
                while time.monotonic() < deadline:
                    recovered = [
                        o.finished
                        for o in outcomes
                        if o.status == 200 and o.started > outage.restarted
                    ]
                    if recovered:
                        outage.recovered = min(recovered)
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(2)

            await asyncio.gather(conductor(), *(worker(w) for w in range(12)))
        return outcomes

    outcomes = asyncio.run(traffic())
    # After the outage, a burst of creates all succeeds: no broken connection is left over.
    after = fire([(streams[i % len(streams)], server.base_url) for i in range(200)])
    health_after = client.get(server.base_url + "/healthz")

    failures = [o for o in outcomes if o.status != 200]
    slowest = max(outcomes, key=lambda o: o.seconds)
    # The promise covers every request that met the outage, timed from when it met it (sent
    # during the outage, or in flight when the database began to stop): each one refused, and
    # each one sent while the database was down, whatever it answered.
    met_outage = failures + [
        o for o in outcomes if o.started > outage.stopped and o.started < outage.restarting
    ]
    waits = [o.finished - max(o.started, outage.stopping) for o in met_outage]
    longest_wait = max(waits, default=0.0)
    down = [o for o in outcomes if o.started > outage.stopped and o.finished < outage.restarting]
    before = [o for o in outcomes if o.finished < outage.stopped - 1.0]
    settled = [o for o in outcomes if outage.recovered and o.started > outage.recovered + 0.5]
    report = (
        f"{describe(outcomes)} (while down: {describe(down)}); "
        f"recovered {outage.recovered - outage.restarted:.1f} s after restart; "
        f"slowest {slowest.seconds:.2f} s ({slowest.status or slowest.error}); "
        f"longest wait in the outage {longest_wait:.2f} s; "
        f"health while down {[(s, round(t, 2)) for s, _, t in outage.health_down]}; "
        f"after: {describe(after)}"
    )
    print("\n" + report)
    problems = []
    if not before or describe(before) != {"200": len(before)}:
        problems.append(f"before the outage: {describe(before)}")
    # While down: 503 in the envelope with Retry-After, nothing else, never a hang.
    if not down:
        problems.append("no request was sent while the database was down")
    for outcome in failures:
        if outcome.status is None:
            problems.append(f"no answer at all: {outcome.error}")
        elif outcome.status != 503:
            problems.append(f"{outcome.status}: {outcome.body}")
        else:
            assert outcome.headers is not None
            envelope = outcome.body if isinstance(outcome.body, dict) else {}
            retry_after = outcome.headers.get("retry-after", "")
            if not (retry_after.isdigit() and int(retry_after) > 0):
                problems.append(f"503 without a Retry-After: {dict(outcome.headers)}")
            if (envelope.get("error"), envelope.get("code"), envelope.get("status")) != (
                True,
                "SERVICE_UNAVAILABLE",
                503,
            ):
                problems.append(f"503 not in the error envelope: {outcome.body}")
    # Answered within TICKETING_DB_TIMEOUT, as the README promises (measured from the client,
    # so the time includes the round trip).
    if longest_wait > timeout:
        problems.append(
            f"a request met the outage and waited {longest_wait:.2f} s for its answer "
            f"(TICKETING_DB_TIMEOUT {timeout} s)"
        )
    # /healthz says unhealthy while the database is away, within the same bound.
    if not outage.health_down or not all(
        status == 503 and body.get("status") == "unhealthy" and seconds <= timeout
        for status, body, seconds in outage.health_down
    ):
        problems.append(f"/healthz while down: {outage.health_down}")
    # The service recovers by itself.
    if not outage.recovered or outage.recovered - outage.restarted > 10:
        problems.append("no create succeeded within 10 s of the database's return")
    elif not settled or describe(settled) != {"200": len(settled)}:
        problems.append(f"after recovering: {describe(settled)}")
    if describe(after) != {"200": len(after)}:
        problems.append(f"burst after the outage: {describe(after)}")
    if health_after.status_code != 200:
        problems.append(f"/healthz after the outage: {health_after.status_code}")
    # Expected: one "database unavailable" error per 503 and health-check warnings.
    unexpected_logs = logged_errors(server, expected=("database unavailable",))
    if unexpected_logs:
        kinds = Counter(line[:120] for line in unexpected_logs)
        problems.append(f"{len(unexpected_logs)} unexpected errors logged: {kinds.most_common(3)}")
    # Every acknowledged create is stored, and the numbering continues without gaps.
    committed = check_acknowledged_and_gap_free(db, streams, [*outcomes, *after])
    acknowledged = sum(1 for o in [*outcomes, *after] if o.status == 200)
    assert acknowledged <= len(committed_markers(committed)) <= acknowledged + len(failures)
    assert not problems, (report, sorted(Counter(problems).items(), key=lambda kv: -kv[1])[:8])
