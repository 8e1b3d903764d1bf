"""the realms of the configured tenants, in one call

With an identity provider (`TICKETING_OIDC_BASE_URL`), a token's issuer names a realm, and
the service fetches that realm's discovery document and keys the first time it sees it. A
caller could make it fetch any realm by naming one. The verifier now fetches only realms of
tenants the database holds; `ticketing_tenant_realms` lists them for a request that has no
verified tenant yet, so it runs with the rights of the tables' owner (like the outbox
reader's functions of migration 0009) and returns realm names only.

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION ticketing_tenant_realms() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT
AS $fn$
    SELECT DISTINCT t.realm FROM tenants AS t
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ticketing_tenant_realms()")
