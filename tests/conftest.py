"""Fixtures: one real server per database backend (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.attachment_api import file_tenant_config
from tests.browser import browser  # noqa: F401  (the browser tests' fixture)
from tests.portal_client import PortalClient
from tests.sse_client import SseReader
from tests.support import (
    Database,
    Server,
    Tenant,
    event_id,
    event_position,
    new_tenant_config,
    reset_postgresql,
    start_server,
    stop_server,
)
from ticketing.auth.dev_issuer import load_or_create_dev_key
from ticketing.demo import DEMO_CONFIG, DEMO_REALM, DEMO_TENANT

PG_URL = os.environ.get("TICKETING_TEST_DATABASE_URL")

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgresql,
            pytest.mark.skipif(not PG_URL, reason="TICKETING_TEST_DATABASE_URL is not set"),
        ],
    ),
]


@pytest.fixture(scope="session", params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Database:
    """A migrated database of each backend."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "ticketing.db"
        db = Database("sqlite", f"sqlite:///{path}")
    else:
        assert PG_URL
        reset_postgresql(PG_URL)
        db = Database("postgresql", PG_URL)
    db.migrate()
    return db


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder shared by the test servers (holds the dev signing key)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def server(database: Database, data_dir: Path) -> Iterator[Server]:
    """A `ticketing serve` process on the database, with the portal's development sign-in
    (to the demo tenant: `demo_tenant`; tests sign in to others with PortalClient.sign_in)."""
    server = start_server(
        database_url=database.url, data_dir=data_dir, env={"TICKETING_DEV_SIGN_IN": "true"}
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def make_tenant(
    server: Server, database: Database, data_dir: Path, http: httpx.Client
) -> Callable[..., Tenant]:
    """Loads a fresh tenant (standard configuration, overrides applied) and returns it."""
    key = load_or_create_dev_key(data_dir / "dev-signing-key.pem")

    def make(**overrides: Any) -> Tenant:
        config = new_tenant_config(**overrides)
        database.load({"tenants": [config]})
        return Tenant(
            id=config["id"],
            realm=config["realm"],
            config=config,
            key=key,
            base_url=server.base_url,
            db=database,
            client=http,
        )

    return make


@pytest.fixture
def demo_tenant(server: Server, database: Database, data_dir: Path, http: httpx.Client) -> Tenant:
    """The demo tenant, loaded from the file `ticketing demo` loads: the one tenant the
    development sign-in signs in to."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())["tenants"][0]
    database.load({"tenants": [config]})
    return Tenant(
        id=DEMO_TENANT,
        realm=DEMO_REALM,
        config=config,
        key=load_or_create_dev_key(data_dir / "dev-signing-key.pem"),
        base_url=server.base_url,
        db=database,
        client=http,
    )


@pytest.fixture
def tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    """A fresh tenant with the standard configuration."""
    return make_tenant()


@pytest.fixture
def files_tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    """A fresh tenant with the attachments test configuration (tests.attachment_api)."""
    config = file_tenant_config()
    return make_tenant(**{k: v for k, v in config.items() if k not in ("id", "realm")})


@pytest.fixture
def portal(server: Server, data_dir: Path) -> Iterator[Callable[[], PortalClient]]:
    """Opens portal sessions (browser-like clients) on the server; closes them afterwards."""
    clients: list[PortalClient] = []

    def make() -> PortalClient:
        client = PortalClient(server.base_url, data_dir)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def streams() -> Iterator[list[SseReader]]:
    """Event streams a test opened, closed after it."""
    opened: list[SseReader] = []
    yield opened
    for reader in opened:
        reader.close()


@pytest.fixture
def position(data_dir: Path) -> Callable[[Tenant, str | None], int]:
    """The outbox position behind an event id the test servers showed a tenant."""
    return lambda tenant, event_id: event_position(data_dir, tenant.id, event_id)


@pytest.fixture
def opaque(data_dir: Path) -> Callable[[Tenant, int], str]:
    """The event id the test servers show a tenant for an outbox position."""
    return lambda tenant, position: event_id(data_dir, tenant.id, position)
