"""routing and SLA indexes over listed tickets only

The list and count queries ask for listed tickets (`deleted_seq = -1 AND moved_to IS NULL`).
The routing and SLA indexes of migration 0008 left `moved_to` out of their condition, so a
count over them ("Due Today", "SLA Breached") had to read every matching row from the table
to check it: 40,000 heap reads for a day's due tickets in a tenant of 1,000,000. Built over
listed tickets only, they answer such counts from the index alone.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (column, the columns after it in the key)
INDEXES = (
    ("priority", ("created_at",)),
    ("queue_id", ("created_at",)),
    ("assignee", ("created_at",)),
    ("sla_due_at", ()),
    ("sla_breach_at", ()),
)


def _recreate(listed_only: bool) -> None:
    for column, after in INDEXES:
        name = f"ix_tickets_tenant_{column}"
        condition = "deleted_seq = -1 AND moved_to IS NULL" if listed_only else "deleted_seq = -1"
        where = sa.text(f"{condition} AND {column} IS NOT NULL")
        op.drop_index(name, table_name="tickets")
        op.create_index(
            name,
            "tickets",
            ["tenant_id", column, *after, "id_serial"],
            postgresql_where=where,
            sqlite_where=where,
        )


def upgrade() -> None:
    _recreate(listed_only=True)


def downgrade() -> None:
    _recreate(listed_only=False)
