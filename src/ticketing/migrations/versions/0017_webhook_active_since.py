"""webhooks record since when they are active; deliveries of retired ones are not claimed

A webhook receives the events that happen while it is active. `webhooks.active_since` is
when it was last created or activated (set by the configuration loader; NULL for webhooks
loaded before this migration, whose start is not known: they take every event, as before).
The worker makes no delivery of an event from before it, also when a restarted worker makes
the deliveries of the events it may have missed.

`ticketing_claim_deliveries` (migration 0009) took due deliveries whatever their webhook's
state, so a webhook retired with `active: false` kept being posted its pending deliveries
for up to 24 hours. It now takes only deliveries of active webhooks (the loader marks a
retired webhook's pending deliveries failed; one made in the moment of retiring waits).

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLAIM = """
CREATE OR REPLACE FUNCTION ticketing_claim_deliveries(
    p_limit integer, p_lease_seconds double precision)
RETURNS TABLE (tenant_id uuid, webhook_id text, event_id bigint, kind text, body text,
    attempts integer, created_at timestamptz, url text, secret text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path FROM CURRENT
AS $fn$
    UPDATE webhook_deliveries AS d
    SET next_attempt_at = now() + make_interval(secs => p_lease_seconds)
    FROM (
        SELECT c.tenant_id, c.webhook_id, c.event_id FROM webhook_deliveries AS c
        JOIN webhooks AS a ON a.tenant_id = c.tenant_id AND a.id = c.webhook_id AND a.active
        WHERE c.status = 'pending' AND c.next_attempt_at <= now()
        ORDER BY c.next_attempt_at LIMIT p_limit
        FOR UPDATE OF c SKIP LOCKED
    ) AS due, webhooks AS w
    WHERE d.tenant_id = due.tenant_id AND d.webhook_id = due.webhook_id
        AND d.event_id = due.event_id AND w.tenant_id = d.tenant_id AND w.id = d.webhook_id
    RETURNING d.tenant_id, d.webhook_id, d.event_id, d.kind, d.body, d.attempts, d.created_at,
        w.url, w.secret
$fn$
"""

# Migration 0009's function, for the downgrade.
CLAIM_0009 = """
CREATE OR REPLACE FUNCTION ticketing_claim_deliveries(
    p_limit integer, p_lease_seconds double precision)
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
$fn$
"""


def upgrade() -> None:
    op.add_column("webhooks", sa.Column("active_since", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CLAIM)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CLAIM_0009)
    # In place (SQLite 3.35+ drops a column itself): copying the table, as a batch operation
    # does, would drop the old one and with it, by cascade, every delivery.
    op.drop_column("webhooks", "active_since")
