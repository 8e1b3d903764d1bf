"""tenant row-level security (PostgreSQL)

Every tenant-keyed table shows and accepts only the rows of the tenant named by the
`ticketing.tenant_id` setting (ticketing.kit.tenancy); with no tenant set, none. The policies
bind every role but the tables' owner (who runs migrations and loads configuration) and
superusers; the service works as such a bound role (ticketing.kit.app_role, set up by
`ticketing migrate`).

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"
# Table: its tenant column.
TABLES = {
    "tenants": "id",
    "teams": "tenant_id",
    "ticket_types": "tenant_id",
    "ticket_fields": "tenant_id",
    "offers": "tenant_id",
    "display_id_counters": "tenant_id",
    "tickets": "tenant_id",
    "ticket_history": "tenant_id",
    "ticket_comments": "tenant_id",
    "idempotency_keys": "tenant_id",
}
CURRENT_TENANT = "NULLIF(current_setting('ticketing.tenant_id', true), '')::uuid"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in TABLES.items():
        match = f"{column} = {CURRENT_TENANT}"
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({match}) WITH CHECK ({match})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP POLICY {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
