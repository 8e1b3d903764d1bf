"""The tenant a request acts for, as PostgreSQL's row-level security sees it.

Every tenant-keyed table carries a policy (migration 0004) that shows and accepts only rows
of the tenant named by the `ticketing.tenant_id` setting, and the service works as a role
that is subject to those policies. The setting is taken from the verified token (see
`ticketing.auth.access.authenticate`) and applied to every connection the request takes from
the pool, before its first statement, so a query that forgets its tenant filter still sees
nothing of another tenant, and with no verified tenant it sees nothing at all.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

SETTING = "ticketing.tenant_id"

_SET = f"SELECT set_config('{SETTING}', $1, false)"
# Keys in a pooled connection's info: the driver connection and the tenant it holds; set
# when the connection was just opened.
_HELD = "ticketing.tenant"
_FRESH = "ticketing.fresh"

_current: ContextVar[str] = ContextVar("ticketing_tenant", default="")


def bind_tenant(tenant_id: str | uuid.UUID | None) -> None:
    """Makes `tenant_id` (from a verified token) the tenant of the current request's
    database work; anything that is not a UUID binds no tenant."""
    value = ""
    if isinstance(tenant_id, uuid.UUID):
        value = str(tenant_id)
    elif tenant_id:
        try:
            value = str(uuid.UUID(tenant_id))
        except ValueError:
            value = ""
    _current.set(value)


def current_tenant() -> str:
    """The tenant bound to the current request ("" for none)."""
    return _current.get()


def scope_connections(engine: AsyncEngine) -> None:
    """Gives every connection taken from `engine`'s pool the bound tenant (PostgreSQL).

    The setting is made at session level when the connection is handed out, outside any
    transaction (the driver starts one only with the first statement), so no rollback can
    undo it; the round trip is skipped when the connection already holds that tenant.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info[_FRESH] = True

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        fresh = record.info.pop(_FRESH, False)
        tenant = _current.get()
        held = record.info.get(_HELD)
        if held is not None and held[0] is dbapi_connection and held[1] == tenant:
            return
        record.info.pop(_HELD, None)
        try:
            dbapi_connection.run_async(lambda driver: driver.execute(_SET, tenant))
        except Exception as exc:
            if fresh:
                # A connection opened a moment ago that cannot take it: the database is not
                # answering; the error says so (503).
                raise
            # A pooled connection the database dropped (restart, idle timeout): the pool
            # replaces it with a new one and tries again.
            raise DisconnectionError(f"setting the tenant failed: {exc!r}") from exc
        record.info[_HELD] = (dbapi_connection, tenant)
