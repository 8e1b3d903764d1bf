"""tenant row-level security (PostgreSQL)

Every tenant-keyed table shows and accepts only the rows of the tenant named by the
`ticketing.tenant_id` setting (ticketing.kit.tenancy); with no tenant set, none. The policies
bind the service's role (settings: db_role), which gets no more than the service needs:
reading the catalog, writing tickets and what belongs to them. The tables' owner, who runs
migrations and loads configuration, is not bound by them.

Revision ID: 0004
Revises: 0003
"""

import re
from collections.abc import Sequence

from alembic import context, op
from sqlalchemy import text

from ticketing.kit.tenancy import CURRENT_TENANT_SQL

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"
# Table: its tenant column. Changing configuration is the loader's, run as the owner.
READ_ONLY = {
    "tenants": "id",
    "teams": "tenant_id",
    "ticket_types": "tenant_id",
    "ticket_fields": "tenant_id",
    "offers": "tenant_id",
}
READ_WRITE = {
    "display_id_counters": "tenant_id",
    "tickets": "tenant_id",
    "ticket_history": "tenant_id",
    "ticket_comments": "tenant_id",
    "idempotency_keys": "tenant_id",
}
# Expired idempotency keys are deleted; tickets are deleted softly.
DELETABLE = ("idempotency_keys",)
TABLES = {**READ_ONLY, **READ_WRITE}


def _app_role() -> str | None:
    role: str | None = context.config.attributes.get("app_role")
    if role and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError(f"not a plain role name: {role!r}")
    return role


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in TABLES.items():
        match = f"{column} = {CURRENT_TENANT_SQL}"
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({match}) WITH CHECK ({match})")
    role = _app_role()
    if not role:
        return
    # Roles belong to the whole server: another database may have created it already,
    # possibly at this very moment.
    op.execute(
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
    # The login user switches to it on connecting (a superuser may anyway).
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT pg_has_role(current_user, '{role}', 'MEMBER') THEN
                EXECUTE format('GRANT %I TO %I', '{role}', current_user);
            END IF;
        END $$
        """
    )
    op.execute(f'GRANT USAGE ON SCHEMA {_schema()} TO "{role}"')
    op.execute(f'GRANT SELECT ON {", ".join(READ_ONLY)} TO "{role}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON {", ".join(READ_WRITE)} TO "{role}"')
    op.execute(f'GRANT DELETE ON {", ".join(DELETABLE)} TO "{role}"')
    # tickets.id_serial is an identity column.
    op.execute(f'GRANT USAGE ON SEQUENCE {_ticket_sequence()} TO "{role}"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP POLICY {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    role = _app_role()
    exists = text("SELECT count(*) FROM pg_roles WHERE rolname = :role")
    if role and op.get_bind().execute(exists, {"role": role}).scalar():
        # The role stays: other databases of the server may use it.
        op.execute(f'REVOKE ALL ON {", ".join(TABLES)} FROM "{role}"')
        op.execute(f'REVOKE ALL ON SEQUENCE {_ticket_sequence()} FROM "{role}"')


def _ticket_sequence() -> str:
    return str(_scalar("SELECT pg_get_serial_sequence('tickets', 'id_serial')"))


def _schema() -> str:
    return str(_scalar("SELECT quote_ident(current_schema())"))


def _scalar(sql: str) -> object:
    return op.get_bind().exec_driver_sql(sql).scalar()
