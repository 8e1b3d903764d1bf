"""create-ticket function (PostgreSQL)

The whole create in one call: it takes the request's tenant for its own transaction (the
row-level security setting, ticketing.kit.tenancy), so a create needs no round trip to give
its connection the tenant first, then checks the tenant's configuration version, bumps the
display-ID and bookkeeping counters, inserts the ticket and its history entry, and links the
pending idempotency key, as one statement: the counter locks are held only while it runs and
commits. It runs with the caller's rights, under the same policies.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION ticketing_create_ticket(
    p_scope text, p_tenant_id uuid, p_config_version integer, p_names text[],
    p_deltas bigint[], p_id uuid, p_display_prefix text, p_team_id text, p_item_type_id text,
    p_offer_id text, p_source text, p_summary text, p_data jsonb, p_attachments jsonb,
    p_ticket_relation jsonb, p_etag uuid, p_version integer, p_status_type text,
    p_status_category text, p_submitted_by text, p_is_support_request boolean,
    p_created_at timestamptz, p_changed_by jsonb, p_changes jsonb, p_idempotency_caller text,
    p_idempotency_key text)
RETURNS TABLE (new_number bigint, new_serial bigint)
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
    ), ticket AS (
        INSERT INTO tickets (tenant_id, id, object_id, display_prefix, display_number,
            team_id, item_type_id, offer_id, source, summary, data, attachments,
            ticket_relation, etag, version, status_type, status_category, moved_to,
            deleted_seq, submitted_by, is_support_request, created_at, updated_at)
        SELECT p_tenant_id, p_id,
            n.prefix || '-'
                || lpad(n.last_value::text, greatest(4, length(n.last_value::text)), '0'),
            n.prefix, n.last_value, p_team_id, p_item_type_id, p_offer_id, p_source,
            p_summary, p_data, p_attachments, p_ticket_relation, p_etag, p_version,
            p_status_type, p_status_category, NULL, -1, p_submitted_by, p_is_support_request,
            p_created_at, p_created_at
        FROM counters AS n WHERE n.prefix = p_display_prefix
        RETURNING tickets.id, tickets.id_serial, tickets.display_number
    ), history AS (
        INSERT INTO ticket_history (tenant_id, ticket_id, version, action, changed_at,
            changed_by, changes)
        SELECT p_tenant_id, t.id, p_version, 'create', p_created_at, p_changed_by, p_changes
        FROM ticket AS t
    ), idempotency AS (
        UPDATE idempotency_keys AS k SET ticket_id = t.id FROM ticket AS t
        WHERE k.tenant_id = p_tenant_id AND k.caller = p_idempotency_caller
            AND k.key = p_idempotency_key
    )
    SELECT t.display_number, t.id_serial FROM ticket AS t;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION ticketing_create_ticket(text, uuid, integer, text[], bigint[], uuid, "
        "text, text, text, text, text, text, jsonb, jsonb, jsonb, uuid, integer, text, text, "
        "text, boolean, timestamptz, jsonb, jsonb, text, text)"
    )
