"""The migrations build exactly the schema the models describe, on every backend."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.support import Database
from ticketing.kit import migrate
from ticketing.models import Base


def test_schema_is_at_head_and_matches_models(database: Database) -> None:
    async def diff(engine: Any) -> tuple[str | None, list[Any]]:
        async with engine.connect() as conn:

            def compare(sync_conn: Any) -> list[Any]:
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return list(compare_metadata(context, Base.metadata))

            return await migrate.current_revision(engine), await conn.run_sync(compare)

    revision, differences = database.run(diff)
    assert revision == migrate.head_revision()
    assert differences == []
