"""ticket history, comments, list indexes

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
LIVE = sa.text("deleted_seq = -1")

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_comments",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("author", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ticket_id"],
            ["tickets.tenant_id", "tickets.id"],
            name=op.f("fk_ticket_comments_tenant_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_ticket_comments")),
    )
    with op.batch_alter_table("ticket_comments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ticket_comments_ticket", ["tenant_id", "ticket_id", "created_at"], unique=False
        )

    op.create_table(
        "ticket_history",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", JSON, nullable=False),
        sa.Column("changes", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ticket_id"],
            ["tickets.tenant_id", "tickets.id"],
            name=op.f("fk_ticket_history_tenant_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "ticket_id", "version", name=op.f("pk_ticket_history")
        ),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tickets_tenant_status",
            ["tenant_id", "status_type", "created_at", "id_serial"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
        batch_op.create_index(
            "ix_tickets_tenant_submitter",
            ["tenant_id", "submitted_by", "created_at", "id_serial"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
        batch_op.create_index(
            "ix_tickets_tenant_team",
            ["tenant_id", "team_id", "created_at", "id_serial"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )
        batch_op.create_index(
            "ix_tickets_tenant_updated_at",
            ["tenant_id", "updated_at", "id_serial"],
            unique=False,
            postgresql_where=LIVE,
            sqlite_where=LIVE,
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_tenant_updated_at")
        batch_op.drop_index("ix_tickets_tenant_team")
        batch_op.drop_index("ix_tickets_tenant_submitter")
        batch_op.drop_index("ix_tickets_tenant_status")

    op.drop_table("ticket_history")
    with op.batch_alter_table("ticket_comments", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_comments_ticket")

    op.drop_table("ticket_comments")
