"""Times each portal page with 100,000 tickets in the tenant (PostgreSQL): server time as the
page's own Server-Timing header reports it, and the round trip on loopback.

Usage: python bench/portal_bench.py [--tickets N] [--requests N]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEV_ISSUER,
    RESULTS,
    Cluster,
    add_server_arguments,
    machine,
    open_cluster,
    percentile,
    start_server,
    ticketing,
)
from list_bench import load_tickets

from ticketing.demo import DEMO_CONFIG, DEMO_TENANT

TITLE = "ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")
WARM_UP = 5
CAPTION = re.compile(r"<caption>(\d+) tickets?</caption>")
# What the search looks at in the demo tenant: summary, display ID, its text fields.
SEARCHED = (
    "summary",
    "object_id",
    f"data ->> '{TITLE}'",
    "data ->> '7f111983-1013-41be-a056-989fff018bb5'",
)


def signed_in(base: str, user: str) -> tuple[httpx.Client, str]:
    """A client signed in to the portal as a demo user, and its CSRF token."""
    client = httpx.Client(base_url=base, timeout=60)
    page = client.get("/portal/sign-in")
    csrf = CSRF.search(page.text)
    assert csrf, page.text[:500]
    done = client.post("/portal/sign-in", data={"csrf_token": csrf.group(1), "user": user})
    assert done.status_code == 303, done.text[:500]
    page = client.get("/portal/catalog")
    token = CSRF.search(page.text)
    assert token
    return client, token.group(1)


def time_page(request: Callable[[], httpx.Response], expected: int, n: int) -> dict[str, float]:
    server_ms: list[float] = []
    round_trip_ms: list[float] = []
    for i in range(n + WARM_UP):
        started = time.perf_counter()
        response = request()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != expected:
            raise SystemExit(f"{response.request.url} answered {response.status_code}")
        timing = SERVER_TIMING.search(response.headers.get("server-timing", ""))
        assert timing, response.headers
        if i >= WARM_UP:
            server_ms.append(float(timing.group(1)))
            round_trip_ms.append(elapsed)
    return {
        "requests": n,
        "server_p50_ms": round(percentile(server_ms, 50), 2),
        "server_p95_ms": round(percentile(server_ms, 95), 2),
        "server_p99_ms": round(percentile(server_ms, 99), 2),
        "round_trip_p50_ms": round(percentile(round_trip_ms, 50), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--keep", action="store_true", help="keep the database afterwards (--server machine)"
    )
    add_server_arguments(parser, "ticketing_bench_portal")
    args = parser.parse_args()
    if args.keep and args.server != "machine":
        parser.error("--keep needs --server machine: a throwaway cluster is removed")
    with open_cluster(args.server) as cluster:
        cluster_line = cluster.describe()
        print(cluster_line, flush=True)
        try:
            run(args, cluster, cluster_line)
        finally:
            if not args.keep:
                cluster.drop_database(args.database)


def run(args: argparse.Namespace, cluster: Cluster, cluster_line: str) -> None:
    db_name = args.database
    url = cluster.fresh_database(db_name)
    data_dir = Path(tempfile.mkdtemp(prefix="ticketing-bench-portal-"))
    env = {
        "TICKETING_DATABASE_URL": url,
        "TICKETING_DATA_DIR": str(data_dir),
        "TICKETING_DEV_ISSUER_URL": DEV_ISSUER,
        "TICKETING_LOG_LEVEL": "warning",
        # The demo users sign in with one click, as under `ticketing demo`.
        "TICKETING_DEV_SIGN_IN": "true",
    }
    ticketing("migrate", env=env)
    ticketing("load", str(DEMO_CONFIG), env=env)
    print(f"loading {args.tickets:,} tickets ...", flush=True)
    # In the demo's queue, a third each assigned to its two agents, a third unassigned, so
    # that the assignee filter selects tickets the portal offers it for.
    load_seconds = load_tickets(
        cluster,
        db_name,
        DEMO_TENANT,
        args.tickets,
        queue="l1",
        assignees=("agent@example.com", "admin@example.com", None),
    )
    # One in a thousand is the demo requester's, for "My tickets".
    cluster.psql(
        "UPDATE tickets SET submitted_by = 'user@example.com' WHERE id_serial % 1000 = 0",
        db_name,
    )
    print(f"loaded in {load_seconds:.1f} s", flush=True)
    process, base = start_server(env, workers=1, log=data_dir / "server.log")
    results: dict[str, dict[str, float]] = {}
    try:
        agent, agent_csrf = signed_in(base, "agent")
        requester, requester_csrf = signed_in(base, "requester")
        filed = requester.post(
            "/portal/offers/23629/new",
            data={
                "csrf_token": requester_csrf,
                "team": "james",
                "summary": "Benchmark ticket",
                f"f-{TITLE}": "A laptop",
            },
        )
        assert filed.status_code == 303, filed.text[:500]
        object_id = filed.headers["location"].split("/portal/tickets/")[1].split("?")[0]
        commented = agent.post(
            f"/portal/tickets/{object_id}/comments",
            data={"csrf_token": agent_csrf, "body": "On its way."},
        )
        assert commented.status_code == 303
        middle = f"CTC-{args.tickets // 2:04d}"
        anonymous = httpx.Client(base_url=base, timeout=60)
        cases: dict[str, tuple[Callable[[], httpx.Response], int]] = {
            "sign-in page": (lambda: anonymous.get("/portal/sign-in"), 200),
            "catalog": (lambda: requester.get("/portal/catalog"), 200),
            "catalog search": (lambda: requester.get("/portal/catalog?q=laptop"), 200),
            "request form": (lambda: requester.get("/portal/offers/23629/new"), 200),
            "request form, refused (field error)": (
                lambda: requester.post(
                    "/portal/offers/23629/new",
                    data={"csrf_token": requester_csrf, "team": "james", "summary": "x"},
                ),
                400,
            ),
            "my tickets": (lambda: requester.get("/portal/my-tickets"), 200),
            "ticket page (requester)": (lambda: requester.get(f"/portal/tickets/{object_id}"), 200),
            "queue (newest first)": (lambda: agent.get("/portal/queue"), 200),
            "queue (status = In Progress)": (
                lambda: agent.get("/portal/queue?status=In+Progress"),
                200,
            ),
            "queue (search)": (lambda: agent.get("/portal/queue?q=laptop+4711"), 200),
            "queue (priority = high)": (lambda: agent.get("/portal/queue?priority=high"), 200),
            "queue (assignee)": (
                lambda: agent.get("/portal/queue?assignee=agent%40example.com"),
                200,
            ),
            "queue (SLA due today)": (lambda: agent.get("/portal/queue?sla=due-today"), 200),
            "queue (SLA overdue)": (lambda: agent.get("/portal/queue?sla=overdue"), 200),
            "queue (SLA breached)": (lambda: agent.get("/portal/queue?sla=breached"), 200),
            "queue (page 100, by ID)": (
                lambda: agent.get("/portal/queue?sort=objectId&order=ASC&page=100"),
                200,
            ),
            "ticket page (agent)": (lambda: agent.get(f"/portal/tickets/{middle}"), 200),
        }
        # The filtered queues list what the database holds for their conditions.
        listed = f"tenant_id = '{DEMO_TENANT}' AND deleted_seq = -1 AND moved_to IS NULL"
        needle = "'%laptop 4711%'"
        counted = {
            "queue (search)": f"({' OR '.join(f'lower({c}) LIKE {needle}' for c in SEARCHED)})",
            "queue (priority = high)": "priority = 'high'",
            "queue (assignee)": "assignee = 'agent@example.com'",
        }
        for name, (request, expected) in cases.items():
            results[name] = time_page(request, expected, args.requests)
            if name in counted:
                where = f"{listed} AND {counted[name]}"
                total = int(cluster.psql(f"SELECT count(*) FROM tickets WHERE {where}", db_name))
                shown = CAPTION.search(request().text)
                assert shown and int(shown.group(1)) == total, (name, shown, total)
                results[name]["tickets"] = total
            print(f"{name}: {results[name]}", flush=True)
    finally:
        process.terminate()
        process.wait()
    header = [
        f"Portal, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, one server process, "
        f"{args.tickets:,} tickets in the demo tenant, loaded in {load_seconds:.0f} s",
        cluster_line,
        f"{args.requests} sequential requests per page after {WARM_UP} unmeasured ones; server "
        "time is the page's own Server-Timing",
    ]
    lines = [
        f"| page, {args.tickets:,} tickets | server p50 ms | p95 ms | p99 ms | round trip p50 ms |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['server_p50_ms']} | {r['server_p95_ms']} | {r['server_p99_ms']} "
            f"| {r['round_trip_p50_ms']} |"
        )
    print("\n" + "\n".join(header) + "\n\n" + "\n".join(lines))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "cluster": cluster_line,
        "tickets": args.tickets,
        "results": results,
        "table": header + lines,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "portal.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
