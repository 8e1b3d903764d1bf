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

The service's role reads tickets under row-level security (migration 0004), and there
PostgreSQL uses an index for a condition only if its operator is leakproof, which LIKE is
not: asked directly, the index would be passed by. `ticketing_search_candidates(pattern,
limit)` asks it with the rights of the tables' owner, like the functions of migrations 0009
and 0011, for the tenant the transaction is bound to only (`ticketing.tenant_id`, as the
policies read it), and returns at most `limit` ticket ids. The list and count queries then
take the tickets among those ids, with their own conditions and the policies on top; a
needle with more candidates than the limit is common, and is answered as before (a page
read in sort order is found soon), so the index is asked only where it helps.

`ticketing_search_text` is a plain expression, so PostgreSQL inlines it in the index and in
queries alike. On PostgreSQL only (pg_trgm is a trusted extension: the database's owner may
create it); SQLite keeps scanning.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
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

CANDIDATES = """
CREATE FUNCTION ticketing_search_candidates(p_pattern text, p_limit integer) RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT
AS $fn$
    SELECT coalesce(array_agg(c.id), '{}') FROM (
        SELECT t.id FROM tickets AS t
        WHERE t.tenant_id = NULLIF(current_setting('ticketing.tenant_id', true), '')::uuid
            AND t.deleted_seq = -1
            AND ticketing_search_text(t.summary, t.object_id, t.data) LIKE p_pattern ESCAPE '/'
        LIMIT p_limit
    ) AS c
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
        op.execute(CANDIDATES)


def downgrade() -> None:
    # pg_trgm stays: other schemas of the database may use it.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ticketing_search_candidates(text, integer)")
        op.execute("DROP INDEX ix_tickets_search")
        op.execute("DROP FUNCTION ticketing_search_text(text, text, jsonb)")
