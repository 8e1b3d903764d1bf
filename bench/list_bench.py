"""Loads 1,000,000 tickets into PostgreSQL and times the list endpoint (default and filtered).

Usage: python bench/list_bench.py [--tickets N] [--requests N] [--keep]
                                  [--server throwaway|machine] [--database NAME]
The tickets' creation times and submitters are shuffled against their insertion order, as
in a real table, so no filter is answered by reading the table in the order it was written.
The totals of the unfiltered list and of status-only filters come from the tenant's
counters; every other total is counted from the indexes: the table says which is which.
A smoke run: --tickets 20000 --requests 20.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEV_ISSUER,
    RESULTS,
    Cluster,
    add_server_arguments,
    machine,
    new_tenant_id,
    open_cluster,
    percentile,
    start_server,
    tenant_config,
    ticketing,
)

from ticketing.sla import clocks
from ticketing.sla.calendar import WALL_CLOCK
from ticketing.sla.policy import SlaPolicy

LOAD_START = datetime(2025, 1, 1, tzinfo=UTC)
STATUSES = ["Open", "In Progress", "Resolved", "Closed"]
CATEGORIES = ["To-do Category", "In-Progress Category", "Done Category", "Done Category"]


def _sla_state() -> str:
    """One ticket's SLA state, as the engine writes it (every row gets the same)."""
    policy = SlaPolicy(
        id="sla-001",
        name="Standard SLA",
        response_minutes={"critical": 30, "high": 60, "medium": 240, "low": 480},
        resolution_minutes={"critical": 240, "high": 480, "medium": 1440, "low": 2880},
        business_hours_only=False,
    )
    state = clocks.start(policy, priority="high", at=datetime.now(UTC), calendar=WALL_CLOCK)
    return json.dumps(state).replace("'", "''")


def load_tickets(cluster: Cluster, database: str, tenant_id: str, count: int) -> float:
    """Inserts `count` tickets in one statement, sets the counters, analyses; returns seconds.

    Ticket i (its id_serial, and the order rows are written in) gets the creation time of
    rank c in a fixed pseudo-random permutation (3 s apart from 2025-01-01) and one of 1,000
    submitters picked by a hash of i; statuses cycle through the four.
    """
    started = time.perf_counter()
    sla_state = _sla_state()
    cluster.psql(
        f"""
        INSERT INTO tickets (tenant_id, id, id_serial, object_id, display_prefix, display_number,
            team_id, item_type_id, offer_id, source, summary, data, attachments, ticket_relation,
            etag, version, status_type, status_category, moved_to, deleted_seq, submitted_by,
            is_support_request, created_at, updated_at, priority, queue_id, assignee, sla,
            sla_due_at, sla_breach_at, sla_sweep_at)
        SELECT '{tenant_id}'::uuid, gen_random_uuid(), i,
            'CTC-' || CASE WHEN i < 10000 THEN lpad(i::text, 4, '0') ELSE i::text END,
            'CTC', i, 'james', '16910', '23629', 'api', 'Hardware request ' || i,
            jsonb_build_object(
                'ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53', 'Need a replacement laptop ' || i,
                '7f111983-1013-41be-a056-989fff018bb5', '<p>Battery ' || i || '</p>',
                '711ea9e6-1b73-4070-9eb2-941803f7f5d4', '<2week',
                'offerId', '23629', 'ccWatchers', '[]'::jsonb, 'toWatchers', '[]'::jsonb,
                'submittedBy', 'user' || s || '@example.com',
                'lastUpdatedBy', jsonb_build_object('lastName', 'Doe', 'firstName', 'Jane',
                    'username', 'user' || s || '@example.com')),
            '{{}}'::jsonb, NULL, gen_random_uuid(), 2,
            (ARRAY{STATUSES!r})[1 + i % 4], (ARRAY{CATEGORIES!r})[1 + i % 4],
            NULL, -1, 'user' || s || '@example.com', false,
            timestamptz '{LOAD_START.isoformat()}' + make_interval(secs => c * 3),
            timestamptz '{LOAD_START.isoformat()}' + make_interval(secs => c * 3),
            (ARRAY['critical', 'high', 'medium', 'low'])[1 + (i / 4) % 4], '33654',
            'agent' || (i % 40) || '@example.com', '{sla_state}'::jsonb,
            -- Open and In Progress tickets have running clocks, due from 5 hours ago to
            -- about a week ahead (3% overdue); of the done ones, 4% were met late.
            CASE WHEN i % 4 < 2 THEN now() + make_interval(mins => (i % 10000) - 300) END,
            CASE WHEN i % 4 < 2 THEN now() + make_interval(mins => (i % 10000) - 300)
                WHEN i % 50 IN (2, 3) THEN timestamptz '2025-01-02' + make_interval(secs => i * 3)
            END,
            CASE WHEN i % 4 < 2 AND i % 10000 >= 300
                THEN now() + make_interval(mins => (i % 10000) - 300) END
        FROM (
            SELECT i, row_number() OVER (ORDER BY md5('created ' || i)) AS c,
                abs(hashtext('submitter ' || i)) % 1000 AS s
            FROM generate_series(1, {count}) AS i
        ) AS shuffled
        ORDER BY i;
        INSERT INTO display_id_counters (tenant_id, prefix, last_value)
            VALUES ('{tenant_id}'::uuid, 'CTC', {count});
        INSERT INTO display_id_counters (tenant_id, prefix, last_value)
            SELECT '{tenant_id}'::uuid, '#status:' || status_type, count(*)
            FROM tickets GROUP BY status_type;
        SELECT setval(pg_get_serial_sequence('tickets', 'id_serial'), {count});
        """,
        database,
    )
    cluster.psql("VACUUM ANALYZE tickets", database)
    return time.perf_counter() - started


