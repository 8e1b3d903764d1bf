"""attachments

Uploaded files: one row per upload (metadata and the sha256 naming its blob, which lives in
the blob store, not in the database), bound to a ticket once a create or update uses it; the
tenant's attachment policy from its configuration file; and a partial index over the live
tickets that carry files, for the `hasAttachments` list filter. The new table is keyed by
tenant first and under the same tenant row-level security policy as the others (0004).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
HAS_ATTACHMENTS = sa.text("deleted_seq = -1 AND CAST(attachments AS TEXT) <> '{}'")
UNBOUND = sa.text("ticket_id IS NULL")
CURRENT_TENANT = "NULLIF(current_setting('ticketing.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("uploader", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=120), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("field_key", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_attachments_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ticket_id"],
            ["tickets.tenant_id", "tickets.id"],
            name=op.f("fk_attachments_tenant_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_attachments")),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index("ix_attachments_tenant_sha256", ["tenant_id", "sha256"])
        batch_op.create_index("ix_attachments_tenant_ticket", ["tenant_id", "ticket_id"])
        batch_op.create_index(
            "ix_attachments_unbound_created_at",
            ["created_at"],
            postgresql_where=UNBOUND,
            sqlite_where=UNBOUND,
        )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attachment_policy", JSON, nullable=True))
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tickets_tenant_has_attachments",
            ["tenant_id", "created_at", "id_serial"],
            postgresql_where=HAS_ATTACHMENTS,
            sqlite_where=HAS_ATTACHMENTS,
        )
    if op.get_bind().dialect.name == "postgresql":
        match = f"tenant_id = {CURRENT_TENANT}"
        op.execute("ALTER TABLE attachments ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON attachments USING ({match}) WITH CHECK ({match})"
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_tenant_has_attachments")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("attachment_policy")
    op.drop_table("attachments")
