"""The statement pool (ticketing.kit.db.StatementPool): the connections creates run on.

Real PostgreSQL: requests beyond its size wait their turn and are all served, a wait past the
timeout fails (503 upstream), a connection whose statement was cancelled or broke is not used
again, one the database closed is replaced, and a database error leaves the connection in use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from tests.conftest import PG_URL
from ticketing.kit.db import DATABASE_ERRORS, StatementPool, database_unavailable, driver_url

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.skipif(not PG_URL, reason="TICKETING_TEST_DATABASE_URL is not set"),
]

PID = "SELECT pg_backend_pid()"


def run(size: int, timeout: float, body: Callable[[StatementPool], Awaitable[Any]]) -> Any:
    assert PG_URL

    async def main() -> Any:
        pool = StatementPool(PG_URL, size=size, timeout=timeout)
        await pool.start()
        try:
            return await body(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


async def pid_of(pool: StatementPool) -> int:
    row = await pool.fetchrow(PID)
    assert row is not None
    return int(row[0])


async def terminate(pid: int) -> None:
    """Ends a database session from the outside, as an administrator or a failover would."""
    assert PG_URL
    admin = await asyncpg.connect(driver_url(PG_URL))
    try:
        await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


def test_requests_beyond_the_size_wait_their_turn_and_are_all_served() -> None:
    async def body(pool: StatementPool) -> tuple[list[int], set[int], int]:
        rows = await asyncio.gather(
            *(
                pool.fetchrow("SELECT $1::int, pg_backend_pid(), pg_sleep(0.01)", n)
                for n in range(40)
            )
        )
        return [row[0] for row in rows if row], {row[1] for row in rows if row}, pool.in_use()

    values, pids, in_use = run(3, 5.0, body)
    assert values == list(range(40))
    assert len(pids) == 3  # never more connections than its size
    assert in_use == 0


def test_a_wait_past_the_timeout_fails_as_the_database_being_unavailable() -> None:
    async def body(pool: StatementPool) -> tuple[BaseException, int]:
        # Holds the one connection for 0.7 s (its statement timeout is twice the pool's).
        holding = asyncio.create_task(pool.fetchrow("SELECT pg_sleep(0.7)"))
        await asyncio.sleep(0.1)
        try:
            await pool.fetchrow("SELECT 1")
        except BaseException as exc:
            failure = exc
        else:
            raise AssertionError("the wait did not time out")
        await holding
        # The connection is free again: served at once.
        assert (await pool.fetchrow("SELECT 2")) is not None
        return failure, pool.in_use()

    failure, in_use = run(1, 0.4, body)
    assert isinstance(failure, TimeoutError)
    assert isinstance(failure, DATABASE_ERRORS) and database_unavailable(failure)
    assert in_use == 0


def test_a_connection_whose_statement_was_cancelled_is_not_used_again() -> None:
    async def body(pool: StatementPool) -> tuple[int, int, int]:
        first = await pid_of(pool)
        sleeping = asyncio.create_task(pool.fetchrow("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.2)
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping
        second = await pid_of(pool)
        return first, second, pool.in_use()

    first, second, in_use = run(1, 5.0, body)
    assert second != first
    assert in_use == 0


def test_a_waiting_request_is_served_when_the_connection_it_waits_for_breaks() -> None:
    async def body(pool: StatementPool) -> tuple[BaseException | None, int, int]:
        first = await pid_of(pool)
        sleeping = asyncio.create_task(pool.fetchrow("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.2)
        waiting = asyncio.create_task(pid_of(pool))
        await asyncio.sleep(0.1)
        await terminate(first)
        broken = (await asyncio.gather(sleeping, return_exceptions=True))[0]
        return broken if isinstance(broken, BaseException) else None, await waiting, first

    broken, served_by, first = run(1, 5.0, body)
    assert broken is not None and database_unavailable(broken)
    assert served_by != first


def test_a_connection_the_database_closed_while_idle_is_replaced() -> None:
    async def body(pool: StatementPool) -> tuple[int, int]:
        first = await pid_of(pool)
        await terminate(first)
        await asyncio.sleep(0.2)
        return first, await pid_of(pool)

    first, second = run(1, 5.0, body)
    assert second != first


def test_a_database_error_leaves_the_connection_in_use() -> None:
    async def body(pool: StatementPool) -> tuple[int, int]:
        first = await pid_of(pool)
        with pytest.raises(asyncpg.DivisionByZeroError):
            await pool.fetchrow("SELECT 1 / 0")
        return first, await pid_of(pool)

    first, second = run(1, 5.0, body)
    assert second == first


def test_a_closed_pool_refuses_statements() -> None:
    async def body(pool: StatementPool) -> str:
        await pool.close()
        try:
            await pool.fetchrow("SELECT 1")
        except RuntimeError as exc:
            return str(exc)
        return "served"

    assert run(1, 5.0, body) == "the statement pool is not started"
