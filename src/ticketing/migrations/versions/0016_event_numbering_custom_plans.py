"""the outbox numbering function plans every call with that call's horizon

`ticketing_sequence_events()` numbers the events whose transactions are older than every
transaction still running (the horizon, `pg_snapshot_xmin`), counts those left waiting, and
reads the newest position. A session plans a function's statements with the call's values
for five calls and may then keep one generic plan; for these statements the generic plan
does not know how few events lie below the horizon, and on one session that numbers ten
times a second it grew slower with every call: 7 -> 118 ms a call within 30 s of
`make bench-sse` (1,000 streams, 200 creates/s), committed events left waiting for their
positions in nearly every read, and the streams' p50 went from 94-101 to 165-227 ms. Planned
with each call's values, the same session held 13-36 ms a call and p50 80 ms. The function
runs a few times a second per process, so planning each call costs nothing that shows.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER FUNCTION ticketing_sequence_events() SET plan_cache_mode = force_custom_plan"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER FUNCTION ticketing_sequence_events() RESET plan_cache_mode")
