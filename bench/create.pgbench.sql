-- The database work of one create, as the service does it on PostgreSQL: one call of the
-- create function (migrations 0005 and 0008; no priority, queue or SLA clocks here) in autocommit mode, which takes the tenant for its own
-- transaction, checks the tenant's configuration version, bumps the display-ID and
-- bookkeeping counters (locking them), and inserts the ticket and its history entry.
-- Like the service, it runs as the role bound by the tenant row-level security policies
-- (PGOPTIONS from create_bench.py).
-- Tenant ids are md5('bench-tenant-' || n) for n in 1..:tenants, as create_bench.py loads them.
-- The ticket id is a version-7 UUID (the time in milliseconds, then random bits), as the
-- service makes it (ticketing.kit.ids.new_ordered_uuid): a random UUID's last 19 hex digits
-- (its variant digit among them) after the time and the version digit.
\set n random(1, :tenants)
SELECT new_number, new_serial FROM ticketing_create_ticket(md5('bench-tenant-' || (:n)::text)::uuid::text, md5('bench-tenant-' || (:n)::text)::uuid, 1, ARRAY['#status' || chr(58) || 'Open', 'CTC'], ARRAY[1, 1]::bigint[], (lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7' || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid, 'CTC', 'james', '16910', '23629', 'api', 'Hardware request - new laptop',
        '{"ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53": "Need a replacement laptop", "7f111983-1013-41be-a056-989fff018bb5": "<p>Current laptop battery no longer holds charge.</p>", "711ea9e6-1b73-4070-9eb2-941803f7f5d4": "<2week", "offerId": "23629", "ccWatchers": [], "toWatchers": [], "submittedBy": "user@example.com", "lastUpdatedBy": {"lastName": "Doe", "username": "user@example.com", "firstName": "Jane"}}'::jsonb,
        '{}'::jsonb, NULL, gen_random_uuid(), 2, 'Open', 'To-do Category', 'user@example.com', false, now(),
        '{"username": "user@example.com", "email": "user@example.com", "firstName": "Jane", "lastName": "Doe"}'::jsonb,
        '[{"field": "summary", "old": null, "new": "Hardware request - new laptop"}, {"field": "status", "old": null, "new": "Open"}, {"field": "ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53", "old": null, "new": "Need a replacement laptop"}, {"field": "7f111983-1013-41be-a056-989fff018bb5", "old": null, "new": "<p>Current laptop battery no longer holds charge.</p>"}, {"field": "711ea9e6-1b73-4070-9eb2-941803f7f5d4", "old": null, "new": "<2week"}, {"field": "offerId", "old": null, "new": "23629"}, {"field": "ccWatchers", "old": null, "new": []}, {"field": "toWatchers", "old": null, "new": []}]'::jsonb,
        NULL, NULL,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL);
