"""The create statement's counter names and deltas, sent as array literals in text: what
PostgreSQL reads from them is exactly the names and deltas, whatever characters the names
hold (a display prefix, a status or a queue name from a tenant's configuration)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import PG_URL
from ticketing.kit.db import driver_url
from ticketing.tickets.repository import _CREATE_POSTGRESQL_PARAMS, _create_args

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.skipif(not PG_URL, reason="TICKETING_TEST_DATABASE_URL is not set"),
]

NAMES = {
    "CTC": 1,
    '#status:Waiting for "customer"': 1,
    "#queue:back\\slash\\": -1,
    "comma, {braces} and ;": 2,
    "NULL": 1,
    "  spaced  ": 3,
    "ünïcödé ✓": 1,
    "'single'": 1,
    "": 1,
}


def test_counter_names_and_deltas_reach_the_database_as_they_are() -> None:
    assert PG_URL
    dsn = driver_url(PG_URL)
    values = {**dict.fromkeys(_CREATE_POSTGRESQL_PARAMS), "data": {}, "attachments": {}}
    args = _create_args(
        values,
        scope="",
        config_version=1,
        counters=NAMES,
        changed_by={},
        changes=[],
        idempotency=None,
        round_robin=None,
    )
    names = args[_CREATE_POSTGRESQL_PARAMS.index("names")]
    deltas = args[_CREATE_POSTGRESQL_PARAMS.index("deltas")]

    async def read() -> asyncpg.Record:
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetchrow(
                "SELECT $1::text::text[], $2::text::bigint[]", names, deltas
            )
        finally:
            await connection.close()

    row = asyncio.run(read())
    assert row[0] == sorted(NAMES)
    assert row[1] == [NAMES[name] for name in sorted(NAMES)]
