"""Test support: a real server process per database, tenants, tokens, and DB access."""

from __future__ import annotations

import asyncio
import copy
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from sqlalchemy import text

from ticketing.auth.dev_issuer import DevKey, mint_token
from ticketing.catalog.config_file import parse_config
from ticketing.catalog.loader import load_config
from ticketing.config import async_database_url
from ticketing.events.ids import EventIds
from ticketing.kit import migrate
from ticketing.kit.db import create_engine, create_sessionmaker, transaction

DEV_ISSUER = "http://localhost:8000"

# The seed's three field UUIDs (item type 16910).
TITLE = "ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53"
DESCRIPTION = "7f111983-1013-41be-a056-989fff018bb5"
NEEDED_WITHIN = "711ea9e6-1b73-4070-9eb2-941803f7f5d4"

# Item type 20000: one field of every type.
F_TEXT = "00000000-0000-4000-8000-000000000001"
F_TEXTAREA = "00000000-0000-4000-8000-000000000002"
F_RICHTEXT = "00000000-0000-4000-8000-000000000003"
F_NUMBER = "00000000-0000-4000-8000-000000000004"
F_DATE = "00000000-0000-4000-8000-000000000005"
F_DATETIME = "00000000-0000-4000-8000-000000000006"
F_DROPDOWN = "00000000-0000-4000-8000-000000000007"
F_RADIO = "00000000-0000-4000-8000-000000000008"
F_MULTISELECT = "00000000-0000-4000-8000-000000000009"
F_CHECKBOX = "00000000-0000-4000-8000-00000000000a"
F_EMAIL = "00000000-0000-4000-8000-00000000000b"
F_USER = "00000000-0000-4000-8000-00000000000c"

OPTIONS = [{"value": "low", "label": "Low"}, {"value": "medium"}, {"value": "high"}]


def standard_tenant(tenant_id: str, realm: str, prefix: str = "CTC") -> dict[str, Any]:
    """A tenant like the seed's, plus an item type with every field type.

    Teams: james (all write roles), finance (ticket_agent only).
    Item types: 16910 (seed's fields), 20000 (every type, prefix ALL), 30000 (tenant_admin only).
    Offers: 23629 -> 16910 (all catalogs), 23630 -> 20000 (agent catalog only),
    23631 -> 16910 (inactive), 23632 -> 30000.
    """
    return {
        "id": tenant_id,
        "name": f"Tenant {realm}",
        "realm": realm,
        "prefix": prefix,
        "teams": [
            {"id": "james", "name": "James"},
            {"id": "finance", "name": "Finance", "create_roles": ["ticket_agent"]},
        ],
        "ticket_types": [
            {
                "id": "16910",
                "name": "Hardware request",
                "fields": [
                    {
                        "id": TITLE,
                        "name": "title",
                        "label": "Title",
                        "type": "text",
                        "required": True,
                        "defaultValue": "",
                        "maxLength": 200,
                    },
                    {
                        "id": DESCRIPTION,
                        "name": "description",
                        "label": "Description",
                        "type": "richtext",
                        "defaultValue": "",
                    },
                    {
                        "id": NEEDED_WITHIN,
                        "name": "neededWithin",
                        "label": "Needed within",
                        "type": "dropdown",
                        "defaultValue": "<1month",
                        "options": [{"value": "<1week"}, {"value": "<2week"}, {"value": "<1month"}],
                    },
                ],
            },
            {
                "id": "20000",
                "name": "Everything",
                "prefix": "ALL",
                "workflow": {
                    "statuses": [
                        {"name": "New", "category": "To-do Category"},
                        {"name": "Triaged", "category": "In-Progress Category", "initial": True},
                    ]
                },
                "fields": [
                    {
                        "id": F_TEXT,
                        "name": "text",
                        "label": "Text",
                        "type": "text",
                        "required": True,
                        "maxLength": 20,
                    },
                    {
                        "id": F_TEXTAREA,
                        "name": "textarea",
                        "label": "Textarea",
                        "type": "textarea",
                        "maxLength": 10,
                    },
                    {"id": F_RICHTEXT, "name": "richtext", "label": "Rich", "type": "richtext"},
                    {
                        "id": F_NUMBER,
                        "name": "number",
                        "label": "Number",
                        "type": "number",
                        "min": 0,
                        "max": 100,
                    },
                    {
                        "id": F_DATE,
                        "name": "date",
                        "label": "Due",
                        "type": "date",
                        "defaultValue": "",
                    },
                    {
                        "id": F_DATETIME,
                        "name": "datetime",
                        "label": "Updated At",
                        "type": "datetime",
                    },
                    {
                        "id": F_DROPDOWN,
                        "name": "dropdown",
                        "label": "Priority",
                        "type": "dropdown",
                        "options": OPTIONS,
                        "defaultValue": "medium",
                    },
                    {
                        "id": F_RADIO,
                        "name": "radio",
                        "label": "Impact",
                        "type": "radio",
                        "options": OPTIONS,
                        "defaultValue": "nonsense",
                    },
                    {
                        "id": F_MULTISELECT,
                        "name": "multiselect",
                        "label": "Tags",
                        "type": "multiselect",
                        "options": OPTIONS,
                    },
                    {
                        "id": F_CHECKBOX,
                        "name": "checkbox",
                        "label": "Urgent",
                        "type": "checkbox",
                        "defaultValue": False,
                    },
                    {"id": F_EMAIL, "name": "email", "label": "Contact", "type": "email"},
                    {"id": F_USER, "name": "user", "label": "Assignee", "type": "user"},
                ],
            },
            {
                "id": "30000",
                "name": "Admin only",
                "create_roles": ["tenant_admin"],
                "fields": [],
            },
        ],
        "offers": [
            {"id": "23629", "name": "New laptop", "item_type": "16910"},
            {"id": "23630", "name": "Everything", "item_type": "20000", "catalog_types": ["agent"]},
            {"id": "23631", "name": "Retired", "item_type": "16910", "active": False},
            {"id": "23632", "name": "Admin thing", "item_type": "30000"},
        ],
    }


