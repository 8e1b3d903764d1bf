"""Engine factory for SQLite and PostgreSQL from one URL, and the per-request session."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ticketing.kit.lowercase import register_sqlite
from ticketing.kit.tenancy import scope_connections

# Connections a process may open beyond its pool (see create_engine).
EXTRA_CONNECTIONS = 2


def create_engine(
    url: str, *, pool_size: int = 10, timeout: float = 5.0, role: str | None = None
) -> AsyncEngine:
    """Creates the async engine; on SQLite, makes every transaction take the write lock first.

    SQLite allows one writer; taking the lock at BEGIN (IMMEDIATE) makes concurrent writers
    queue on the busy timeout instead of failing when a read lock cannot be upgraded.

    On PostgreSQL, every connection handed out carries the request's tenant
    (ticketing.kit.tenancy), and with `role` works as that role from its first statement.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, json_serializer=_json_dumps)
        _make_sqlite_serial(engine)
        return engine
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        # Past the pool size, requests wait for a connection (up to `timeout`) rather than
        # open one: the pool closes an extra connection as soon as it comes back while the
        # pool's own are idle, so under a load that comes and goes each extra connection is a
        # new database backend. With as many extra as the pool (the earlier setting), 64
        # connections' creates over 64 tenants started 269 backends in 13 s and ran at 280
        # req/s; with two, 42 backends and 486 req/s (one process, pool of 20). Two extra
        # leave room for a request that briefly holds a second connection.
        max_overflow=EXTRA_CONNECTIONS,
        pool_recycle=1800,
        json_serializer=_json_dumps,
        # Fail fast when the database is away: a request answers 503 within the timeout.
        pool_timeout=timeout,
        connect_args=_driver_options(parsed.host, timeout=timeout, role=role),
    )
    # The policies bind every role but the tables' owner, whichever the service logs in as.
    scope_connections(engine)
    return engine


_FETCHROW = asyncpg.Connection.fetchrow
_FETCH = asyncpg.Connection.fetch
_FETCHVAL = asyncpg.Connection.fetchval


