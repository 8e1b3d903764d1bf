-- The database work of one create, as the service does it on PostgreSQL: one statement in
-- autocommit mode that checks the tenant's configuration version, bumps the display-ID and
-- bookkeeping counters (locking them), and inserts the ticket and its history entry.
-- Tenant ids are md5('bench-tenant-' || n) for n in 1..:tenants, as create_bench.py loads them.
-- Like the service, it runs as the role bound by the tenant row-level security policies
-- (PGOPTIONS from create_bench.py) and sets the tenant on its connection only when the
-- connection does not hold that tenant already (`held`, per client, starts at 0).
\set n random(1, :tenants)
\if :held != :n
SELECT set_config('ticketing.tenant_id', md5('bench-tenant-' || (:n)::text)::uuid::text, false);
\set held :n
\endif
WITH guard AS (
    SELECT 1 FROM tenants
    WHERE id = md5('bench-tenant-' || (:n)::text)::uuid AND config_version = 1
), counters AS (
    INSERT INTO display_id_counters AS c (tenant_id, prefix, last_value)
    SELECT md5('bench-tenant-' || (:n)::text)::uuid, u.name, u.delta
    FROM guard, unnest(ARRAY['#live', '#status' || chr(58) || 'Open', 'CTC'], ARRAY[1, 1, 1]::bigint[]) AS u(name, delta)
    ORDER BY u.name
    ON CONFLICT (tenant_id, prefix) DO UPDATE SET last_value = c.last_value + excluded.last_value
    RETURNING c.prefix, c.last_value
), ticket AS (
    INSERT INTO tickets (tenant_id, id, object_id, display_prefix, display_number, team_id,
        item_type_id, offer_id, source, summary, data, attachments, ticket_relation, etag,
        version, status_type, status_category, moved_to, deleted_seq, submitted_by,
        is_support_request, created_at, updated_at)
    SELECT md5('bench-tenant-' || (:n)::text)::uuid, gen_random_uuid(),
        n.prefix || '-' || lpad(n.last_value::text, greatest(4, length(n.last_value::text)), '0'),
        n.prefix, n.last_value, 'james', '16910', '23629', 'api', 'Hardware request - new laptop',
        '{"ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53": "Need a replacement laptop", "7f111983-1013-41be-a056-989fff018bb5": "<p>Current laptop battery no longer holds charge.</p>", "711ea9e6-1b73-4070-9eb2-941803f7f5d4": "<2week", "offerId": "23629", "ccWatchers": [], "toWatchers": [], "submittedBy": "user@example.com", "lastUpdatedBy": {"lastName": "Doe", "username": "user@example.com", "firstName": "Jane"}}'::jsonb,
        '{}'::jsonb, NULL, gen_random_uuid(), 2, 'Open', 'To-do Category', NULL,
        -1, 'user@example.com', false, now(), now()
    FROM counters AS n WHERE n.prefix = 'CTC'
    RETURNING id, id_serial, display_number
), history AS (
    INSERT INTO ticket_history (tenant_id, ticket_id, version, action, changed_at, changed_by,
        changes)
    SELECT md5('bench-tenant-' || (:n)::text)::uuid, t.id, 2, 'create', now(),
        '{"username": "user@example.com", "email": "user@example.com", "firstName": "Jane", "lastName": "Doe"}'::jsonb,
        '[{"field": "summary", "old": null, "new": "Hardware request - new laptop"}, {"field": "status", "old": null, "new": "Open"}, {"field": "ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53", "old": null, "new": "Need a replacement laptop"}, {"field": "7f111983-1013-41be-a056-989fff018bb5", "old": null, "new": "<p>Current laptop battery no longer holds charge.</p>"}, {"field": "711ea9e6-1b73-4070-9eb2-941803f7f5d4", "old": null, "new": "<2week"}, {"field": "offerId", "old": null, "new": "23629"}, {"field": "ccWatchers", "old": null, "new": []}, {"field": "toWatchers", "old": null, "new": []}]'::jsonb
    FROM ticket AS t
)
SELECT display_number, id_serial FROM ticket;
