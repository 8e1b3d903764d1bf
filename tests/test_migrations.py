"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from bench.common import tenant_uuid
from sqlalchemy import text

from tests.conftest import BACKENDS
from tests.support import Database, standard_tenant
from ticketing.config import APP_ROLE
from ticketing.kit import migrate
from ticketing.models import POSTGRESQL_ONLY_INDEXES, Base


def _described(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Whether the models describe the object; PostgreSQL-only indexes they cannot."""
    return not (type_ == "index" and reflected and name in POSTGRESQL_ONLY_INDEXES)


def test_schema_is_at_head_and_matches_models(database: Database) -> None:
    async def diff(engine: Any) -> tuple[str | None, list[Any]]:
        async with engine.connect() as conn:

            def compare(sync_conn: Any) -> list[Any]:
                context = MigrationContext.configure(
                    sync_conn, opts={"compare_type": True, "include_object": _described}
                )
                return list(compare_metadata(context, Base.metadata))

            return await migrate.current_revision(engine), await conn.run_sync(compare)

    revision, differences = database.run(diff)
    assert revision == migrate.head_revision()
    assert differences == []
    if database.name == "postgresql":
        indexes = database.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    else:
        indexes = database.fetch("SELECT name FROM sqlite_master WHERE type = 'index'")
    names = {name for (name,) in indexes}
    if database.name == "postgresql":
        assert names >= POSTGRESQL_ONLY_INDEXES
    else:
        assert not POSTGRESQL_ONLY_INDEXES & names


BENCH_CREATE = Path(__file__).parent.parent / "bench" / "create.pgbench.sql"


def _create_statement(tenant_number: int) -> str:
    """One create as the service runs it on PostgreSQL (the benchmark's pgbench script),
    for bench tenant `tenant_number` (id md5('bench-tenant-<n>'))."""
    lines = BENCH_CREATE.read_text().splitlines()
    statement = "\n".join(line for line in lines if not line.startswith(("--", "\\")))
    return statement.replace("(:n)", f"({tenant_number})")


def _buffers(plan: Any) -> int:
    """Shared buffers a statement touched, from EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)."""
    top = plan[0]["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"])


@pytest.mark.parametrize("database", [BACKENDS[1]], indirect=True)
def test_create_cost_does_not_grow_with_the_tenants_tickets(database: Database) -> None:
    """A session's creates keep the plans made while `tickets` was empty (the generic plans
    PostgreSQL keeps from a session's sixth call); those plans must not read the tenant's
    other tickets, so a create touches as many buffers with 2,000 tickets as with 8
    (migration 0015: the create reads no ticket back by key)."""
    name = f"{database.url.rsplit('/', 1)[1]}_plans"
    admin = database.url.rsplit("/", 1)[0] + "/postgres"

    async def drop(engine: Any, *, create: bool = False) -> None:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            if create:
                await conn.execute(text(f"CREATE DATABASE {name}"))

    Database("postgresql", admin).run(lambda engine: drop(engine, create=True))
    fresh = Database("postgresql", database.url.rsplit("/", 1)[0] + f"/{name}")
    fresh.migrate()
    fresh.load({"tenants": [standard_tenant(tenant_uuid(1), "bench1")]})
    create = _create_statement(1)

    async def measure(engine: Any) -> tuple[int, int, int]:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(f"SET ROLE {APP_ROLE}")
            for _ in range(8):
                await conn.exec_driver_sql(create)
            explain = f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {create}"
            early = _buffers((await conn.exec_driver_sql(explain)).scalar_one())
            for _ in range(2_000):
                await conn.exec_driver_sql(create)
            late = _buffers((await conn.exec_driver_sql(explain)).scalar_one())
            await conn.exec_driver_sql("RESET ROLE")
            count = (await conn.exec_driver_sql("SELECT count(*) FROM tickets")).scalar_one()
            return early, late, int(count)

    try:
        early, late, count = fresh.run(measure)
    finally:
        Database("postgresql", admin).run(drop)
    assert count == 2_010
    # A plan that filters the tenant's tickets touches one heap page per few tickets each
    # time it looks one up: hundreds more buffers at 2,000 tickets. Deeper indexes add a
    # page or two each.
    assert late <= early + 60, (early, late)


@pytest.mark.parametrize("database", [BACKENDS[1]], indirect=True)
def test_the_outbox_numbering_is_planned_on_every_call(database: Database) -> None:
    """Migration 0016: a generic plan kept by the event hub's session made each numbering
    slower than the one before (7 -> 118 ms within 30 s of make bench-sse)."""

    async def settings(engine: Any) -> list[str]:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT proconfig FROM pg_proc WHERE proname = 'ticketing_sequence_events'")
            )
            return list(found.scalar_one() or [])

    assert "plan_cache_mode=force_custom_plan" in database.run(settings)


@pytest.mark.parametrize("database", [BACKENDS[1]], indirect=True)
def test_numbering_an_event_leaves_its_payload_in_place(database: Database) -> None:
    """Migrations 0018 and 0019: the numbering of an event updates its row. A created event's
    payload (the seed's ticket, its changes and the actor: about 2.7 KB) was compressed and
    kept in the row, so every numbering copied it and left a dead copy behind; on a server
    without autovacuum the outbox doubled and creates slowed by a third within three minutes
    (`make bench-soak --server machine`). The payload now goes to the table's TOAST storage
    compressed when the event is written, the numbering copies only a pointer to it, and it
    reads back whole."""
    database.load({"tenants": [standard_tenant(tenant_uuid(9181), "bench9181")]})
    tenant = str(tenant_uuid(9181))

    async def create_and_number(engine: Any) -> tuple[int, int, int, Any, Any, Any]:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            toast = (
                await conn.execute(
                    text(
                        "SELECT reltoastrelid::regclass::text FROM pg_class"
                        " WHERE oid = 'ticket_events'::regclass"
                    )
                )
            ).scalar_one()

            async def chunks() -> int:
                return int((await conn.exec_driver_sql(f"SELECT count(*) FROM {toast}")).scalar())

            before = await chunks()
            await conn.exec_driver_sql(f"SET ROLE {APP_ROLE}")
            await conn.exec_driver_sql(_create_statement(9181))
            await conn.exec_driver_sql("RESET ROLE")
            written = await chunks()
            for _ in range(100):
                await conn.execute(text("SELECT ticketing_sequence_events()"))
                position, summary, stored = (
                    await conn.execute(
                        text(
                            "SELECT position, payload->'ticket'->>'summary',"
                            " (pg_column_compression(payload), pg_column_size(payload),"
                            " octet_length(payload::text))::text"
                            " FROM ticket_events"
                            " WHERE tenant_id = CAST(:tenant AS uuid) ORDER BY id DESC LIMIT 1"
                        ),
                        {"tenant": tenant},
                    )
                ).one()
                if position is not None:
                    return before, written, await chunks(), position, summary, stored
                await asyncio.sleep(0.05)
            raise AssertionError("the event was not numbered")

    before, written, numbered, position, summary, stored = database.run(create_and_number)
    assert position is not None
    # Kept compressed (0019): the stored value is smaller than the payload's text.
    method, size, length = stored.strip("()").split(",")
    assert method in {"pglz", "lz4"}, stored
    assert int(size) < int(length) * 0.75, stored
    # The create's event wrote its payload out of line; its numbering wrote none.
    assert written > before, (before, written)
    assert numbered == written, (written, numbered)
    assert summary == "Hardware request - new laptop"
