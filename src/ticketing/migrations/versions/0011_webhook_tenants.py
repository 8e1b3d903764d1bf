"""which tenants have active webhooks, in one call

The delivery worker of every process makes deliveries from the events it reads. It asked
each tenant of a batch for its webhooks in a transaction of its own, also the tenants that
have none (most of them), which under steady creates of many tenants cost the database a
transaction per tenant per batch. `ticketing_webhook_tenants` answers for the whole batch:
it sees every tenant's webhooks, so it runs with the rights of the tables' owner, like the
outbox reader's functions of migration 0009, and returns tenant ids only.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION ticketing_webhook_tenants(p_tenants uuid[]) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT
AS $fn$
    SELECT DISTINCT w.tenant_id FROM webhooks AS w
    WHERE w.active AND w.tenant_id = ANY (p_tenants)
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ticketing_webhook_tenants(uuid[])")
