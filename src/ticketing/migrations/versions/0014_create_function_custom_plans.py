"""the create function plans its statements for each call

PostgreSQL plans a function's statements with the call's values for the first five calls of
a session, then may keep one generic plan for the rest of the session. Sessions that start
while a tenant's tables are small degrade as the tables grow, until the tables' statistics
are next gathered (autovacuum's analyse, about a minute on a stock server; never on a server
without autovacuum). Measured with pgbench running this function in 16 sessions for one
tenant from an empty database (machine's server, autovacuum off): 317, 177, 141, 120 and
108 creates a second in successive 10-s windows; through the service, 215 falling to 87
within 50 s, back to 365 at once after `ANALYZE tickets`, and steady at 316-323 with plans
made for each call. Which of the function's plans goes wrong is not pinned down: it is not
the foreign-key checks (dropping them changed nothing) nor the created-event statement
(planning only that one per call changed nothing).

`plan_cache_mode = force_custom_plan`, set on the function, holds while it runs. It costs
database CPU for planning on every call: the pgbench ceiling for 64 tenants on 16 sessions
fell from 1,445 to 632 tps (one tenant's creates are bounded by its counter rows, not by
CPU, and keep their rate). A later migration that replaces the function must keep the
setting (CREATE OR REPLACE drops what it does not repeat).

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