def time_requests(
    client: httpx.Client, url: str, headers: dict[str, str], body: dict, n: int
) -> dict:
    latencies = []
    for i in range(n + 10):
        started = time.perf_counter()
        response = client.post(url, headers=headers, json=body)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"list answered {response.status_code}: {response.text[:500]}")
        if i >= 10:  # warm-up
            latencies.append(elapsed)
    data = response.json()["data"]
    return {
        "requests": n,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "rows": len(data["value"]),
        "count": data["count"],
    }


def created_at(tickets: int, share: float) -> str:
    """The creation time below which `share` of the loaded tickets lie."""
    moment = LOAD_START + timedelta(seconds=3 * round(share * tickets))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def cases(tickets: int) -> dict[str, tuple[dict[str, Any], str]]:
    """Query name -> (list request body, where its total comes from)."""
    submitter = {"column": "submittedBy", "op": "EQ", "operand": "user7@example.com"}
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + timedelta(days=1)
    return {
        "default (newest first, top 30)": ({}, "counters (#status:*)"),
        "status = In Progress (newest first, top 30)": (
            {
                "filter": {
                    "op": "AND",
                    "operand": [{"column": "status", "op": "EQ", "operand": "In Progress"}],
                }
            },
            "counter (#status)",
        ),
        "submittedBy = one of 1,000 submitters": ({"filter": submitter}, "counted from the index"),
        "submittedBy + createdAt in the newest 45%": (
            {
                "filter": {
                    "op": "AND",
                    "operand": [
                        submitter,
                        {"column": "createdAt", "op": "GE", "operand": created_at(tickets, 0.55)},
                    ],
                }
            },
            "counted from the index",
        ),
        "status = Open + createdAt in the newest tenth": (
            {
                "filter": {
                    "op": "AND",
                    "operand": [
                        {"column": "status", "op": "EQ", "operand": "Open"},
                        {"column": "createdAt", "op": "GE", "operand": created_at(tickets, 0.9)},
                    ],
                }
            },
            "counted from the index",
        ),
        "createdAt in the older half": (
            {"filter": {"column": "createdAt", "op": "LT", "operand": created_at(tickets, 0.5)}},
            "counted from the index",
        ),
        # The product's menu views over SLAs.
        "Due Today (slaDueAt within today, UTC)": (
            {
                "filter": {
                    "op": "AND",
                    "operand": [
                        {"column": "slaDueAt", "op": "GE", "operand": today.isoformat()},
                        {"column": "slaDueAt", "op": "LT", "operand": tomorrow.isoformat()},
                    ],
                }
            },
            "counted from the index",
        ),
        "Overdue (slaDueAt before now)": (
            {"filter": {"column": "slaDueAt", "op": "LT", "operand": now.isoformat()}},
            "counted from the index",
        ),
        "SLA Breached (slaBreached = true)": (
            {"filter": {"column": "slaBreached", "op": "EQ", "operand": True}},
            "counted from the index",
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--keep", action="store_true", help="keep the database afterwards (--server machine)"
    )
    add_server_arguments(parser, "ticketing_bench_list")
    args = parser.parse_args()
    if args.keep and args.server != "machine":
        parser.error("--keep needs --server machine: a throwaway cluster is removed")

    started = time.monotonic()
    with open_cluster(args.server) as cluster:
        cluster_line = cluster.describe()
        print(cluster_line, flush=True)
        try:
            results, load_seconds = run(args, cluster)
        finally:
            if not args.keep:
                cluster.drop_database(args.database)

    header = [
        f"List, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, one server process, "
        f"{args.tickets:,} tickets of one tenant (creation times and submitters shuffled "
        f"against insertion order), loaded in {load_seconds:.0f} s",
        cluster_line,
        f"{args.requests} sequential calls per query after 10 unmeasured ones; totals of the "
        "unfiltered list and of status-only filters come from the tenant's counters, every "
        "other total is counted from the indexes",
    ]
    lines = [
        "| query | p50 ms | p95 ms | p99 ms | total | total from |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['count']:,} "
            f"| {r['count_from']} |"
        )
    print("\n" + "\n".join(header) + "\n\n" + "\n".join(lines))
    print(f"\nwall time {time.monotonic() - started:.0f} s")
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "cluster": cluster_line,
        "tickets": args.tickets,
        "load_seconds": round(load_seconds, 1),
        "results": results,
        "table": header + lines,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "list.json").write_text(json.dumps(report, indent=2) + "\n")