def seed_body(**overrides: Any) -> dict[str, Any]:
    """The seed's example request body."""
    body: dict[str, Any] = {
        "source": "api",
        "summary": "Hardware request - new laptop",
        "ticketBody": {
            "offerId": "23629",
            TITLE: "Need a replacement laptop",
            DESCRIPTION: "<p>Current laptop battery no longer holds charge.</p>",
            NEEDED_WITHIN: "<2week",
        },
        "attachments": {},
        "ticketRelation": None,
    }
    body.update(overrides)
    return body


def everything_body(**fields: Any) -> dict[str, Any]:
    """A valid body for item type 20000 (offer 23630, agent catalog)."""
    ticket_body: dict[str, Any] = {"offerId": "23630", F_TEXT: "hello"}
    ticket_body.update(fields)
    return {
        "source": "api",
        "summary": "Everything",
        "ticketBody": ticket_body,
        "attachments": {},
        "ticketRelation": None,
    }


@dataclass
class Database:
    """The database a test server runs on, reachable from the test process too."""

    name: str  # "sqlite" or "postgresql"
    url: str  # as a user writes it

    def run(self, coro_fn: Any) -> Any:
        async def runner() -> Any:
            engine = create_engine(async_database_url(self.url), pool_size=2)
            try:
                return await coro_fn(engine)
            finally:
                await engine.dispose()

        return run_sync(runner())

    def fetch(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Runs one SQL statement and returns its rows (UUIDs as the backend stores them)."""
        if self.name == "sqlite":
            # SQLAlchemy's Uuid type keeps SQLite values as 32 hex digits.
            params = {k: v.hex if isinstance(v, uuid.UUID) else v for k, v in params.items()}

        async def go(engine: Any) -> list[tuple[Any, ...]]:
            async with engine.begin() as conn:
                result = await conn.execute(text(sql), params)
                return [tuple(r) for r in result.fetchall()] if result.returns_rows else []

        return self.run(go)  # type: ignore[no-any-return]

    def migrate(self) -> None:
        self.run(migrate.upgrade)

    def load(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        """Loads a configuration ({"tenants": [...]}) the way `ticketing load` does."""
        parsed = parse_config(config, source="test")

        async def go(engine: Any) -> list[tuple[str, str]]:
            async with transaction(create_sessionmaker(engine)) as session:
                return list(await load_config(session, parsed))

        return self.run(go)  # type: ignore[no-any-return]


def reset_postgresql(url: str) -> None:
    """Empties the public schema of a PostgreSQL test database."""

    async def go() -> None:
        engine = create_engine(async_database_url(url), pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        finally:
            await engine.dispose()

    run_sync(go())


@contextmanager
def sibling_database(url: str, suffix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database beside the one of `url` (its name plus `suffix`), for
    a test that needs a database of its own; dropped afterwards. Yields its URL."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/") + suffix
    admin = parts._replace(scheme="postgresql", path="/postgres").geturl()

    async def run(statement: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    quoted = '"' + name.replace('"', '""') + '"'
    run_sync(run(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
    run_sync(run(f"CREATE DATABASE {quoted}"))
    try:
        yield parts._replace(path=f"/{name}").geturl()
    finally:
        run_sync(run(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Runs a coroutine to completion from synchronous test code."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Playwright's sync API keeps an event loop running in this thread (browser tests).
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A real `ticketing serve` process."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def data_dir(self) -> Path:
        """The server's data folder (start_server writes the log there)."""
        return self.log_path.parent


# A value for start_server's `env`: the setting is not passed, the service's default holds.
UNSET = "\0unset"


def start_server(
    *,
    database_url: str,
    data_dir: Path,
    env: dict[str, str] | None = None,
    workers: int = 1,
    log_level: str = "warning",
) -> Server:
    """Starts `ticketing serve` on a free port and waits for /healthz."""
    port = free_port()
    log_path = data_dir / f"server-{port}.log"
    full_env = {
        **os.environ,
        "TICKETING_DATABASE_URL": database_url,
        "TICKETING_DATA_DIR": str(data_dir),
        "TICKETING_DEV_ISSUER_URL": DEV_ISSUER,
        # Several servers share one PostgreSQL (max_connections 100) during the suite.
        "TICKETING_DB_POOL_SIZE": "6",
        # Webhook receivers in tests listen on loopback; retries come quickly.
        "TICKETING_WEBHOOKS_ALLOW_PRIVATE": "true",
        "TICKETING_WEBHOOKS_RETRY_BASE": "0.2",
        "TICKETING_WEBHOOKS_TIMEOUT": "2",
        # As behind a load balancer: longer than the tests' HTTP clients keep idle
        # connections (httpx: 5 s), so they close first (docs/scaling.md).
        "TICKETING_KEEP_ALIVE_TIMEOUT": "95",
        **(env or {}),
    }
    # UNSET in `env` leaves a setting at the service's default.
    full_env = {name: value for name, value in full_env.items() if value != UNSET}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ticketing",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--log-level",
                log_level,
            ],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"server did not become healthy:\n{server.log()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@dataclass
