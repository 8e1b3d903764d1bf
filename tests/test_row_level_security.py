"""Tenant isolation as defense in depth: PostgreSQL row-level security.

The service works as a role bound by a policy on every tenant-keyed table, and every
transaction it runs carries the tenant of the verified token. These tests run queries that
forget their tenant filter, on purpose, through the very engine the service builds.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.desk_support import desk_overrides
from tests.support import Database, Tenant, seed_body
from tests.ticket_api import call, created, patch, updated
from ticketing.config import APP_ROLE, Settings
from ticketing.kit import app_role
from ticketing.kit.db import database_unavailable, transaction
from ticketing.kit.tenancy import bind_tenant
from ticketing.state import AppState
from ticketing.tickets import repository

PG_URL = os.environ.get("TICKETING_TEST_DATABASE_URL")

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.skipif(not PG_URL, reason="TICKETING_TEST_DATABASE_URL is not set"),
    pytest.mark.parametrize("database", ["postgresql"], indirect=True),
]

# Every table the service reads or writes, with its tenant column.
TENANT_TABLES = {
    "tenants": "id",
    "teams": "tenant_id",
    "ticket_types": "tenant_id",
    "ticket_fields": "tenant_id",
    "offers": "tenant_id",
    "display_id_counters": "tenant_id",
    "tickets": "tenant_id",
    "ticket_history": "tenant_id",
    "ticket_comments": "tenant_id",
    "idempotency_keys": "tenant_id",
    "attachments": "tenant_id",
    "ticket_relations": "tenant_id",
    "tenant_desks": "tenant_id",
    "queue_members": "tenant_id",
    "ticket_events": "tenant_id",
    "event_horizons": "tenant_id",
    "notifications": "tenant_id",
    "webhooks": "tenant_id",
    "webhook_deliveries": "tenant_id",
    "stream_tickets": "tenant_id",
    "portal_sessions": "tenant_id",
}

_T = TypeVar("_T")


@pytest.fixture
def one_connection_state(database: Database, tmp_path: Path) -> AppState:
    """The service's state with one connection for the create statement and one for the rest,
    each handed to one request after another."""
    return AppState.from_settings(
        Settings(database_url=database.url, data_dir=tmp_path, db_pool_size=1)
    )


@pytest.fixture
def service_state(database: Database, tmp_path: Path) -> Iterator[AppState]:
    """What a server process holds, built from the same settings a server reads."""
    settings = Settings(database_url=database.url, data_dir=tmp_path, db_pool_size=2)
    yield AppState.from_settings(settings)


def run_as(state: AppState, tenant: str | None, work: Callable[[AppState], Awaitable[_T]]) -> _T:
    """Runs `work` the way a request of `tenant`'s verified token would."""

    async def main() -> _T:
        bind_tenant(tenant)
        if state.statements is not None:
            await state.statements.start()
        try:
            return await work(state)
        finally:
            if state.statements is not None:
                await state.statements.close()
            await state.engine.dispose()

    return asyncio.run(main())


def unfiltered(state: AppState, tenant: str | None, table: str) -> list[str]:
    """The tenant of every row an unfiltered SELECT returns."""
    column = TENANT_TABLES[table]

    async def work(state: AppState) -> list[str]:
        async with transaction(state.sessionmaker) as session:
            rows = (await session.execute(text(f"SELECT {column} FROM {table}"))).all()
        return [str(row[0]) for row in rows]

    return run_as(state, tenant, work)


def new_ticket_values(tenant_id: str) -> dict[str, Any]:
    """Every column of a new ticket of `tenant_id`, as the create service builds them."""
    now = datetime.now(UTC)
    return {
        "tenant_id": uuid.UUID(tenant_id),
        "id": uuid.uuid4(),
        "display_prefix": "CTC",
        "team_id": "james",
        "item_type_id": "16910",
        "offer_id": "23629",
        "source": "api",
        "summary": "planted",
        "data": {},
        "attachments": {},
        "ticket_relation": None,
        "etag": uuid.uuid4(),
        "version": 2,
        "status_type": "New",
        "status_category": "To-do Category",
        "moved_to": None,
        "deleted_seq": -1,
        "submitted_by": "mallory@example.com",
        "is_support_request": False,
        "created_at": now,
        "updated_at": now,
    }


