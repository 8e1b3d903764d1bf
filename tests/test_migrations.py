"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.conftest import BACKENDS
from tests.support import Database
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


@pytest.mark.parametrize("database", [BACKENDS[1]], indirect=True)
def test_create_function_plans_each_call(database: Database) -> None:
    """A session's create keeps no generic plan made while the tenant's tables were small
    (migration 0014): each call is planned with its values and the tables as they are."""
    rows = database.fetch("SELECT proconfig FROM pg_proc WHERE proname = 'ticketing_create_ticket'")
    assert [list(config or []) for (config,) in rows] == [["plan_cache_mode=force_custom_plan"]]
