"""the create function reads no ticket back, so its generic plans stay fast as tables grow

A session plans a function's statements with the call's values for five calls and may then
keep one generic plan. On a `tickets` table that is empty or nearly so (a new database, or
any server before its first analyse; a server without autovacuum never has one), a lookup by
`(tenant_id, id)` costs the same through any index that starts with `tenant_id`, and the
planner may take `ix_tickets_tenant_id_serial` with `id` as a filter: a plan that reads every
ticket of the tenant. Kept for the session, it makes each create slower than the one before.
Two such lookups ran in each create: the created-event statement read the new ticket back,
and the foreign-key check of `ticket_history` looked the ticket up. Measured with
pg_stat_statements (pgbench, 16 sessions, one tenant, from an empty database, autovacuum
off): both read on average half the tenant's tickets per call, and creates fell from 253 to
107 a second within 40 s.

Migration 0014 planned every call instead, which halved the database's ceiling (64 tenants,
16 sessions: 1,445 -> 632 tps). This migration removes the two lookups and goes back to
generic plans:
- the created event, the assignee's notification and the history entry are written by the
  create statement itself from the inserted row (`RETURNING tickets.*`), so nothing reads
  `tickets` by key during a create;
- `ticket_history` refers to its tenant rather than to its ticket: history rows are only
  ever written beside the ticket they describe (by this function, or in the transaction that
  holds the ticket's row lock), tickets are never deleted one by one, and removing a tenant
  still removes its history.
- the idempotency-key update runs only when the create carries a key.
The same pgbench run then held 866, 694, 545, 732, 712, 625 creates a second over a minute,
with 94 buffers touched per call throughout.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ticketing.migrations.earlier import load

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the function's create statement returned, and what it returns now.
OLD_RETURNING = "RETURNING tickets.id, tickets.id_serial, tickets.display_number, tickets.assignee"
NEW_RETURNING = "RETURNING tickets.*"

OLD_IDEMPOTENCY = "            AND k.key = p_idempotency_key\n"
NEW_IDEMPOTENCY = "            AND k.key = p_idempotency_key AND p_idempotency_key IS NOT NULL\n"

OLD_TAIL = "    )\n    SELECT t.display_number, t.id_serial, t.assignee::text FROM ticket AS t;\n"

# The created event (ticketing.events) and the round-robin assignee's notification (not to
# the creator), from the inserted row; none when the guard stopped the create.
NEW_TAIL = """    ), assignment AS (
        SELECT jsonb_build_object('field', 'assignee', 'old', NULL, 'new', t.assignee) AS change
        FROM ticket AS t WHERE t.assignee IS NOT NULL
    ), notice AS (
        INSERT INTO notifications (tenant_id, id, recipient, kind, ticket_id, object_id,
            message, data, read, created_at)
        SELECT t.tenant_id, gen_random_uuid(), t.assignee, 'assigned', t.id, t.object_id,
            t.object_id || ' was assigned to you',
            jsonb_build_object('summary', t.summary, 'actor', p_changed_by,
                'assignee', a.change),
            false, p_created_at
        FROM ticket AS t, assignment AS a
        WHERE t.assignee IS DISTINCT FROM p_changed_by->>'username'
            AND t.assignee IS DISTINCT FROM p_changed_by->>'email'
        RETURNING *
    ), event AS (
        INSERT INTO ticket_events (tenant_id, kind, ticket_id, object_id, version,
            submitted_by, payload, created_at)
        SELECT t.tenant_id, 'ticket.created', t.id, t.object_id, t.version, t.submitted_by,
            jsonb_build_object('ticket', to_jsonb(t),
                'changes', p_changes
                    || coalesce((SELECT jsonb_agg(a.change) FROM assignment AS a), '[]'::jsonb),
                'actor', p_changed_by)
            || coalesce((SELECT jsonb_build_object('notifications', jsonb_agg(to_jsonb(n)))
                FROM notice AS n HAVING count(*) > 0), '{}'::jsonb),
            p_created_at
        FROM ticket AS t
    )
    SELECT t.display_number, t.id_serial, t.assignee::text FROM ticket AS t;
"""

SIGNATURE = (
    "text, uuid, integer, text[], bigint[], uuid, text, text, text, text, text, text, jsonb, "
    "jsonb, jsonb, uuid, integer, text, text, text, boolean, timestamptz, jsonb, jsonb, text, "
    "text, text, text, text, jsonb, timestamptz, timestamptz, timestamptz"
)


def _previous_create_function() -> str:
    """Migration 0012's function (0014 only set a planner option on it)."""
    return str(load("0012_created_event_assignment.py")._create_function())


def _create_function() -> str:
    """Migration 0012's function with its created-event statement folded into the create
    statement."""
    previous = _previous_create_function()
    event = str(load("0012_created_event_assignment.py").CREATED_EVENT).lstrip("\n")
    for old in (event, OLD_RETURNING, OLD_IDEMPOTENCY, OLD_TAIL):
        assert previous.count(old) == 1, old
    return (
        previous.replace(event, "")
        .replace(OLD_RETURNING, NEW_RETURNING)
        .replace(OLD_IDEMPOTENCY, NEW_IDEMPOTENCY)
        .replace(OLD_TAIL, NEW_TAIL)
    )


def _history_refers_to(table: str) -> None:
    """Points ticket_history's foreign key at its ticket or at its tenant."""
    with op.batch_alter_table("ticket_history", schema=None) as batch_op:
        if table == "tenants":
            batch_op.drop_constraint("fk_ticket_history_tenant_id_tickets", type_="foreignkey")
            batch_op.create_foreign_key(
                "fk_ticket_history_tenant_id_tenants",
                "tenants",
                ["tenant_id"],
                ["id"],
                ondelete="CASCADE",
            )
        else:
            batch_op.drop_constraint("fk_ticket_history_tenant_id_tenants", type_="foreignkey")
            batch_op.create_foreign_key(
                "fk_ticket_history_tenant_id_tickets",
                "tickets",
                ["tenant_id", "ticket_id"],
                ["tenant_id", "id"],
                ondelete="CASCADE",
            )


def upgrade() -> None:
    _history_refers_to("tenants")
    if op.get_bind().dialect.name == "postgresql":
        # CREATE OR REPLACE keeps no option that it does not repeat: 0014's is gone with it.
        op.execute(_create_function())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_previous_create_function())
        op.execute(
            sa.text(
                f"ALTER FUNCTION ticketing_create_ticket({SIGNATURE}) "
                "SET plan_cache_mode = force_custom_plan"
            )
        )
    _history_refers_to("tickets")