def granted_tables(database: Database, role: str) -> set[str]:
    """The tables `role` has any privilege on."""
    rows = database.fetch(
        "SELECT DISTINCT table_name FROM information_schema.role_table_grants "
        "WHERE grantee = :role",
        role=role,
    )
    return {row[0] for row in rows}


def ticketing_as(database: Database, tmp_path: Path, role: str, *args: str) -> Any:
    """Runs the `ticketing` command on the test database with TICKETING_DB_ROLE=`role`."""
    return subprocess.run(
        [sys.executable, "-m", "ticketing", *args],
        env={
            **os.environ,
            "TICKETING_DATABASE_URL": database.url,
            "TICKETING_DATA_DIR": str(tmp_path),
            "TICKETING_DB_ROLE": role,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def two_tenants(make_tenant: Callable[..., Tenant]) -> tuple[Tenant, Tenant]:
    """Two tenants, each with a ticket, a comment, an update, an idempotency key, an upload,
    a child ticket related to it, a stream ticket (and queue members and SLA settings)."""
    tenants = make_tenant(**desk_overrides()), make_tenant(**desk_overrides())
    for tenant in tenants:
        headers = tenant.headers()
        headers.pop("content-type")
        response = tenant.client.post(
            f"{tenant.base_url}/api/v2/ticketing/attachments",
            params={"type": "template", "module": "ticketing"},
            headers=headers,
            files={"file": ("notes.txt", b"notes")},
        )
        assert response.status_code == 200, response.text
        ticket = created(
            tenant.create(seed_body(), headers={**tenant.headers(), "Idempotency-Key": "k-1"})
        )
        object_id = ticket["object_id"]
        response = call(tenant, "POST", f"/ticket/{object_id}/comments", json={"body": "hello"})
        assert response.status_code == 200, response.text
        # The agent's comment met the response clock and left the etag as it was.
        updated(patch(tenant, object_id, {"etag": ticket["etag"], "summary": "changed"}))
        relation = {"type": "parent", "objectId": object_id}
        created(tenant.create(seed_body(ticketRelation=relation)))
        ticket = call(tenant, "POST", "/ticket/sse/ticket", json={"stream": "list"})
        assert ticket.status_code == 200, ticket.text
        # Rows the service makes only later in a tenant's life.
        tenant.db.fetch(
            "INSERT INTO event_horizons (tenant_id, pruned_through) VALUES (:t, 0)",
            t=uuid.UUID(tenant.id),
        )
        tenant.db.fetch(
            "INSERT INTO notifications (tenant_id, id, recipient, kind, ticket_id, object_id, "
            "message, data, read, created_at) SELECT tenant_id, :n, 'someone', 'comment', id, "
            "object_id, 'hello', '{}', false, created_at FROM tickets WHERE tenant_id = :t "
            "ORDER BY id_serial LIMIT 1",
            t=uuid.UUID(tenant.id),
            n=uuid.uuid4(),
        )
        tenant.db.fetch(
            "INSERT INTO webhooks (tenant_id, id, url, events, secret, active) "
            "VALUES (:t, 'hook', 'http://127.0.0.1:9/', '[]', 'secret-secret-secret', false)",
            t=uuid.UUID(tenant.id),
        )
        tenant.db.fetch(
            "INSERT INTO webhook_deliveries (tenant_id, webhook_id, event_id, kind, body, status, "
            "attempts, next_attempt_at, created_at, log) VALUES (:t, 'hook', 1, 'ticket.created', "
            "'{}', 'delivered', 1, now(), now(), '[]')",
            t=uuid.UUID(tenant.id),
        )
        tenant.db.fetch(
            "INSERT INTO portal_sessions (tenant_id, id, subject, username, realm, token, "
            "created_at, expires_at) VALUES (:t, :i, 'sub', 'someone', :r, :k, now(), now())",
            t=uuid.UUID(tenant.id),
            i=uuid.uuid4().hex,
            r=tenant.realm,
            k=b"sealed",
        )
    return tenants


def test_every_table_the_service_can_reach_is_under_a_tenant_policy(database: Database) -> None:
    assert granted_tables(database, APP_ROLE) == set(TENANT_TABLES)
    keyed = {
        row[0]
        for row in database.fetch(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name = 'tenant_id'"
        )
    }
    assert keyed | {"tenants"} == set(TENANT_TABLES)
    for table, column in TENANT_TABLES.items():
        [(enabled,)] = database.fetch(
            "SELECT relrowsecurity FROM pg_class WHERE oid = CAST(:t AS regclass)", t=table
        )
        assert enabled, table
        policies = database.fetch(
            "SELECT cmd, qual, with_check FROM pg_policies WHERE tablename = :t", t=table
        )
        assert len(policies) == 1, (table, policies)
        cmd, qual, with_check = policies[0]
        assert cmd == "ALL"
        for expression in (qual, with_check):
            assert f"{column} = (NULLIF(current_setting('ticketing.tenant_id'" in expression


def test_the_service_role_cannot_bypass_the_policies(database: Database) -> None:
    [(superuser, bypass, login)] = database.fetch(
        "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = :r", r=APP_ROLE
    )
    assert (superuser, bypass, login) == (False, False, False)
    owners = database.fetch(
        "SELECT tablename FROM pg_tables WHERE tableowner = :r", r=APP_ROLE
    )  # owners are not bound by policies
    assert owners == []


def test_the_service_engine_works_as_the_service_role(service_state: AppState) -> None:
    async def work(state: AppState) -> list[tuple[str, str]]:
        async with state.engine.connect() as conn:
            first = (await conn.execute(text("SELECT current_user, session_user"))).one()
            # Resetting goes back to the role the connection was opened with.
            await conn.execute(text("RESET ROLE"))
            second = (await conn.execute(text("SELECT current_user, session_user"))).one()
        return [tuple(first), tuple(second)]

    [(current, login), (after_reset, _)] = run_as(service_state, None, work)
    assert current == APP_ROLE and after_reset == APP_ROLE
    assert login != APP_ROLE


def test_a_query_that_forgets_its_tenant_filter_sees_only_the_tokens_tenant(
    database: Database, service_state: AppState, two_tenants: tuple[Tenant, Tenant]
) -> None:
    first, second = two_tenants
    for table in TENANT_TABLES:
        # The rows are there: the owner sees both tenants.
        owner_view = {
            str(r[0]) for r in database.fetch(f"SELECT {TENANT_TABLES[table]} FROM {table}")
        }
        assert {first.id, second.id} <= owner_view, table
        for tenant in two_tenants:
            seen = unfiltered(service_state, tenant.id, table)
            assert seen, (table, tenant.id)
            assert set(seen) == {tenant.id}, table


def test_without_a_verified_tenant_nothing_is_visible(
    service_state: AppState, two_tenants: tuple[Tenant, Tenant]
) -> None:
    for table in TENANT_TABLES:
        assert unfiltered(service_state, None, table) == [], table
        assert unfiltered(service_state, "not-a-uuid", table) == [], table
        assert unfiltered(service_state, str(uuid.uuid4()), table) == [], table


def test_a_pooled_connection_carries_each_requests_tenant_in_turn(
    database: Database, one_connection_state: AppState, two_tenants: tuple[Tenant, Tenant]
) -> None:
    first, second = two_tenants
    state = one_connection_state
    # One connection, handed to one request after another.
    turns = [first.id, second.id, None, first.id, first.id, "junk", second.id]

    async def main() -> list[tuple[int, set[str]]]:
        async def request(tenant: str | None) -> tuple[int, set[str]]:
            bind_tenant(tenant)
            async with transaction(state.sessionmaker) as session:
                pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                rows = (await session.execute(text("SELECT tenant_id FROM tickets"))).all()
            return pid, {str(row[0]) for row in rows}

        try:
            # Each in its own task, as each request is.
            return [await asyncio.create_task(request(tenant)) for tenant in turns]
        finally:
            await state.engine.dispose()

    seen = asyncio.run(main())
    assert len({pid for pid, _ in seen}) == 1
    expected = [{t} if t in (first.id, second.id) else set() for t in turns]
    assert [tenants for _, tenants in seen] == expected


def test_a_dropped_pooled_connection_is_replaced_when_it_must_take_another_tenant(
    database: Database, one_connection_state: AppState, two_tenants: tuple[Tenant, Tenant]
) -> None:
    first, second = two_tenants
    state = one_connection_state

    async def main() -> list[tuple[int, set[str]]]:
        async def request(tenant: str) -> tuple[int, set[str]]:
            bind_tenant(tenant)
            async with transaction(state.sessionmaker) as session:
                pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                rows = (await session.execute(text("SELECT id FROM tenants"))).all()
            return pid, {str(row[0]) for row in rows}

        try:
            before = await asyncio.create_task(request(first.id))
            await asyncio.to_thread(
                database.fetch, "SELECT pg_terminate_backend(:pid)", pid=before[0]
            )
            after = await asyncio.create_task(request(second.id))
            return [before, after]
        finally:
            await state.engine.dispose()

    (old_pid, seen_first), (new_pid, seen_second) = asyncio.run(main())
    assert new_pid != old_pid
    assert (seen_first, seen_second) == ({first.id}, {second.id})


def test_concurrent_requests_of_different_tenants_share_a_pool_without_mixing(
    service_state: AppState, two_tenants: tuple[Tenant, Tenant]
) -> None:
    first, second = two_tenants

    async def main() -> list[tuple[str | None, set[str]]]:
        async def request(tenant: str | None) -> tuple[str | None, set[str]]:
            bind_tenant(tenant)
            async with transaction(service_state.sessionmaker) as session:
                await session.execute(text("SELECT pg_sleep(0.01)"))
                rows = (await session.execute(text("SELECT tenant_id FROM ticket_history"))).all()
            return tenant, {str(row[0]) for row in rows}

        try:
            tenants = [first.id, second.id, None] * 20
            return await asyncio.gather(*(request(t) for t in tenants))
        finally:
            await service_state.engine.dispose()

    for tenant, seen in asyncio.run(main()):
        assert seen == ({tenant} if tenant else set())


def test_writes_into_another_tenant_are_refused_or_reach_nothing(
    database: Database, service_state: AppState, two_tenants: tuple[Tenant, Tenant]
) -> None:
    first, second = two_tenants
    [(ticket_of_second,)] = database.fetch(
        "SELECT id FROM tickets WHERE tenant_id = :t ORDER BY id_serial LIMIT 1",
        t=uuid.UUID(second.id),
    )
    before = database.fetch("SELECT tenant_id, summary FROM tickets ORDER BY tenant_id, id")

    async def comment_on_the_other_tenant(state: AppState) -> None:
        async with transaction(state.sessionmaker) as session:
            await session.execute(
                text(
                    "INSERT INTO ticket_comments (tenant_id, id, ticket_id, body, internal, "
                    "author, created_at) VALUES (:t, :i, :k, 'x', false, '{}', now())"
                ),
                {"t": uuid.UUID(second.id), "i": uuid.uuid4(), "k": ticket_of_second},
            )

    with pytest.raises(DBAPIError, match="row-level security"):
        run_as(service_state, first.id, comment_on_the_other_tenant)

    async def rename_every_ticket(state: AppState) -> list[str]:
        async with transaction(state.sessionmaker) as session:
            result = await session.execute(
                text("UPDATE tickets SET summary = 'renamed' RETURNING tenant_id")
            )
            return [str(row[0]) for row in result]

    # An UPDATE without a tenant filter reaches the bound tenant's rows alone.
    assert set(run_as(service_state, first.id, rename_every_ticket)) == {first.id}

    async def move_to_the_other_tenant(state: AppState) -> None:
        async with transaction(state.sessionmaker) as session:
            await session.execute(
                text("UPDATE ticket_comments SET tenant_id = :t"), {"t": uuid.UUID(second.id)}
            )

    with pytest.raises(DBAPIError, match="row-level security"):
        run_as(service_state, first.id, move_to_the_other_tenant)

    for statement in ("DELETE FROM tickets", "UPDATE tenants SET name = 'x'"):

        async def run(state: AppState, sql: str = statement) -> None:
            async with transaction(state.sessionmaker) as session:
                await session.execute(text(sql))

        with pytest.raises(DBAPIError, match="permission denied"):
            run_as(service_state, first.id, run)

    after = database.fetch("SELECT tenant_id, summary FROM tickets ORDER BY tenant_id, id")
    assert [s for t, s in after if str(t) == second.id] == [
        s for t, s in before if str(t) == second.id
    ]
    assert {s for t, s in after if str(t) == first.id} == {"renamed"}
    comments = database.fetch(
        "SELECT tenant_id, count(*) FROM ticket_comments GROUP BY tenant_id ORDER BY 1"
    )
    assert sorted((str(t), n) for t, n in comments if str(t) in (first.id, second.id)) == sorted(
        [(first.id, 1), (second.id, 1)]
    )


def test_the_create_statement_cannot_write_into_another_tenant(
    database: Database, service_state: AppState, two_tenants: tuple[Tenant, Tenant]
) -> None:
    first, second = two_tenants
    counters = "SELECT prefix, last_value FROM display_id_counters WHERE tenant_id = :t ORDER BY 1"
    tickets = "SELECT count(*) FROM tickets WHERE tenant_id = :t"
    before = (
        database.fetch(counters, t=uuid.UUID(second.id)),
        database.fetch(tickets, t=uuid.UUID(second.id)),
    )
    [(version,)] = database.fetch(
        "SELECT config_version FROM tenants WHERE id = :t", t=uuid.UUID(second.id)
    )
    values = new_ticket_values(second.id)

    async def create_for_the_second_tenant(state: AppState) -> tuple[int, int] | None:
        return await repository.insert_new_ticket(
            state.engine,
            statements=state.statements,
            config_version=version,
            counters={"CTC": 1, repository.status_counter("Open"): 1},
            values=values,
            changed_by={},
            changes=[],
        )

    # Bound to the first tenant, the statement cannot even see the second tenant's
    # configuration, so it creates nothing.
    assert run_as(service_state, first.id, create_for_the_second_tenant) is None
    unchanged = (
        database.fetch(counters, t=uuid.UUID(second.id)),
        database.fetch(tickets, t=uuid.UUID(second.id)),
    )
    assert unchanged == before
    # The same statement bound to the second tenant is accepted: the values are fine.
    accepted = run_as(service_state, second.id, create_for_the_second_tenant)
    # The tenant has two tickets (the fixture's ticket and its child).
    assert accepted is not None and accepted[0] == 3
    before = (
        database.fetch(counters, t=uuid.UUID(second.id)),
        database.fetch(tickets, t=uuid.UUID(second.id)),
    )

    async def bump_the_other_tenants_counter(state: AppState) -> None:
        async with state.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            await driver.execute(
                "INSERT INTO display_id_counters (tenant_id, prefix, last_value) "
                "VALUES ($1, 'CTC', 1) ON CONFLICT (tenant_id, prefix) "
                "DO UPDATE SET last_value = display_id_counters.last_value + 1",
                uuid.UUID(second.id),
            )

    with pytest.raises(Exception, match="row-level security"):
        run_as(service_state, first.id, bump_the_other_tenants_counter)

    after = (
        database.fetch(counters, t=uuid.UUID(second.id)),
        database.fetch(tickets, t=uuid.UUID(second.id)),
    )
    assert after == before


def test_serve_refuses_a_role_it_cannot_work_as(database: Database, tmp_path: Path) -> None:
    missing = f"ticketing_missing_{uuid.uuid4().hex[:8]}"
    result = ticketing_as(database, tmp_path, missing, "serve", "--port", "1")
    assert result.returncode == 2, result.stderr
    assert f"cannot work as database role '{missing}'" in result.stderr
    assert "does not exist" in result.stderr


def test_a_create_leaves_its_connection_as_it_found_it(
    database: Database, one_connection_state: AppState, two_tenants: tuple[Tenant, Tenant]
) -> None:
    first, second = two_tenants
    state = one_connection_state
    statements = state.statements
    assert statements is not None and statements.size == 1
    # A read of the first tenant, a create of the second, a read of the first: the reads on
    # the engine's one connection, the create on the statement pool's one connection, which
    # holds no tenant after it.
    [(version,)] = database.fetch(
        "SELECT config_version FROM tenants WHERE id = :t", t=uuid.UUID(second.id)
    )
    setting = "SELECT current_setting('ticketing.tenant_id', true), pg_backend_pid()"

    async def main() -> tuple[set[str], tuple[int, int] | None, set[str], set[int]]:
        pids: set[int] = set()
        await statements.start()

        async def read(tenant: str) -> set[str]:
            bind_tenant(tenant)
            async with transaction(state.sessionmaker) as session:
                pids.add((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
                rows = (await session.execute(text("SELECT tenant_id FROM tickets"))).all()
            return {str(row[0]) for row in rows}

        async def create(tenant: str) -> tuple[int, int] | None:
            bind_tenant(tenant)
            return await repository.insert_new_ticket(
                state.engine,
                statements=statements,
                config_version=version,
                counters={"CTC": 1, repository.status_counter("Open"): 1},
                values=new_ticket_values(tenant),
                changed_by={},
                changes=[],
            )

        try:
            before = await asyncio.create_task(read(first.id))
            created_ = await asyncio.create_task(create(second.id))
            held = await statements.fetchrow(setting)
            after = await asyncio.create_task(read(first.id))
            again = await statements.fetchrow(setting)
            assert held is not None and again is not None
            # The create's tenant lasted as long as its own transaction.
            assert held[0] in (None, "") and held[1] == again[1]
            return before, created_, after, pids | {held[1]}
        finally:
            await statements.close()
            await state.engine.dispose()

    before, created_, after, pids = asyncio.run(main())
    assert len(pids) == 2
    assert created_ is not None
    assert before == after == {first.id}


def test_migrate_sets_up_the_configured_role_on_an_up_to_date_database(
    database: Database, tmp_path: Path
) -> None:
    role = f"ticketing_other_{uuid.uuid4().hex[:8]}"
    try:
        # The database is at the newest revision already: no migration runs, the role is
        # still created and given what the service needs.
        result = ticketing_as(database, tmp_path, role, "migrate")
        assert result.returncode == 0, result.stderr
        assert granted_tables(database, role) == set(TENANT_TABLES)
        settings = Settings(
            database_url=database.url, data_dir=tmp_path, db_pool_size=1, db_role=role
        )
        state = AppState.from_settings(settings)
        assert run_as(state, None, lambda state: app_role.problem(state.engine)) is None
    finally:
        database.fetch(f'DROP OWNED BY "{role}"')
        database.fetch(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ('CREATE ROLE "{role}" NOLOGIN', "lacks USAGE on the schema"),
        (
            'CREATE ROLE "{role}" NOLOGIN; GRANT USAGE ON SCHEMA public TO "{role}"',
            "lacks SELECT on tenants",
        ),
        ('CREATE ROLE "{role}" NOLOGIN BYPASSRLS', "policies would not bind it"),
        ('CREATE ROLE "{role}" NOLOGIN SUPERUSER', "policies would not bind it"),
    ],
    ids=["no-grants", "no-table-grants", "bypassrls", "superuser"],
)
def test_serve_refuses_a_role_the_policies_would_not_bind_or_that_lacks_grants(
    database: Database, tmp_path: Path, setup: str, reason: str
) -> None:
    role = f"ticketing_bad_{uuid.uuid4().hex[:8]}"
    for statement in setup.format(role=role).split("; "):
        database.fetch(statement)
    try:
        result = ticketing_as(database, tmp_path, role, "serve", "--port", "1")
        assert result.returncode == 2, result.stderr
        assert f"cannot work as database role '{role}'" in result.stderr
        assert reason in result.stderr
    finally:
        database.fetch(f'DROP OWNED BY "{role}"')
        database.fetch(f'DROP ROLE IF EXISTS "{role}"')


def test_a_login_user_that_is_not_the_owner_is_scoped_without_a_role_switch(
    database: Database, tmp_path: Path, two_tenants: tuple[Tenant, Tenant]
) -> None:
    first, _second = two_tenants
    login = f"ticketing_login_{uuid.uuid4().hex[:8]}"
    # A least-privilege login: a member of the service role, inheriting its grants.
    database.fetch(f'CREATE ROLE "{login}" LOGIN IN ROLE "{APP_ROLE}"')
    try:
        url = database.url.replace("postgres@", f"{login}@", 1)
        assert url != database.url
        settings = Settings(database_url=url, data_dir=tmp_path, db_pool_size=1, db_role="")
        state = AppState.from_settings(settings)
        assert set(unfiltered(state, first.id, "tickets")) == {first.id}
        assert unfiltered(state, None, "tickets") == []
    finally:
        database.fetch(f'DROP ROLE IF EXISTS "{login}"')


def test_a_database_that_cannot_take_the_tenant_is_reported_unavailable(
    service_state: AppState, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a statement timeout on an overloaded database looks like to the driver: setting
    # the tenant fails on a pooled connection and on the new one the pool opens instead.
    attempts = []
    real_execute = asyncpg.Connection.execute

    async def timing_out(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> Any:
        if "set_config('ticketing.tenant_id'" in query:
            attempts.append(query)
            raise TimeoutError()
        return await real_execute(self, query, *args, **kw)

    async def work(state: AppState) -> BaseException | None:
        async with state.engine.connect() as conn:  # a pooled connection, fresh no more
            await conn.execute(text("SELECT 1"))
        bind_tenant(str(uuid.uuid4()))
        monkeypatch.setattr(asyncpg.Connection, "execute", timing_out)
        try:
            async with state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            return exc
        return None

    error = run_as(service_state, None, work)
    assert error is not None
    assert database_unavailable(error), repr(error)
    assert len(attempts) == 2


def _psql_as(database: Database, login: str, sql: str) -> subprocess.CompletedProcess[str]:
    """Runs `sql` with psql as the database login `login` (trust authentication)."""
    url = database.url.replace("postgres@", f"{login}@", 1)
    assert url != database.url
    return subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_no_login_but_the_service_role_may_call_the_schemas_functions(
    database: Database, two_tenants: tuple[Tenant, Tenant]
) -> None:
    functions = database.fetch(
        "SELECT p.oid::regprocedure::text, p.prosecdef, p.proconfig,"
        " has_function_privilege('public', p.oid, 'EXECUTE'),"
        " has_function_privilege(:role, p.oid, 'EXECUTE')"
        " FROM pg_proc AS p WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1",
        role=APP_ROLE,
    )
    ours = [row for row in functions if row[0].startswith("ticketing_")]
    assert {row[0].split("(")[0] for row in ours} >= {
        "ticketing_read_events",
        "ticketing_claim_deliveries",
        "ticketing_create_ticket",
        "ticketing_webhook_tenants",
    }
    # Every function of the schema, the extension's too: PUBLIC may execute none of them.
    assert [row[0] for row in functions if row[3]] == []
    # The service role may execute each of ours.
    assert [row[0] for row in ours if not row[4]] == []
    # Each SECURITY DEFINER function searches the catalog and the schema only, temporary
    # objects last.
    definers = [row for row in ours if row[1]]
    assert len(definers) >= 8
    for name, _definer, config, _public, _service in definers:
        assert "search_path=pg_catalog, public, pg_temp" in (config or []), name


def test_another_database_login_cannot_read_events_or_claim_deliveries(
    database: Database, two_tenants: tuple[Tenant, Tenant]
) -> None:
    login = f"ticketing_intruder_{uuid.uuid4().hex[:8]}"
    database.fetch(f'CREATE ROLE "{login}" LOGIN')
    # As PostgreSQL's default public schema allows every login: only the functions' own
    # grants stand in the way.
    database.fetch(f'GRANT USAGE ON SCHEMA public TO "{login}"')
    try:
        for call_ in (
            "SELECT count(*) FROM ticketing_read_events(0, 100000)",
            "SELECT count(*) FROM ticketing_claim_deliveries(100, 1)",
            "SELECT ticketing_last_event_position()",
            "SELECT count(*) FROM ticketing_webhook_tenants(NULL)",
        ):
            result = _psql_as(database, login, call_)
            assert result.returncode != 0, (call_, result.stdout)
            assert "permission denied for function ticketing_" in result.stderr, result.stderr
        # A login that is a member of the service role may (as the service does).
        database.fetch(f'GRANT "{APP_ROLE}" TO "{login}"')
        allowed = _psql_as(database, login, "SELECT ticketing_last_event_position() >= 0")
        assert allowed.returncode == 0, allowed.stderr
        assert allowed.stdout.strip() == "t"
    finally:
        database.fetch(f'DROP OWNED BY "{login}"')
        database.fetch(f'DROP ROLE IF EXISTS "{login}"')
