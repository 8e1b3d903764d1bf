"""stream tickets: single-use tickets that open one event stream without headers

A browser's EventSource cannot send the `authorization`, `x-tenantid` and `realmname`
headers an event stream needs. `POST /ticket/sse/ticket` (with those headers) stores a row
here for a random ticket, by its SHA-256, bound to the tenant, the user and one stream, for
60 seconds; the stream's URL then carries the ticket (`?ticket=`). Opening the stream
deletes the row in the statement that reads it, so a ticket opens one stream once, whichever
process of whichever host serves it.

The table is tenant-keyed and under the tenant policy like every other: the ticket carries
its tenant, which is bound to the request before the row is looked up.

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"
CURRENT_TENANT = "NULLIF(current_setting('ticketing.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "stream_tickets",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=20), nullable=False),
        sa.Column("realm", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column(
            "claims",
            sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_stream_tickets_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "token_hash", name=op.f("pk_stream_tickets")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    match = f"tenant_id = {CURRENT_TENANT}"
    op.execute("ALTER TABLE stream_tickets ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {POLICY} ON stream_tickets USING ({match}) WITH CHECK ({match})")


def downgrade() -> None:
    op.drop_table("stream_tickets")
