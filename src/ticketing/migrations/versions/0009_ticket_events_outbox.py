"""ticket events (outbox), event horizons, notifications, webhooks and their deliveries

Every change of a ticket writes a row into `ticket_events` in the same transaction as the
change. On PostgreSQL the row records the writing transaction's id (`xid`); its delivery
`position` is assigned after commit by `ticketing_sequence_events()`, which numbers, in
insertion order, only the events whose transactions are older than every transaction still
in flight: an event can never be numbered behind one that is already readable, so a reader
that follows `position > last seen` misses nothing (ticketing.events.outbox says why). On
SQLite writers are serial, so the position is the insertion id.

The create function of migration 0008 is replaced by the same function with one more
statement after its `RETURN QUERY`: the created event. Its signature and its CTE are those
of 0008.

`ticketing_sequence_events`, `ticketing_read_events`, `ticketing_prune_events` and
`ticketing_claim_deliveries` belong to the process-wide outbox reader and webhook worker:
they see every tenant's rows, so they run with the rights of the tables' owner (SECURITY
DEFINER); the service role reads a tenant's events, for replay, under the tenant policy like
every other table.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ticketing.migrations.earlier import load

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"
CURRENT_TENANT = "NULLIF(current_setting('ticketing.tenant_id', true), '')::uuid"
TABLES = ("ticket_events", "event_horizons", "notifications", "webhooks", "webhook_deliveries")

# The created event (ticketing.events), in the same transaction; none when the guard stopped
# the create. Added after the create function's own statement.
CREATED_EVENT = """
    -- The created event (ticketing.events), in the same transaction; none when the guard
    -- stopped the create.
    INSERT INTO ticket_events (tenant_id, kind, ticket_id, object_id, version, submitted_by,
        payload, created_at)
    SELECT t.tenant_id, 'ticket.created', t.id, t.object_id, t.version, t.submitted_by,
        jsonb_build_object('ticket', to_jsonb(t), 'changes', p_changes, 'actor', p_changed_by),
        p_created_at
    FROM tickets AS t WHERE t.tenant_id = p_tenant_id AND t.id = p_id;
"""

# Held while events are numbered, so that numbering transactions follow one another.
SEQUENCE_LOCK = 7_311_842_011

OUTBOX_FUNCTIONS = f"""
CREATE FUNCTION ticketing_sequence_events() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT
AS $fn$
DECLARE
    horizon bigint;
    base bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock({SEQUENCE_LOCK}) THEN
        RETURN -1;
    END IF;
    -- Every transaction with a smaller id has ended: its events are final and visible.
    horizon := pg_snapshot_xmin(pg_current_snapshot())::text::bigint;
    SELECT coalesce(max(position), 0) INTO base FROM ticket_events;
    UPDATE ticket_events AS e SET position = base + o.n
    FROM (
        SELECT w.tenant_id, w.id, row_number() OVER (ORDER BY w.id) AS n
        FROM ticket_events AS w WHERE w.position IS NULL AND w.xid < horizon
    ) AS o
    WHERE e.tenant_id = o.tenant_id AND e.id = o.id;
    RETURN (SELECT count(*) FROM ticket_events WHERE position IS NULL);
END
$fn$;

