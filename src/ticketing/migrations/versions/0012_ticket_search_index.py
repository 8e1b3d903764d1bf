"""trigram index for the list's search

The list's `search` matches, case-insensitively and anywhere in the text, the summary, the
display ID and the values of the text, textarea and rich-text fields. Written as
`lower(x) LIKE '%needle%'` over each of them, it read every ticket of the tenant (about a
second with 100,000 tickets). `ticketing_search_text` joins those texts, lowercased as the
search lowercases them, into one: the summary, the display ID and the JSON text of the
values of `data` but the five keys the service adds itself (so whatever fields a tenant's
types have). A pg_trgm GIN index over it finds the few tickets whose joined text contains
the needle, and the search's own conditions are then checked on those only. Whenever a
value contains the needle, its JSON text does too, unless the needle has a character that
JSON escapes (a double quote, a backslash, a control character): such searches do not ask
the index (ticketing.tickets.filters), so the index never loses a match.

The function is a plain expression, so PostgreSQL inlines it in the index and in queries
alike. On PostgreSQL only (pg_trgm is a trusted extension: the database's owner may create
it); SQLite keeps scanning.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The unit separator between the texts, so that a needle rarely spans two of them (one
# that does is only a candidate the search's own conditions then turn down). `data` that
# is not an object (never written, but no write may fail on this) adds nothing.
FUNCTION = r"""
CREATE FUNCTION ticketing_search_text(p_summary text, p_object_id text, p_data jsonb)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $fn$
    SELECT coalesce(lower(p_summary), '') || E'\x1f' || coalesce(lower(p_object_id), '')
        || E'\x1f' || coalesce(lower(jsonb_path_query_array(
            CASE WHEN jsonb_typeof(p_data) = 'object' THEN p_data - ARRAY['offerId',
                'ccWatchers', 'toWatchers', 'submittedBy', 'lastUpdatedBy'] END,
            '$.*')::text), '')
$fn$
"""

INDEX = """
CREATE INDEX ix_tickets_search ON tickets
USING gin (ticketing_search_text(summary, object_id, data) gin_trgm_ops)
WHERE deleted_seq = -1
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(FUNCTION)
        op.execute(INDEX)


def downgrade() -> None:
    # pg_trgm stays: other schemas of the database may use it.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_tickets_search")
        op.execute("DROP FUNCTION ticketing_search_text(text, text, jsonb)")
