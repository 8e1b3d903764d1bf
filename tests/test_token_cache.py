"""A remembered token is still held to its expiry and to its issuer's current keys."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import (
    Database,
    Server,
    Tenant,
    new_tenant_config,
    start_server,
    stop_server,
)
from ticketing.auth.dev_issuer import load_or_create_dev_key


@pytest.fixture(scope="module")
def strict_server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that allows no clock skew, so expiry can be tested within seconds."""
    data_dir = tmp_path_factory.mktemp("strict")
    server = start_server(
        database_url=database.url, data_dir=data_dir, env={"TICKETING_CLOCK_SKEW": "0"}
    )
    yield server
    stop_server(server)


def test_a_token_used_before_is_refused_once_expired(
    strict_server: Server, database: Database, tmp_path: Path
) -> None:
    config = new_tenant_config()
    database.load({"tenants": [config]})
    data_dir = Path(strict_server.log_path).parent
    with httpx.Client(timeout=30) as client:
        tenant = Tenant(
            id=config["id"],
            realm=config["realm"],
            config=config,
            key=load_or_create_dev_key(data_dir / "dev-signing-key.pem"),
            base_url=strict_server.base_url,
            db=database,
            client=client,
        )
        token = tenant.token(ttl=2)
        assert tenant.create(token=token).status_code == 200
        assert tenant.create(token=token).status_code == 200  # served from the cache
        time.sleep(3.1)
        response = tenant.create(token=token)
        assert response.status_code == 401
        assert response.json()["code"] == "AUTHENTICATION_FAILURE"
        assert tenant.ticket_count() == 2