CREATE FUNCTION ticketing_read_events(p_after bigint, p_limit integer)
RETURNS TABLE (event_position bigint, tenant_id uuid, kind text, ticket_id uuid,
    object_id text, version integer, submitted_by text, payload jsonb,
    created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT
AS $fn$
    SELECT e.position, e.tenant_id, e.kind, e.ticket_id, e.object_id, e.version,
        e.submitted_by, e.payload, e.created_at
    FROM ticket_events AS e WHERE e.position > p_after ORDER BY e.position LIMIT p_limit
$fn$;

CREATE FUNCTION ticketing_last_event_position() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(max(position), 0) FROM ticket_events
$fn$;

CREATE FUNCTION ticketing_claim_deliveries(p_limit integer, p_lease_seconds double precision)
RETURNS TABLE (tenant_id uuid, webhook_id text, event_id bigint, kind text, body text,
    attempts integer, created_at timestamptz, url text, secret text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT
AS $fn$
    UPDATE webhook_deliveries AS d
    SET next_attempt_at = now() + make_interval(secs => p_lease_seconds)
    FROM (
        SELECT c.tenant_id, c.webhook_id, c.event_id FROM webhook_deliveries AS c
        WHERE c.status = 'pending' AND c.next_attempt_at <= now()
        ORDER BY c.next_attempt_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) AS due, webhooks AS w
    WHERE d.tenant_id = due.tenant_id AND d.webhook_id = due.webhook_id
        AND d.event_id = due.event_id AND w.tenant_id = d.tenant_id AND w.id = d.webhook_id
    RETURNING d.tenant_id, d.webhook_id, d.event_id, d.kind, d.body, d.attempts, d.created_at,
        w.url, w.secret
$fn$;

CREATE FUNCTION ticketing_prune_events(p_keep_seconds double precision, p_keep_count integer)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT
AS $fn$
DECLARE
    removed bigint;
BEGIN
    WITH keep AS (
        SELECT t.tenant_id, (
            SELECT x.position FROM ticket_events AS x
            WHERE x.tenant_id = t.tenant_id AND x.position IS NOT NULL
            ORDER BY x.position DESC OFFSET p_keep_count LIMIT 1
        ) AS through
        FROM (SELECT DISTINCT tenant_id FROM ticket_events) AS t
    ), gone AS (
        DELETE FROM ticket_events AS e USING keep AS k
        WHERE e.tenant_id = k.tenant_id AND e.position <= k.through
            AND e.created_at < now() - make_interval(secs => p_keep_seconds)
        RETURNING e.tenant_id, e.position
    ), marked AS (
        INSERT INTO event_horizons AS h (tenant_id, pruned_through)
        SELECT g.tenant_id, max(g.position) FROM gone AS g GROUP BY g.tenant_id
        ON CONFLICT (tenant_id) DO UPDATE
            SET pruned_through = greatest(h.pruned_through, excluded.pruned_through)
    )
    SELECT count(*) INTO removed FROM gone;
    RETURN removed;
END
$fn$;
"""  # noqa: S608 (the only substitution is a constant lock key)


def _previous_create_function() -> str:
    module = load("0008_queues_and_slas.py")
    return str(module.CREATE_FUNCTION).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def _create_function() -> str:
    """The create function of migration 0008 with the created event written after its
    statement (plpgsql goes on after RETURN QUERY)."""
    previous = _previous_create_function()
    end = previous.rindex("END\n$fn$")
    return previous[:end] + CREATED_EVENT.lstrip("\n") + previous[end:]


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "ticket_events",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.BigInteger(), *([sa.Identity()] if postgresql else []), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column(
            "xid",
            sa.BigInteger(),
            server_default=sa.text("(pg_current_xact_id()::text::bigint)") if postgresql else None,
            nullable=True,
        ),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("object_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("submitted_by", sa.String(length=320), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_ticket_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_ticket_events")),
    )
    op.create_index("ix_ticket_events_tenant_position", "ticket_events", ["tenant_id", "position"])
    op.create_index("ix_ticket_events_position", "ticket_events", ["position"])
    unnumbered = sa.text("position IS NULL")
    op.create_index(
        "ix_ticket_events_unnumbered",
        "ticket_events",
        ["id"],
        postgresql_where=unnumbered,
        sqlite_where=unnumbered,
    )
    op.create_table(
        "event_horizons",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_event_horizons_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_event_horizons")),
    )
    op.create_table(
        "notifications",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("object_id", sa.String(length=40), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("read", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_notifications_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_notifications")),
    )
    op.create_index(
        "ix_notifications_recipient", "notifications", ["tenant_id", "recipient", "created_at"]
    )
    op.create_table(
        "webhooks",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column(
            "events",
            sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("secret", sa.String(length=500), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_webhooks_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_webhooks")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("webhook_id", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "log",
            sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "webhook_id"],
            ["webhooks.tenant_id", "webhooks.id"],
            name=op.f("fk_webhook_deliveries_tenant_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "webhook_id", "event_id", name=op.f("pk_webhook_deliveries")
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    if not postgresql:
        return
    for table in TABLES:
        match = f"tenant_id = {CURRENT_TENANT}"
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({match}) WITH CHECK ({match})")
    # One statement per call: the driver prepares each.
    for statement in OUTBOX_FUNCTIONS.split("$fn$;\n"):
        if statement.strip():
            op.execute(statement + "$fn$")
    op.execute(_create_function())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_previous_create_function())
        op.execute("DROP FUNCTION ticketing_prune_events(double precision, integer)")
        op.execute("DROP FUNCTION ticketing_claim_deliveries(integer, double precision)")
        op.execute("DROP FUNCTION ticketing_last_event_position()")
        op.execute("DROP FUNCTION ticketing_read_events(bigint, integer)")
        op.execute("DROP FUNCTION ticketing_sequence_events()")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_table("notifications")
    op.drop_table("event_horizons")
    op.drop_table("ticket_events")
