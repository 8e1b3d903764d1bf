-- The database work of one create, as the service does it: read the tenant's configuration
-- version, bump the display-ID and bookkeeping counters, insert the ticket and its history.
-- Tenant ids are md5('bench-tenant-' || n) for n in 1..:tenants, as create_bench.py loads them.
\set n random(1, :tenants)
BEGIN;
SELECT realm, config_version FROM tenants WHERE id = md5('bench-tenant-' || :n)::uuid;
WITH c AS (
  INSERT INTO display_id_counters (tenant_id, prefix, last_value)
  VALUES (md5('bench-tenant-' || :n)::uuid, '#live', 1),
         (md5('bench-tenant-' || :n)::uuid, '#status:Open', 1),
         (md5('bench-tenant-' || :n)::uuid, 'CTC', 1)
  ON CONFLICT (tenant_id, prefix) DO UPDATE
  SET last_value = display_id_counters.last_value + excluded.last_value
  RETURNING prefix, last_value)
SELECT last_value AS num FROM c WHERE prefix = 'CTC' \gset
INSERT INTO tickets (tenant_id, id, object_id, display_prefix, display_number, team_id,
  item_type_id, offer_id, source, summary, data, attachments, ticket_relation, etag, version,
  status_type, status_category, moved_to, deleted_seq, submitted_by, is_support_request,
  created_at, updated_at)
VALUES (md5('bench-tenant-' || :n)::uuid, gen_random_uuid(), 'CTC-' || lpad(:num::text, 4, '0'),
  'CTC', :num, 'james', '16910', '23629', 'api', 'Hardware request - new laptop',
  '{"ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53": "Need a replacement laptop", "7f111983-1013-41be-a056-989fff018bb5": "<p>Current laptop battery no longer holds charge.</p>", "711ea9e6-1b73-4070-9eb2-941803f7f5d4": "<2week", "offerId": "23629", "ccWatchers": [], "toWatchers": [], "submittedBy": "user@example.com", "lastUpdatedBy": {"lastName": "Doe", "username": "user@example.com", "firstName": "Jane"}}'::jsonb,
  '{}'::jsonb, NULL, gen_random_uuid(), 2, 'Open', 'To-do Category', NULL, -1,
  'user@example.com', false, now(), now())
RETURNING id AS ticket_id, id_serial \gset
INSERT INTO ticket_history (tenant_id, ticket_id, version, action, changed_at, changed_by, changes)
VALUES (md5('bench-tenant-' || :n)::uuid, :'ticket_id'::uuid, 2, 'create', now(),
  '{"username": "user@example.com", "email": "user@example.com", "firstName": "Jane", "lastName": "Doe"}'::jsonb,
  '[{"field": "summary", "old": null, "new": "Hardware request - new laptop"}, {"field": "status", "old": null, "new": "Open"}, {"field": "ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53", "old": null, "new": "Need a replacement laptop"}, {"field": "7f111983-1013-41be-a056-989fff018bb5", "old": null, "new": "<p>Current laptop battery no longer holds charge.</p>"}, {"field": "711ea9e6-1b73-4070-9eb2-941803f7f5d4", "old": null, "new": "<2week"}, {"field": "offerId", "old": null, "new": "23629"}, {"field": "ccWatchers", "old": null, "new": []}, {"field": "toWatchers", "old": null, "new": []}]'::jsonb);
COMMIT;
