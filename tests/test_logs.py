"""Logs are JSON lines: one per request with its id, tenant, route, status and latency, and an
audit event for every refusal."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import Database, Server, Tenant, new_tenant_config, start_server, stop_server
from ticketing.auth.dev_issuer import load_or_create_dev_key
from ticketing.kit.logs import configure_logging


@pytest.fixture(scope="module")
def logging_server(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    server = start_server(
        database_url=database.url, data_dir=tmp_path_factory.mktemp("logs"), log_level="info"
    )
    yield server
    stop_server(server)


def _lines(server: Server) -> list[dict[str, Any]]:
    time.sleep(0.3)  # let the server flush
    out = []
    for line in server.log().splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_each_request_is_one_json_line(logging_server: Server, database: Database) -> None:
    config = new_tenant_config()
    database.load({"tenants": [config]})
    with httpx.Client(timeout=30) as client:
        tenant = Tenant(
            id=config["id"],
            realm=config["realm"],
            config=config,
            key=load_or_create_dev_key(logging_server.log_path.parent / "dev-signing-key.pem"),
            base_url=logging_server.base_url,
            db=database,
            client=client,
        )
        ok = tenant.create(headers={**tenant.headers(), "X-Request-ID": "req-log-1"})
        assert ok.status_code == 200
        refused = tenant.create(
            headers={
                **tenant.headers(tenant.token(scope="tickets:read", username="reader")),
                "X-Request-ID": "req-log-2",
            }
        )
        assert refused.status_code == 401
    lines = _lines(logging_server)
    access = [line for line in lines if line.get("request_id") == "req-log-1"]
    assert access, logging_server.log()[-3000:]
    entry = access[-1]
    assert entry["logger"] == "ticketing.access"
    assert entry["route"] == "/api/v2/ticketing/ticket/create/{teamId}/{itemTypeId}"
    assert entry["status"] == 200
    assert entry["tenant"] == tenant.id
    assert entry["method"] == "POST"
    assert isinstance(entry["latency_ms"], float | int)
    audit = [
        line
        for line in lines
        if line.get("request_id") == "req-log-2" and line.get("event") == "access_denied"
    ]
    assert len(audit) == 1
    assert audit[0]["code"] == "USER_PERMISSION_FAILURE"
    assert audit[0]["subject"] == "reader"
    assert audit[0]["tenant"] == tenant.id
    assert audit[0]["logger"] == "ticketing.audit"


def test_the_servers_own_access_line_is_not_even_prepared() -> None:
    # uvicorn prepares its access line (client address, quoted path) for every response when
    # its access logger reaches a handler; ticketing.access is the one access log.
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info")
        assert root.handlers
        assert not logging.getLogger("uvicorn.access").hasHandlers()
        assert logging.getLogger("uvicorn.error").hasHandlers()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
