"""the created event names the assignment made at creation and notifies the assignee

On PostgreSQL the created event is written by the create function (migration 0009), so the
notification generators of ticketing.notifications, which run where events are recorded in
Python, never saw a create there: a ticket assigned by round robin inside the create
statement told nobody, and its event's `changes` lacked the assignment that its history
shows. The function is replaced by the same one whose event statement also writes the
"assigned to you" notification (the one the generator makes on SQLite: not to the creator
themselves) and puts it, and the assignee change, into the event's payload. A create stays
one statement from the service; the notification costs nothing when nobody is assigned.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

from alembic import op

from ticketing.migrations.earlier import load

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREATED_EVENT = """
    -- The created event (ticketing.events), in the same transaction; none when the guard
    -- stopped the create. A round-robin assignee (not the creator) is notified, as
    -- ticketing.notifications.generator does for events recorded in Python.
    WITH t AS (
        SELECT * FROM tickets WHERE tenant_id = p_tenant_id AND id = p_id
    ), assignment AS (
        SELECT jsonb_build_object('field', 'assignee', 'old', NULL, 'new', t.assignee) AS change
        FROM t WHERE t.assignee IS NOT NULL
    ), notice AS (
        INSERT INTO notifications (tenant_id, id, recipient, kind, ticket_id, object_id,
            message, data, read, created_at)
        SELECT t.tenant_id, gen_random_uuid(), t.assignee, 'assigned', t.id, t.object_id,
            t.object_id || ' was assigned to you',
            jsonb_build_object('summary', t.summary, 'actor', p_changed_by,
                'assignee', a.change),
            false, p_created_at
        FROM t, assignment AS a
        WHERE t.assignee IS DISTINCT FROM p_changed_by->>'username'
            AND t.assignee IS DISTINCT FROM p_changed_by->>'email'
        RETURNING *
    )
    INSERT INTO ticket_events (tenant_id, kind, ticket_id, object_id, version, submitted_by,
        payload, created_at)
    SELECT t.tenant_id, 'ticket.created', t.id, t.object_id, t.version, t.submitted_by,
        jsonb_build_object('ticket', to_jsonb(t),
            'changes', p_changes || coalesce((SELECT jsonb_agg(a.change) FROM assignment AS a),
                '[]'::jsonb),
            'actor', p_changed_by)
        || coalesce((SELECT jsonb_build_object('notifications', jsonb_agg(to_jsonb(n)))
            FROM notice AS n HAVING count(*) > 0), '{}'::jsonb),
        p_created_at
    FROM t;
"""


def _previous_create_function() -> str:
    return str(load("0009_ticket_events_outbox.py")._create_function())


def _create_function() -> str:
    """Migration 0009's create function with this event statement instead of its own."""
    previous = _previous_create_function()
    old = str(load("0009_ticket_events_outbox.py").CREATED_EVENT).lstrip("\n")
    assert old in previous
    return previous.replace(old, CREATED_EVENT.lstrip("\n"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_create_function())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_previous_create_function())
