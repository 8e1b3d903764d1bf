"""portal sessions, recorded server-side

The portal's cookie held the bearer token itself, so a cookie saved before sign-out kept
working until the token expired, and nothing could end a session early. A session is now a
row: the cookie holds only a random session id, the row (found by the id's SHA-256) holds the
token encrypted with a key derived from that id. Sign-out, a tenant admin
(`DELETE /api/v2/ticketing/sessions/{user}`) and the token's expiry end it. The table is
tenant-keyed, under the tenant row-level security policy like every other.

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "tenant_isolation"
CURRENT_TENANT = "NULLIF(current_setting('ticketing.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.create_table(
        "portal_sessions",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("realm", sa.String(length=200), nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("id_token", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_portal_sessions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_portal_sessions")),
    )
    op.create_index("ix_portal_sessions_username", "portal_sessions", ["tenant_id", "username"])
    op.create_index("ix_portal_sessions_email", "portal_sessions", ["tenant_id", "email"])
    op.create_index("ix_portal_sessions_expires_at", "portal_sessions", ["tenant_id", "expires_at"])
    if op.get_bind().dialect.name != "postgresql":
        return
    match = f"tenant_id = {CURRENT_TENANT}"
    op.execute("ALTER TABLE portal_sessions ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {POLICY} ON portal_sessions USING ({match}) WITH CHECK ({match})")


def downgrade() -> None:
    # The policy goes with its table.
    op.drop_table("portal_sessions")