def run(args: argparse.Namespace, cluster: Cluster) -> tuple[dict[str, Any], float]:
    url = cluster.fresh_database(args.database)
    data_dir = Path(tempfile.mkdtemp(prefix="ticketing-bench-list-"))
    env = {
        "TICKETING_DATABASE_URL": url,
        "TICKETING_DATA_DIR": str(data_dir),
        "TICKETING_DEV_ISSUER_URL": DEV_ISSUER,
    }
    ticketing("migrate", env=env)
    tenant_id, realm = new_tenant_id(), "bench"
    config = data_dir / "tenant.json"
    config.write_text(json.dumps({"tenants": [tenant_config(tenant_id, realm)]}))
    ticketing("load", str(config), env=env)
    print(f"loading {args.tickets:,} tickets ...", flush=True)
    load_seconds = load_tickets(cluster, args.database, tenant_id, args.tickets)
    print(f"loaded in {load_seconds:.1f} s", flush=True)
    token = ticketing(
        "token",
        "--tenant",
        tenant_id,
        "--realm",
        realm,
        "--user",
        "agent@example.com",
        "--roles",
        "ticket_agent",
        "--ttl",
        "7200",
        env=env,
    ).strip()
    process, base = start_server(env, workers=1, log=data_dir / "server.log")
    headers = {
        "authorization": f"Bearer {token}",
        "x-tenantid": tenant_id,
        "realmname": realm,
        "content-type": "application/json",
    }
    list_url = f"{base}/api/v2/ticketing/ticket/list?type=agent&module=ticketing"
    results = {}
    try:
        with httpx.Client(timeout=60) as client:
            for name, (body, count_from) in cases(args.tickets).items():
                results[name] = {
                    **time_requests(client, list_url, headers, body, args.requests),
                    "count_from": count_from,
                }
                print(f"{name}: {results[name]}", flush=True)
    finally:
        process.terminate()
        process.wait()
    shutil.rmtree(data_dir)
    return results, load_seconds


if __name__ == "__main__":
    main()
