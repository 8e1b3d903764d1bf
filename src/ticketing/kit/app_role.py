"""The PostgreSQL role the service works as: set up by `ticketing migrate`, checked by
`ticketing serve`.

The role is bound by the tenant row-level security policies (migration 0004), so it must be
neither superuser nor BYPASSRLS nor the tables' owner; it gets no more than the service needs.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

# What the service does with each table. Changing configuration is the loader's, run as the
# owner; tickets are deleted softly; expired idempotency keys are deleted.
PRIVILEGES = {
    "tenants": ("SELECT",),
    "teams": ("SELECT",),
    "ticket_types": ("SELECT",),
    "ticket_fields": ("SELECT",),
    "offers": ("SELECT",),
    "display_id_counters": ("SELECT", "INSERT", "UPDATE"),
    "tickets": ("SELECT", "INSERT", "UPDATE"),
    "ticket_history": ("SELECT", "INSERT", "UPDATE"),
    "ticket_comments": ("SELECT", "INSERT", "UPDATE"),
    "idempotency_keys": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    # Unbound uploads and unreferenced blobs are removed by `ticketing gc`, as the owner.
    "attachments": ("SELECT", "INSERT", "UPDATE"),
    "ticket_relations": ("SELECT", "INSERT", "DELETE"),
    # Queues and SLAs (migration 0008): desk settings are the loader's; members change
    # through the queue endpoints.
    "tenant_desks": ("SELECT",),
    "queue_members": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    # Events are numbered and pruned by the owner's functions (migration 0009).
    "ticket_events": ("SELECT", "INSERT"),
    "event_horizons": ("SELECT",),
    "notifications": ("SELECT", "INSERT", "UPDATE"),
    # Webhooks are configuration (the loader's); deliveries are claimed by the owner's
    # function (migration 0009) and their results written under the tenant policy.
    "webhooks": ("SELECT",),
    "webhook_deliveries": ("SELECT", "INSERT", "UPDATE"),
    # Stream tickets are deleted as they are used, and by the tenant's next issue once
    # expired.
    "stream_tickets": ("SELECT", "INSERT", "DELETE"),
    # Portal sessions (migration 0022): started, ended, and pruned once expired.
    "portal_sessions": ("SELECT", "INSERT", "UPDATE", "DELETE"),
}


def _checked(role: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError(f"not a plain role name: {role!r}")
    return role


def provide(connection: Connection, role: str) -> None:
    """Creates the role when missing, lets the login user switch to it, and grants it what
    the service needs on the current schema. Idempotent; run by every `ticketing migrate`."""
    role = _checked(role)
    # Roles belong to the whole server: another database may create it at this very moment.
    connection.exec_driver_sql(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE "{role}" NOLOGIN;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$
        """
    )
    connection.exec_driver_sql(
        f"""
        DO $$
        BEGIN
            IF NOT pg_has_role(current_user, '{role}', 'MEMBER') THEN
                EXECUTE format('GRANT %I TO %I', '{role}', current_user);
            END IF;
        END $$
        """
    )
    schema = connection.exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    connection.exec_driver_sql(f'GRANT USAGE ON SCHEMA {schema} TO "{role}"')
    for table, privileges in PRIVILEGES.items():
        connection.exec_driver_sql(f'GRANT {", ".join(privileges)} ON {table} TO "{role}"')
    # tickets.id_serial and ticket_events.id are identity columns.
    for table, column in (("tickets", "id_serial"), ("ticket_events", "id")):
        sequence = connection.exec_driver_sql(
            f"SELECT pg_get_serial_sequence('{table}', '{column}')"
        ).scalar()
        connection.exec_driver_sql(f'GRANT USAGE ON SEQUENCE {sequence} TO "{role}"')
    for function in owned_functions(connection):
        connection.exec_driver_sql(f'GRANT EXECUTE ON FUNCTION {function} TO "{role}"')


# SECURITY DEFINER functions run with the owner's rights: they look names up in the schema
# and the catalog only, never in a schema named after the caller ("$user") or in temporary
# objects the caller made (pg_temp listed last, never first).
_PINNED_PATH = "pg_catalog, {schema}, pg_temp"


def owned_functions(connection: Connection) -> list[str]:
    """The functions of the current schema that the connected user owns, as regprocedure
    text (name and argument types)."""
    rows = connection.exec_driver_sql(
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p "
        "WHERE p.pronamespace = to_regnamespace(current_schema())::oid "
        "AND pg_has_role(current_user, p.proowner, 'USAGE') ORDER BY 1"
    ).all()
    return [str(row[0]) for row in rows]


def secure_functions(connection: Connection) -> None:
    """Nobody but the owner and the roles granted it may call the schema's functions, and
    every SECURITY DEFINER function searches a pinned path. Idempotent; run by every
    `ticketing migrate`, after the migrations that create or replace functions.

    PostgreSQL lets PUBLIC execute every new function: any login of the database could then
    call the owner's functions that read or claim rows across tenants (the event outbox,
    webhook deliveries with their secrets). The service role is granted what it calls by
    `provide`.
    """
    schema = connection.exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    connection.exec_driver_sql(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC"
    )
    for function in owned_functions(connection):
        connection.exec_driver_sql(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    definers = connection.exec_driver_sql(
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p "
        "WHERE p.pronamespace = to_regnamespace(current_schema())::oid AND p.prosecdef "
        "AND pg_has_role(current_user, p.proowner, 'USAGE') ORDER BY 1"
    ).all()
    for (function,) in definers:
        connection.exec_driver_sql(
            f"ALTER FUNCTION {function} SET search_path = {_PINNED_PATH.format(schema=schema)}"
        )


async def problem(engine: AsyncEngine) -> str | None:
    """Why the service could not work through `engine` (connected as its role) as intended,
    or None when it can: the role must be usable, have what it needs, and be bound by the
    policies."""
    try:
        async with engine.connect() as conn:
            name, unbound, schema_usage = (
                await conn.execute(
                    text(
                        "SELECT current_user, r.rolsuper OR r.rolbypassrls OR EXISTS ("
                        "  SELECT FROM pg_tables WHERE schemaname = current_schema()"
                        "  AND tablename = 'tickets' AND tableowner = current_user),"
                        " has_schema_privilege(current_schema(), 'USAGE') "
                        "FROM pg_roles AS r WHERE r.rolname = current_user"
                    )
                )
            ).one()
            if unbound:
                return (
                    f"role {name} is a superuser, has BYPASSRLS or owns the tables, "
                    "so the tenant policies would not bind it"
                )
            if not schema_usage:
                return f"role {name} lacks USAGE on the schema"
            missing = [
                f"{privilege} on {table}"
                for table, privileges in PRIVILEGES.items()
                for privilege in privileges
                if not (
                    await conn.execute(
                        text("SELECT has_table_privilege(CAST(:t AS regclass), :p)"),
                        {"t": table, "p": privilege},
                    )
                ).scalar()
            ]
            missing += [
                f"EXECUTE on {function}"
                for (function,) in await conn.execute(
                    text(
                        "SELECT p.oid::regprocedure::text FROM pg_proc AS p "
                        "WHERE p.pronamespace = to_regnamespace(current_schema())::oid "
                        "AND p.proname LIKE 'ticketing\\_%' "
                        "AND NOT has_function_privilege(p.oid, 'EXECUTE') ORDER BY 1"
                    )
                )
            ]
    except DBAPIError as exc:
        return str(exc.orig).strip().splitlines()[0]
    if missing:
        return f"role {name} lacks {', '.join(missing)}"
    return None