class StatementPool:
    """Driver connections (PostgreSQL) for statements that are each their own transaction and
    set the request's tenant themselves: the create function (migration 0005).

    Such a statement needs nothing of a pool but a connection, yet a checkout from the
    engine's pool runs the pool's checkout and return (with its reset) and the tenant hooks,
    each through the engine's async adapter: with creates over 64 tenants (16 connections,
    one process, alternating windows of one run) that was about a sixth of the process's CPU
    per create (1.36 -> 1.11 ms). The driver's own pool was cheaper but still not cheap: it
    queues connections through an asyncio.Queue and hands each back through a task of its
    own (asyncio.shield), so a free connection here is taken from a list and given back to
    it (or to the first request waiting for one).

    Connections are opened when first needed (and again when the database closed one), up to
    `size`; they work as `role` from their first statement like the engine's, and are given
    back without a reset: nothing outlives the statement's own transaction on them. A
    connection whose statement failed other than by a database error (the connection broke,
    the request was cancelled mid-statement) is closed, not reused. A request waits up to
    `timeout` for a connection when all are in use.
    """

    def __init__(
        self, url: str, *, size: int, timeout: float = 5.0, role: str | None = None
    ) -> None:
        self.size = size
        self.timeout = timeout
        self._connect = driver_connector(url, timeout=timeout, role=role)
        self._idle: list[asyncpg.Connection] = []
        # Requests waiting for a connection, first come first served; each is handed one,
        # or None when it may open one.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._open = 0  # connections open or being opened
        self._busy = 0  # connections handed out or waited for
        self._closed = True

    async def start(self) -> None:
        """Makes the pool ready; it connects on first use (the database may be away now)."""
        self._closed = False

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """Runs `query` on a connection of the pool, waiting up to the timeout for one; its
        first row."""
        return await self._run(_FETCHROW, query, args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        """As fetchrow; the first column of the first row."""
        return await self._run(_FETCHVAL, query, args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """As fetchrow; every row."""
        return await self._run(_FETCH, query, args)  # type: ignore[no-any-return]

    async def _run(self, method: Callable[..., Awaitable[Any]], query: str, args: Any) -> Any:
        self._busy += 1
        try:
            connection = await self._take()
            try:
                record = await method(connection, query, *args)
            except asyncpg.PostgresError:
                # The statement failed at the database; the connection is as good as before.
                self._give_back(connection)
                raise
            except BaseException:
                self._discard(connection)
                raise
            self._give_back(connection)
            return record
        finally:
            self._busy -= 1

    async def _take(self) -> asyncpg.Connection:
        if self._closed:
            raise RuntimeError("the statement pool is not started")
        idle = self._idle
        while idle:
            connection = idle.pop()
            if not connection.is_closed():
                return connection
            self._open -= 1
        if self._open >= self.size:
            waiter: asyncio.Future[asyncpg.Connection | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self.timeout):
                    handed = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    # Handed a connection (or a free place) as the wait ended: pass it on.
                    late = waiter.result()
                    if late is None:
                        self._open -= 1
                        self._wake_one()
                    else:
                        self._give_back(late)
                raise
            if handed is not None and not handed.is_closed():
                return handed
            # A place to open a connection in: one was closed (while in use, or now).
            self._open -= 1
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    def _give_back(self, connection: asyncpg.Connection) -> None:
        if self._closed or connection.is_closed() or connection.is_in_transaction():
            self._discard(connection)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _discard(self, connection: asyncpg.Connection) -> None:
        self._open -= 1
        connection.terminate()
        self._wake_one()

    def _wake_one(self) -> None:
        """Lets the first waiting request open a connection (one was closed, or failed to
        open), if the pool has room for one."""
        if self._open >= self.size:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1  # its place, taken back by the waiter
                waiter.set_result(None)
                return

    def in_use(self) -> int:
        return self._busy

    async def close(self) -> None:
        """Closes the idle connections; those in use are closed as they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            self._open -= 1
            try:
                await connection.close(timeout=self.timeout)
            except Exception:
                connection.terminate()


def driver_connector(
    url: str, *, timeout: float = 5.0, role: str | None = None, name: str | None = None
) -> Callable[[], Awaitable[asyncpg.Connection]]:
    """Opens driver connections (PostgreSQL) with the engine's connection options; `name` is
    their application_name (what pg_stat_activity shows)."""
    dsn = driver_url(url)
    if dsn is None:
        raise ValueError("driver connections are for PostgreSQL")
    options = _driver_options(make_url(url).host, timeout=timeout, role=role)
    if name:
        options["server_settings"] = {
            **options.get("server_settings", {}),
            "application_name": name,
        }
    return partial(asyncpg.connect, dsn, **options)


def split_pool_size(size: int) -> tuple[int, int]:
    """How a process's `size` connections are shared: (the engine's pool, the statement
    pool), at least one each."""
    statements = max(1, size // 2)
    return max(1, size - statements), statements


def _driver_options(host: str | None, *, timeout: float, role: str | None) -> dict[str, Any]:
    """The driver's (asyncpg's) connection options for the engine and the statement pool."""
    return {
        "timeout": timeout,
        "command_timeout": timeout * 2,
        **({"ssl": False} if _is_local(host) else {}),
        # Sent with the connection request, so no statement runs as the login user;
        # RESET ROLE returns to it too.
        **({"server_settings": {"role": role}} if role else {}),
    }


def driver_url(database_url: str) -> str | None:
    """The plain PostgreSQL URL the driver connects with (None for SQLite)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _is_local(host: str | None) -> bool:
    return host in (None, "", "localhost", "127.0.0.1", "::1") or (host or "").startswith("/")


def _make_sqlite_serial(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        register_sqlite(dbapi_connection)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends normally, rolls back on any exception."""
    async with sessionmaker() as session, session.begin():
        yield session


# Errors that mean "the database cannot be reached or is going away", not "the query is
# wrong": they answer 503 with Retry-After, and the pool reconnects once the database is back.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    # A connection left mid-operation when the server went away reports this next time.
    asyncpg.exceptions.InternalClientError,
    sa_exc.TimeoutError,
)


# What database code can raise; the app maps each to 503 (unavailable) or 500.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether an exception (or what it wraps) says the database is unreachable."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNAVAILABLE):
            return True
        if isinstance(current, sa_exc.DBAPIError) and (
            current.connection_invalidated or isinstance(current, sa_exc.OperationalError)
        ):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False