class Tenant:
    """A tenant loaded for one test, with helpers to call the API as one of its users."""

    id: str
    realm: str
    config: dict[str, Any]
    key: DevKey
    base_url: str
    db: Database
    client: httpx.Client = field(repr=False)

    def token(self, **kwargs: Any) -> str:
        """A dev-issuer token for this tenant; kwargs override mint_token's arguments."""
        args: dict[str, Any] = {
            "issuer_base": DEV_ISSUER,
            "tenant_id": self.id,
            "realm": self.realm,
            "username": "user@example.com",
            "email": "user@example.com",
            "first_name": "Jane",
            "last_name": "Doe",
            "roles": ["ticket_agent"],
            "scope": "openid tickets:read tickets:write",
        }
        args.update(kwargs)
        return mint_token(self.key, **args)

    def headers(self, token: str | None = None, **extra: str) -> dict[str, str]:
        headers = {
            "accept": "application/json",
            "authorization": f"Bearer {token or self.token()}",
            "content-type": "application/json",
            "x-tenantid": self.id,
            "realmname": self.realm,
        }
        headers.update(extra)
        return headers

    def create(
        self,
        body: Any = None,
        *,
        team: str = "james",
        item_type: str = "16910",
        catalog_type: str | None = "template",
        module: str | None = "ticketing",
        headers: dict[str, str] | None = None,
        token: str | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """POST /ticket/create/{team}/{item_type}; body defaults to the seed's example."""
        params = {}
        if catalog_type is not None:
            params["type"] = catalog_type
        if module is not None:
            params["module"] = module
        return self.client.post(
            f"{self.base_url}/api/v2/ticketing/ticket/create/{team}/{item_type}",
            params=params,
            headers=headers if headers is not None else self.headers(token),
            content=content if content is not None else None,
            json=None if content is not None else (seed_body() if body is None else body),
        )

    def get(self, path: str, params: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        query = {"type": "template", "module": "ticketing"} if params is None else params
        return self.client.get(
            f"{self.base_url}/api/v2/ticketing{path}",
            params=query,
            headers=kw.pop("headers", None) or self.headers(kw.pop("token", None)),
        )

    def ticket_count(self) -> int:
        rows = self.db.fetch(
            "SELECT count(*) FROM tickets WHERE tenant_id = :t", t=uuid.UUID(self.id)
        )
        return int(rows[0][0])


def new_tenant_config(**overrides: Any) -> dict[str, Any]:
    tenant_id = str(uuid.uuid4())
    config = standard_tenant(tenant_id, f"realm-{tenant_id[:8]}")
    config.update(copy.deepcopy(overrides))
    return config


def event_position(data_dir: Path, tenant_id: str, event_id: str | None) -> int:
    """The outbox position behind the opaque event id a tenant was shown by a server whose
    data folder is `data_dir` (its secret keys the ids; ticketing.events.ids)."""
    secret = (data_dir / "portal-secret").read_text().strip()
    position = EventIds(secret).decode(uuid.UUID(tenant_id), event_id or "")
    assert position is not None, f"{event_id!r} is not an event id of tenant {tenant_id}"
    return position


def event_id(data_dir: Path, tenant_id: str, position: int) -> str:
    """The opaque id a server whose data folder is `data_dir` shows `tenant_id` for the
    event at `position`."""
    secret = (data_dir / "portal-secret").read_text().strip()
    return EventIds(secret).encode(uuid.UUID(tenant_id), position)
