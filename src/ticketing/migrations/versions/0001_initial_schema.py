"""initial schema

Revision ID: 0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
LIVE = sa.text("deleted_seq = -1")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("realm", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "display_id_counters",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("prefix", sa.String(length=250), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_display_id_counters_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "prefix", name=op.f("pk_display_id_counters")),
    )
    op.create_table(
        "teams",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("create_roles", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_teams_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_teams")),
    )
    op.create_table(
        "ticket_types",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=True),
        sa.Column("create_roles", JSON, nullable=False),
        sa.Column("workflow", JSON, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_ticket_types_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_ticket_types")),
    )
    op.create_table(
        "tickets",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("id_serial", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("object_id", sa.String(length=40), nullable=False),
        sa.Column("display_prefix", sa.String(length=20), nullable=False),
        sa.Column("display_number", sa.BigInteger(), nullable=False),
        sa.Column("team_id", sa.String(length=100), nullable=False),
        sa.Column("item_type_id", sa.String(length=100), nullable=False),
        sa.Column("offer_id", sa.String(length=100), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("attachments", JSON, nullable=False),
        sa.Column("ticket_relation", JSON, nullable=True),
        sa.Column("etag", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status_type", sa.String(length=100), nullable=False),
        sa.Column("status_category", sa.String(length=100), nullable=False),
        sa.Column("moved_to", sa.String(length=100), nullable=True),
        sa.Column("deleted_seq", sa.BigInteger(), nullable=False),
        sa.Column("submitted_by", sa.String(length=320), nullable=False),
        sa.Column("is_support_request", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tickets_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_tickets")),
        sa.UniqueConstraint(
            "tenant_id", "display_prefix", "display_number", name="uq_tickets_display_number"
        ),
        sa.UniqueConstraint("tenant_id", "object_id", name="uq_tickets_tenant_object_id"),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tickets_tenant_created_at",
            ["tenant_id", "created_at", "id_serial"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
        batch_op.create_index(
            "ix_tickets_tenant_id_serial", ["tenant_id", "id_serial"], unique=False
        )

    op.create_table(
        "offers",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=True),
        sa.Column("item_type", sa.String(length=100), nullable=False),
        sa.Column("catalog_types", JSON, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "item_type"],
            ["ticket_types.tenant_id", "ticket_types.id"],
            name=op.f("fk_offers_tenant_id_ticket_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_offers")),
    )
    op.create_table(
        "ticket_fields",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_type_id", sa.String(length=100), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=30), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("default_value", JSON, nullable=True),
        sa.Column("options", JSON, nullable=False),
        sa.Column("limits", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ticket_type_id"],
            ["ticket_types.tenant_id", "ticket_types.id"],
            name=op.f("fk_ticket_fields_tenant_id_ticket_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "ticket_type_id", "id", name=op.f("pk_ticket_fields")),
    )


def downgrade() -> None:
    op.drop_table("ticket_fields")
    op.drop_table("offers")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_tenant_id_serial")
        batch_op.drop_index("ix_tickets_tenant_created_at")

    op.drop_table("tickets")
    op.drop_table("ticket_types")
    op.drop_table("teams")
    op.drop_table("display_id_counters")
    op.drop_table("tenants")
