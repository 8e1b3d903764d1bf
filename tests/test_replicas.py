"""Reads served by a real streaming replica: which reads go there, read-your-writes, a replica
that is down or lagging is skipped, and /healthz reports each replica.

The replica is made with `pg_basebackup -R` from a primary the tests initdb (tests/replication.py).
Proof that a read came from the replica: with its replay paused, a caller who did not write
sees the data as it was, while the writer sees its own write. The service works as the
ticketing_app role, which row-level security binds: a replica connection without the caller's
tenant setting would see no rows at all, so every 200 below also shows that the setting is made.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PG_URL
from tests.replication import ReplicatedCluster, start_replicated_cluster
from tests.sse_client import SseReader
from tests.support import (
    Database,
    Server,
    Tenant,
    new_tenant_config,
    start_server,
    stop_server,
)
from tests.ticket_api import call, created, patch, updated
from ticketing.auth.dev_issuer import load_or_create_dev_key

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.skipif(not PG_URL, reason="TICKETING_TEST_DATABASE_URL is not set"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[ReplicatedCluster]:
    cluster = start_replicated_cluster()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="module")
def primary_db(cluster: ReplicatedCluster) -> Database:
    cluster.primary.psql("CREATE DATABASE ticketing")
    db = Database("postgresql", cluster.primary.url("ticketing"))
    db.migrate()
    return db


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replica-data")


def _server(
    cluster: ReplicatedCluster, db: Database, data_dir: Path, max_lag: float
) -> Iterator[Server]:
    server = start_server(
        database_url=db.url,
        data_dir=data_dir,
        env={
            "TICKETING_DATABASE_REPLICA_URLS": cluster.replica.url("ticketing"),
            "TICKETING_REPLICA_MAX_LAG": str(max_lag),
            "TICKETING_REPLICA_CHECK_INTERVAL": "0.2",
            "TICKETING_REPLICA_WAIT": "0.3",
        },
    )
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def server(cluster: ReplicatedCluster, primary_db: Database, data_dir: Path) -> Iterator[Server]:
    """Replicas may lag 60 s: a paused replica keeps serving reads during a test."""
    yield from _server(cluster, primary_db, data_dir, max_lag=60)


@pytest.fixture(scope="module")
def strict_server(
    cluster: ReplicatedCluster, primary_db: Database, data_dir: Path
) -> Iterator[Server]:
    """Replicas may lag 2 s."""
    yield from _server(cluster, primary_db, data_dir, max_lag=2)


@pytest.fixture
def replay(cluster: ReplicatedCluster) -> Iterator[ReplicatedCluster]:
    """The cluster, with replay resumed and the replica caught up again after the test."""
    yield cluster
    cluster.resume_replay()
    cluster.wait_caught_up()


def _tenant_on(server: Server, db: Database, data_dir: Path, http: httpx.Client) -> Tenant:
    config = new_tenant_config()
    db.load({"tenants": [config]})
    return Tenant(
        id=config["id"],
        realm=config["realm"],
        config=config,
        key=load_or_create_dev_key(data_dir / "dev-signing-key.pem"),
        base_url=server.base_url,
        db=db,
        client=http,
    )


@pytest.fixture
def make_tenant(
    primary_db: Database, data_dir: Path, http: httpx.Client
) -> Callable[[Server], Tenant]:
    return lambda server: _tenant_on(server, primary_db, data_dir, http)


def agent(tenant: Tenant, name: str) -> str:
    """An agent's token (agents see every ticket of the tenant)."""
    return tenant.token(username=name, email=f"{name}@example.com")


def reads(server: Server, http: httpx.Client) -> dict[str, float]:
    """ticketing_db_reads_total by source, from /metrics."""
    text = http.get(f"{server.base_url}/metrics").text
    found = re.findall(r'^ticketing_db_reads_total\{source="(\w+)"\} (\S+)$', text, re.M)
    return {source: float(value) for source, value in found}


def health(server: Server, http: httpx.Client) -> dict[str, Any]:
    response = http.get(f"{server.base_url}/healthz")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def summary_seen(tenant: Tenant, object_id: str, token: str) -> str | None:
    response = tenant.get(f"/ticket/{object_id}", token=token)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    summary: str = response.json()["ticket"]["summary"]
    return summary


