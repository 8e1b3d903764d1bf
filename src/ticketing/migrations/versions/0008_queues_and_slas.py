"""queues, assignment and SLAs

Tickets gain a priority, a queue, an assignee and the state of their SLA clocks, with the
moments derived from that state indexed for the `slaDueAt` / `slaBreached` filters and the
breach sweeper. Two tenant-keyed tables hold a tenant's desk settings (from its
configuration file) and its queue members with their availability, under the tenant
row-level security policy like every other table.

The create function of migration 0005 is replaced by one that also takes the ticket's
priority, queue and SLA state and, for a round-robin queue, picks the assignee inside the
same statement: it bumps the queue's counter (`#rr:<queueId>`, beside the display-ID
counters, so its row lock orders concurrent creates across processes) and takes the member
at that count among the members available at that moment. A create stays one statement.

A second function lists the tickets whose next SLA due time has passed, across tenants (the
sweeper's candidates: tenant and ticket ids only); it runs with its owner's rights because
the policies would show a caller without a tenant nothing. Each candidate is then read and
written under its own tenant.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from ticketing.migrations.earlier import load

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"
CURRENT_TENANT = "NULLIF(current_setting('ticketing.tenant_id', true), '')::uuid"
NEW_TABLES = ("tenant_desks", "queue_members")

OLD_SIGNATURE = (
    "text, uuid, integer, text[], bigint[], uuid, text, text, text, text, text, text, jsonb, "
    "jsonb, jsonb, uuid, integer, text, text, text, boolean, timestamptz, jsonb, jsonb, text, "
    "text"
)
NEW_SIGNATURE = OLD_SIGNATURE + ", text, text, text, jsonb, timestamptz, timestamptz, timestamptz"

CREATE_FUNCTION = """
CREATE FUNCTION ticketing_create_ticket(
    p_scope text, p_tenant_id uuid, p_config_version integer, p_names text[],
    p_deltas bigint[], p_id uuid, p_display_prefix text, p_team_id text, p_item_type_id text,
    p_offer_id text, p_source text, p_summary text, p_data jsonb, p_attachments jsonb,
    p_ticket_relation jsonb, p_etag uuid, p_version integer, p_status_type text,
    p_status_category text, p_submitted_by text, p_is_support_request boolean,
    p_created_at timestamptz, p_changed_by jsonb, p_changes jsonb, p_idempotency_caller text,
    p_idempotency_key text, p_priority text, p_queue_id text, p_round_robin text,
    p_sla jsonb, p_sla_due_at timestamptz, p_sla_breach_at timestamptz,
    p_sla_sweep_at timestamptz)
RETURNS TABLE (new_number bigint, new_serial bigint, new_assignee text)
LANGUAGE plpgsql VOLATILE
AS $fn$
BEGIN
    -- The tenant of the verified token, for this call's transaction alone.
    PERFORM set_config('ticketing.tenant_id', p_scope, true);
    RETURN QUERY
    WITH guard AS (
        SELECT 1 FROM tenants WHERE id = p_tenant_id AND config_version = p_config_version
    ), counters AS (
        INSERT INTO display_id_counters AS c (tenant_id, prefix, last_value)
        SELECT p_tenant_id, u.name, u.delta
        FROM guard, unnest(p_names, p_deltas) AS u(name, delta)
        ORDER BY u.name
        ON CONFLICT (tenant_id, prefix)
            DO UPDATE SET last_value = c.last_value + excluded.last_value
        RETURNING c.prefix, c.last_value
    ), pool AS (
        -- Read in this statement, so a member who just went away is not picked.
        SELECT array_agg(m.user_id ORDER BY m.user_id) AS members
        FROM queue_members AS m
        WHERE p_round_robin IS NOT NULL AND m.tenant_id = p_tenant_id
            AND m.queue_id = p_queue_id AND m.availability = 'available'
    ), pick AS (
        SELECT CASE WHEN cardinality(p.members) > 0
            THEN p.members[((r.last_value - 1) % cardinality(p.members)) + 1] END AS assignee
        FROM pool AS p LEFT JOIN counters AS r ON r.prefix = p_round_robin
    ), ticket AS (
        INSERT INTO tickets (tenant_id, id, object_id, display_prefix, display_number,
            team_id, item_type_id, offer_id, source, summary, data, attachments,
            ticket_relation, etag, version, status_type, status_category, moved_to,
            deleted_seq, submitted_by, is_support_request, created_at, updated_at,
            priority, queue_id, assignee, sla, sla_due_at, sla_breach_at, sla_sweep_at)
        SELECT p_tenant_id, p_id,
            n.prefix || '-'
                || lpad(n.last_value::text, greatest(4, length(n.last_value::text)), '0'),
            n.prefix, n.last_value, p_team_id, p_item_type_id, p_offer_id, p_source,
            p_summary, p_data, p_attachments, p_ticket_relation, p_etag, p_version,
            p_status_type, p_status_category, NULL, -1, p_submitted_by, p_is_support_request,
            p_created_at, p_created_at, p_priority, p_queue_id, k.assignee, p_sla,
            p_sla_due_at, p_sla_breach_at, p_sla_sweep_at
        FROM counters AS n, pick AS k WHERE n.prefix = p_display_prefix
        RETURNING tickets.id, tickets.id_serial, tickets.display_number, tickets.assignee
    ), history AS (
        INSERT INTO ticket_history (tenant_id, ticket_id, version, action, changed_at,
            changed_by, changes)
        SELECT p_tenant_id, t.id, p_version, 'create', p_created_at, p_changed_by,
            CASE WHEN t.assignee IS NULL THEN p_changes
                ELSE p_changes || jsonb_build_array(jsonb_build_object(
                    'field', 'assignee', 'old', NULL, 'new', t.assignee)) END
        FROM ticket AS t
    ), idempotency AS (
        UPDATE idempotency_keys AS k SET ticket_id = t.id FROM ticket AS t
        WHERE k.tenant_id = p_tenant_id AND k.caller = p_idempotency_caller
            AND k.key = p_idempotency_key
    )
    SELECT t.display_number, t.id_serial, t.assignee::text FROM ticket AS t;
