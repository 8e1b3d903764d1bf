"""The tenant a request acts for, as PostgreSQL's row-level security sees it.

Every tenant-keyed table carries a policy (migration 0004) that shows and accepts only rows
of the tenant named by the `ticketing.tenant_id` setting, and the service works as a role
that is subject to those policies. The setting is taken from the verified token (see
`ticketing.auth.access.authenticate`) and applied to every transaction the request runs, so
a query that forgets its tenant filter still sees nothing of another tenant, and with no
verified tenant it sees nothing at all.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

SETTING = "ticketing.tenant_id"
# What a policy compares tenant_id with: NULL (no row matches) when no tenant is set.
CURRENT_TENANT_SQL = f"NULLIF(current_setting('{SETTING}', true), '')::uuid"

_SET_LOCAL = f"SELECT set_config('{SETTING}', $1, true)"
_SET_SESSION = f"SELECT set_config('{SETTING}', $1, false)"
# Key in a pooled connection's info: the driver connection and its session-level tenant.
_SESSION_TENANT = "ticketing.session_tenant"

_current: ContextVar[str] = ContextVar("ticketing_tenant", default="")


def bind_tenant(tenant_id: str | uuid.UUID | None) -> None:
    """Makes `tenant_id` (from a verified token) the tenant of the current request's
    transactions; anything that is not a UUID binds no tenant."""
    value = ""
    if isinstance(tenant_id, uuid.UUID):
        value = str(tenant_id)
    elif tenant_id:
        try:
            value = str(uuid.UUID(tenant_id))
        except ValueError:
            value = ""
    _current.set(value)


def bound_tenant() -> str:
    """The current request's tenant as the database setting holds it ('' for none)."""
    return _current.get()


def scope_transactions(engine: AsyncEngine) -> None:
    """Sets the bound tenant at the start of each transaction on `engine` (PostgreSQL)."""

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(_SET_LOCAL, (_current.get(),))


async def scope_connection(conn: AsyncConnection, driver: Any) -> None:
    """Sets the bound tenant on a connection used outside a transaction (one statement at a
    time, as the create path does), at session level; the round trip is skipped when the
    connection already holds that tenant."""
    tenant = _current.get()
    info = conn.info
    if info.get(_SESSION_TENANT) == (driver, tenant):
        return
    await driver.execute(_SET_SESSION, tenant)
    info[_SESSION_TENANT] = (driver, tenant)