def list_snapshot(server: Server, tenant: Tenant, token: str) -> dict[str, Any]:
    """The `snapshot` event of a list-updates stream opened with `token` (the stream is
    closed once it came)."""
    stream = SseReader(
        f"{server.base_url}/api/v2/ticketing/ticket/sse/list/updates",
        tenant.headers(token),
        {"type": "template", "module": "ticketing", "snapshot": "true"},
    )
    try:
        events = stream.wait_for(lambda events: any(e.event == "snapshot" for e in events))
    finally:
        stream.close()
    assert stream.status == 200, stream.error_body
    data: dict[str, Any] = next(e for e in events if e.event == "snapshot").data
    return data


def test_each_read_endpoint_is_served_by_the_replica(
    server: Server,
    make_tenant: Callable[[Server], Tenant],
    cluster: ReplicatedCluster,
    http: httpx.Client,
) -> None:
    tenant = make_tenant(server)
    writer = agent(tenant, "writer")
    ticket = created(tenant.create(token=writer))
    object_id = ticket["object_id"]
    cluster.wait_caught_up()
    time.sleep(0.5)  # the caller's write is older than any wait now (a check has passed)
    reader = agent(tenant, "reader")
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/ticket/{object_id}", None),
        ("POST", "/ticket/list", {"top": 10}),
        ("POST", "/ticket/count", {}),
        ("GET", f"/ticket/{object_id}/history", None),
        ("GET", f"/ticket/{object_id}/comments", None),
        ("GET", "/tenant/meta", None),
        ("GET", "/tenant/sc/offers", None),
        ("GET", "/ticket-type", None),
    ]
    for method, path, body in requests:
        before = reads(server, http)
        response = call(tenant, method, path, token=reader, json=body)
        assert response.status_code == 200, (path, response.text)
        after = reads(server, http)
        assert after.get("replica", 0) == before.get("replica", 0) + 1, (path, before, after)
        assert after.get("primary", 0) == before.get("primary", 0), (path, before, after)
    # The event stream's snapshot too, once the replica has replayed past the stream's start.
    before = reads(server, http)
    snapshot = list_snapshot(server, tenant, reader)
    assert [t["object_id"] for t in snapshot["tickets"]] == [object_id]
    after = reads(server, http)
    assert after.get("replica", 0) == before.get("replica", 0) + 1, (before, after)


def test_a_paused_replica_shows_others_older_data_but_the_writer_its_own_writes(
    server: Server,
    make_tenant: Callable[[Server], Tenant],
    replay: ReplicatedCluster,
    http: httpx.Client,
) -> None:
    tenant = make_tenant(server)
    writer = agent(tenant, "writer")
    reader = agent(tenant, "reader")
    first = created(tenant.create(token=writer))
    object_id = first["object_id"]
    wait_until(lambda: summary_seen(tenant, object_id, reader) is not None)
    replay.pause_replay()

    changed = updated(
        patch(
            tenant,
            object_id,
            {"summary": "Changed while the replica is paused", "etag": first["etag"]},
            token=writer,
        )
    )
    second = created(tenant.create(token=writer))

    # The other caller reads the replica: the ticket as it was, and no second ticket.
    assert summary_seen(tenant, object_id, reader) == first["summary"]
    assert summary_seen(tenant, second["object_id"], reader) is None
    listed = call(tenant, "POST", "/ticket/list", token=reader, json={"top": 10}).json()
    assert [t["object_id"] for t in listed["data"]["value"]] == [object_id]
    history = call(tenant, "GET", f"/ticket/{object_id}/history", token=reader).json()
    assert len(history["data"]["value"]) == 1

    # The writer sees both of its writes (the primary serves it: the replica cannot replay).
    assert summary_seen(tenant, object_id, writer) == changed["summary"]
    assert summary_seen(tenant, second["object_id"], writer) == second["summary"]
    listed = call(tenant, "POST", "/ticket/list", token=writer, json={"top": 10}).json()
    assert sorted(t["object_id"] for t in listed["data"]["value"]) == sorted(
        [object_id, second["object_id"]]
    )
    # So does a fresh token of the same person: the caller is the person, not the token.
    assert summary_seen(tenant, object_id, agent(tenant, "writer")) == changed["summary"]

    # A stream's snapshot holds every ticket committed before the stream began, whoever asks.
    assert list_snapshot(server, tenant, reader)["total"] == 2

    replay.resume_replay()
    wait_until(lambda: summary_seen(tenant, object_id, reader) == changed["summary"])
    assert summary_seen(tenant, second["object_id"], reader) == second["summary"]