END
$fn$
"""

# Candidates only: what the sweeper then reads, it reads under each ticket's tenant.
SWEEP_FUNCTION = """
CREATE FUNCTION ticketing_sla_sweep_candidates(p_now timestamptz, p_limit integer)
RETURNS TABLE (tenant_id uuid, ticket_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, {schema}
AS $fn$
    SELECT t.tenant_id, t.id FROM {schema}.tickets AS t
    WHERE t.deleted_seq = -1 AND t.sla_sweep_at IS NOT NULL AND t.sla_sweep_at <= p_now
    ORDER BY t.sla_sweep_at
    LIMIT p_limit
$fn$
"""


def _previous_function() -> str:
    return str(load("0005_create_ticket_function.py").FUNCTION)


def _set_index(name: str, column: str, *columns: str) -> None:
    where = sa.text(f"deleted_seq = -1 AND {column} IS NOT NULL")
    op.create_index(
        name,
        "tickets",
        ["tenant_id", column, *columns, "id_serial"],
        postgresql_where=where,
        sqlite_where=where,
    )


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("queue_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("assignee", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("sla", JSON, nullable=True))
        for column in ("sla_due_at", "sla_breach_at", "sla_sweep_at"):
            batch_op.add_column(sa.Column(column, sa.DateTime(timezone=True), nullable=True))
    for column in ("priority", "queue_id", "assignee"):
        _set_index(f"ix_tickets_tenant_{column}", column, "created_at")
    for column in ("sla_due_at", "sla_breach_at"):
        _set_index(f"ix_tickets_tenant_{column}", column)
    sweep_where = sa.text("deleted_seq = -1 AND sla_sweep_at IS NOT NULL")
    op.create_index(
        "ix_tickets_sla_sweep_at",
        "tickets",
        ["sla_sweep_at"],
        postgresql_where=sweep_where,
        sqlite_where=sweep_where,
    )

    op.create_table(
        "tenant_desks",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_desks_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_desks")),
    )
    op.create_table(
        "queue_members",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("queue_id", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.String(length=320), nullable=False),
        sa.Column("availability", sa.String(length=20), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_queue_members_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "queue_id", "user_id", name=op.f("pk_queue_members")),
    )

    if op.get_bind().dialect.name != "postgresql":
        return
    for table in NEW_TABLES:
        match = f"tenant_id = {CURRENT_TENANT}"
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {POLICY} ON {table} USING ({match}) WITH CHECK ({match})")
    op.execute(f"DROP FUNCTION ticketing_create_ticket({OLD_SIGNATURE})")
    op.execute(CREATE_FUNCTION)
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    op.execute(SWEEP_FUNCTION.format(schema=schema))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ticketing_sla_sweep_candidates(timestamptz, integer)")
        op.execute(f"DROP FUNCTION ticketing_create_ticket({NEW_SIGNATURE})")
        op.execute(_previous_function())
    op.drop_table("queue_members")
    op.drop_table("tenant_desks")
    op.drop_index("ix_tickets_sla_sweep_at", table_name="tickets")
    for column in ("sla_breach_at", "sla_due_at", "assignee", "queue_id", "priority"):
        op.drop_index(f"ix_tickets_tenant_{column}", table_name="tickets")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        for column in (
            "sla_sweep_at",
            "sla_breach_at",
            "sla_due_at",
            "sla",
            "assignee",
            "queue_id",
            "priority",
        ):
            batch_op.drop_column(column)
