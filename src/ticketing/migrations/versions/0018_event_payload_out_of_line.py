"""event payloads are kept out of line, so numbering an event copies a small row

Every event row is written twice: inserted by the change's transaction, then given its
position by the event hub's numbering (`ticketing_sequence_events()`, migration 0009), an
update of an indexed column that copies the whole row. A created event's payload (the ticket,
its changes and the actor: about 2 KB for the seed's ticket) was compressed and kept in the
row, so each create left a dead copy of it behind; on a server without autovacuum the outbox
doubled, and creates fell from about 1,300 to 650-900 a second within three minutes of
`make bench-soak --server machine` (the benchmark's pgbench ceiling fell with them).

A row PostgreSQL toasts (one over about 2 KB) is now reduced to 128 bytes, its payload moved
to the table's TOAST storage uncompressed: the numbering copies a row of about 100 bytes and
reuses the stored payload (an update that leaves a toasted value alone does not rewrite it).
With it the same soak held 1,280-1,510 creates a second throughout. Smaller payloads stay in
the row as before.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE ticket_events SET (toast_tuple_target = 128)")
        op.execute("ALTER TABLE ticket_events ALTER COLUMN payload SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE ticket_events ALTER COLUMN payload SET STORAGE EXTENDED")
        op.execute("ALTER TABLE ticket_events RESET (toast_tuple_target)")