def test_discovery_reads_a_replica_until_it_replays_a_new_configuration(
    server: Server,
    make_tenant: Callable[[Server], Tenant],
    replay: ReplicatedCluster,
    primary_db: Database,
) -> None:
    tenant = make_tenant(server)
    reader = agent(tenant, "reader")
    meta = call(tenant, "GET", "/tenant/meta", token=reader)
    assert meta.status_code == 200, meta.text
    old_name = meta.json()["data"]["name"]
    replay.pause_replay()
    # Loaded straight into the primary (`ticketing load`), not by a caller of the API.
    primary_db.load({"tenants": [{**tenant.config, "name": "Renamed"}]})
    assert call(tenant, "GET", "/tenant/meta", token=reader).json()["data"]["name"] == old_name
    replay.resume_replay()
    wait_until(
        lambda: (
            call(tenant, "GET", "/tenant/meta", token=reader).json()["data"]["name"] == "Renamed"
        )
    )


def test_a_replica_that_is_down_is_skipped_and_healthz_says_so(
    server: Server,
    make_tenant: Callable[[Server], Tenant],
    cluster: ReplicatedCluster,
    http: httpx.Client,
) -> None:
    tenant = make_tenant(server)
    writer = agent(tenant, "writer")
    reader = agent(tenant, "reader")
    [replica] = health(server, http)["replicas"]
    assert replica["name"] == f"127.0.0.1:{cluster.replica.port}/ticketing", replica
    assert replica["status"] == "ok" and 0 <= replica["lagSeconds"] < 1, replica
    cluster.replica.stop()
    try:
        first = created(tenant.create(token=writer))
        body = health(server, http)
        assert body["status"] == "ok" and body["database"] == "ok", body
        assert body["replicas"] == [
            {
                "name": f"127.0.0.1:{cluster.replica.port}/ticketing",
                "status": "unreachable",
                "lagSeconds": None,
            }
        ]
        before = reads(server, http)
        assert summary_seen(tenant, first["object_id"], reader) == first["summary"]
        assert call(tenant, "POST", "/ticket/count", token=reader, json={}).json()["data"] == {
            "count": 1
        }
        after = reads(server, http)
        assert after.get("primary", 0) == before.get("primary", 0) + 2, (before, after)
        assert after.get("replica", 0) == before.get("replica", 0), (before, after)
    finally:
        cluster.replica.start()
    cluster.wait_caught_up()
    wait_until(lambda: health(server, http)["replicas"][0]["status"] == "ok")
    before = reads(server, http)
    assert summary_seen(tenant, first["object_id"], reader) == first["summary"]
    assert reads(server, http).get("replica", 0) == before.get("replica", 0) + 1


def test_a_replica_that_lags_past_the_bound_is_skipped(
    strict_server: Server,
    make_tenant: Callable[[Server], Tenant],
    replay: ReplicatedCluster,
    http: httpx.Client,
) -> None:
    tenant = make_tenant(strict_server)
    writer = agent(tenant, "writer")
    reader = agent(tenant, "reader")
    first = created(tenant.create(token=writer))
    wait_until(lambda: summary_seen(tenant, first["object_id"], reader) is not None)
    replay.pause_replay()
    second = created(tenant.create(token=writer))
    # Within the bound (2 s), the replica still serves the reader: no second ticket yet.
    assert summary_seen(tenant, second["object_id"], reader) is None
    wait_until(lambda: health(strict_server, http)["replicas"][0]["status"] == "lagging")
    lag = health(strict_server, http)["replicas"][0]["lagSeconds"]
    assert lag > 2, lag
    # Past it, the primary serves everyone.
    assert summary_seen(tenant, second["object_id"], reader) == second["summary"]
    replay.resume_replay()
    replay.wait_caught_up()
    wait_until(lambda: health(strict_server, http)["replicas"][0]["status"] == "ok")


def test_replica_urls_must_be_postgresql(tmp_path: Path) -> None:
    from ticketing.config import Settings

    settings = Settings(
        database_url=PG_URL,
        database_replica_urls=f" {PG_URL} , sqlite:///{tmp_path}/x.db",
        data_dir=tmp_path,
    )
    with pytest.raises(ValueError, match="a replica must be PostgreSQL"):
        _ = settings.resolved_replica_urls
    ok = Settings(database_url=PG_URL, database_replica_urls=f"{PG_URL},{PG_URL}")
    assert ok.resolved_replica_urls == [ok.resolved_database_url] * 2
