"""ticket relations, merged tickets out of the list indexes, history entries within a version

Relations between tickets (parent/child, blocks, duplicates, relates to) get their own table,
keyed by tenant first, under the tenant policy, with an index for each direction and a unique
index that allows one parent per ticket. A relation change does not make a new version of
either ticket, so history entries are keyed by (version, entry): a versioned change is entry
0 of its version, and relation changes take the next entries of the version they were made
at. Lists leave merged tickets out by default, so the list indexes cover tickets that are
neither deleted nor merged, and a small index finds the merged ones.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
LIVE = "deleted_seq = -1"
LISTED = "deleted_seq = -1 AND moved_to IS NULL"
MERGED = "deleted_seq = -1 AND moved_to IS NOT NULL"
CURRENT_TENANT = "NULLIF(current_setting('ticketing.tenant_id', true), '')::uuid"
LIST_INDEXES = {
    "ix_tickets_tenant_created_at": ["created_at"],
    "ix_tickets_tenant_updated_at": ["updated_at"],
    "ix_tickets_tenant_status": ["status_type", "created_at"],
    "ix_tickets_tenant_submitter": ["submitted_by", "created_at"],
    "ix_tickets_tenant_team": ["team_id", "created_at"],
}


def _list_indexes(where: str) -> None:
    for name, columns in LIST_INDEXES.items():
        op.drop_index(name, table_name="tickets")
        predicate = sa.text(where)
        op.create_index(
            name,
            "tickets",
            ["tenant_id", *columns, "id_serial"],
            postgresql_where=predicate,
            sqlite_where=predicate,
        )


def _history_key(*columns: str) -> None:
    with op.batch_alter_table("ticket_history") as batch_op:
        batch_op.drop_constraint("pk_ticket_history", type_="primary")
        batch_op.create_primary_key("pk_ticket_history", list(columns))


def upgrade() -> None:
    op.create_table(
        "ticket_relations",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "source_id"],
            ["tickets.tenant_id", "tickets.id"],
            name="fk_ticket_relations_source_tickets",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "target_id"],
            ["tickets.tenant_id", "tickets.id"],
            name="fk_ticket_relations_target_tickets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "source_id", "type", "target_id", name=op.f("pk_ticket_relations")
        ),
    )
    op.create_index(
        "ix_ticket_relations_target",
        "ticket_relations",
        ["tenant_id", "target_id", "type", "source_id"],
    )
    one_parent = sa.text("type = 'parent'")
    op.create_index(
        "uq_ticket_relations_one_parent",
        "ticket_relations",
        ["tenant_id", "source_id"],
        unique=True,
        postgresql_where=one_parent,
        sqlite_where=one_parent,
    )

    op.add_column(
        "ticket_history",
        sa.Column("entry", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    _history_key("tenant_id", "ticket_id", "version", "entry")

    _list_indexes(LISTED)
    merged = sa.text(MERGED)
    op.create_index(
        "ix_tickets_tenant_moved_to",
        "tickets",
        ["tenant_id", "moved_to", "id_serial"],
        postgresql_where=merged,
        sqlite_where=merged,
    )

    if op.get_bind().dialect.name == "postgresql":
        match = f"tenant_id = {CURRENT_TENANT}"
        op.execute("ALTER TABLE ticket_relations ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON ticket_relations USING ({match}) "
            f"WITH CHECK ({match})"
        )


def downgrade() -> None:
    op.drop_index("ix_tickets_tenant_moved_to", table_name="tickets")
    _list_indexes(LIVE)
    op.execute("DELETE FROM ticket_history WHERE entry > 0")
    _history_key("tenant_id", "ticket_id", "version")
    with op.batch_alter_table("ticket_history") as batch_op:
        batch_op.drop_column("entry")
    op.drop_table("ticket_relations")
