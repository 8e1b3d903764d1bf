"""Applies and checks the Alembic migrations shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ticketing.config import APP_ROLE
from ticketing.kit.app_role import provide as provide_app_role
from ticketing.kit.app_role import secure_functions

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# Serialises `migrate` across processes that start together against one PostgreSQL.
_PG_MIGRATION_LOCK = 7_311_842_001


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection, app_role: str | None) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    if connection.dialect.name == "postgresql":
        secure_functions(connection)
    if connection.dialect.name == "postgresql" and app_role:
        provide_app_role(connection, app_role)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine, app_role: str | None = APP_ROLE) -> None:
    """Brings the schema to the newest revision.

    On PostgreSQL, `app_role` is the role the service works as: it is created when missing,
    granted to the login user, and given what the service needs on the tables, every time.
    """
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, app_role)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def is_up_to_date(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()
