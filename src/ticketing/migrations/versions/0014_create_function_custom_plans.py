"""the create function plans its statements for each call

PostgreSQL plans a function's statements with the call's values for the first five calls of
a session, then may keep one generic plan for the rest of the session. A session that starts
while the tenant's tables are small gets a generic plan made for small tables (reading the
ticket just written, or checking the history row's reference to it, by scanning `tickets`),
and keeps it while `tickets` grows, until the table's statistics are next gathered
(autovacuum's analyse; never, on a server without autovacuum). Measured on one tenant, 16
connections, one server process: creates fell from 215 to 87 a second within 50 s, came
back to 365 at once after `ANALYZE tickets`, and held at 316-323 a second with plans made
per call (the figures of `make bench-soak` in the README are taken with this migration).

`plan_cache_mode = force_custom_plan`, set on the function, holds while it runs, including
for the foreign-key checks its inserts fire. Planning the few statements of a create on each
call costs less than one scan of a growing table. A later migration that replaces the
function must keep the setting (CREATE OR REPLACE drops what it does not repeat).

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = (
    "text, uuid, integer, text[], bigint[], uuid, text, text, text, text, text, text, jsonb, "
    "jsonb, jsonb, uuid, integer, text, text, text, boolean, timestamptz, jsonb, jsonb, text, "
    "text, text, text, text, jsonb, timestamptz, timestamptz, timestamptz"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER FUNCTION ticketing_create_ticket({SIGNATURE}) "
            "SET plan_cache_mode = force_custom_plan"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER FUNCTION ticketing_create_ticket({SIGNATURE}) RESET plan_cache_mode")
