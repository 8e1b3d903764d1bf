"""Sustained creates: minutes of one tenant's creates through one server process, throughput
per window, against pgbench sending the same statement in windows of the same run.

Usage: python bench/soak_bench.py [--duration 180] [--window 10] [--ceiling-every 3]
                                  [--ceiling-window 5] [--connections 16] [--workers 1]
                                  [--warmup 2]
                                  [--server throwaway|machine] [--database NAME]
Prints each window as it ends, then a table and the verdict on the two targets (every service
window at least 0.5 times the ceiling; none below 0.8 times the first); exits 1 when one is missed.
Writes bench/results/soak.json. A smoke run: --duration 20 --window 5 --ceiling-window 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    RESULTS,
    Cluster,
    add_server_arguments,
    cpu_seconds,
    machine,
    mint_tokens,
    open_cluster,
    prepare_create_tenants,
    run_pgbench,
    run_wrk,
    start_server,
    write_tokens_file,
)

CEILING_SHARE = 0.5  # every service window reaches at least this share of the ceiling
FIRST_SHARE = 0.8  # and at least this share of the first service window


def counter_table_state(cluster: Cluster, database: str) -> dict[str, int]:
    """Dead row versions and autovacuum passes of the table that holds the counter rows."""
    row = cluster.psql(
        "SELECT n_dead_tup, autovacuum_count FROM pg_stat_user_tables "
        "WHERE relname = 'display_id_counters'",
        database,
    ).strip()
    dead, autovacuums = (int(v) for v in row.split("|")) if row else (0, 0)
    return {"dead_tuples": dead, "autovacuums": autovacuums}


def soak(
    args: argparse.Namespace,
    cluster: Cluster,
    env: dict[str, str],
    tokens: Path,
    log: Path,
) -> list[dict[str, Any]]:
    windows: list[dict[str, Any]] = []
    process, base = start_server(env, workers=args.workers, log=log)
    try:
        if args.warmup:
            # The server's first requests open its connections and read the tenant: not
            # part of the reference the later windows are held to.
            run_wrk(base, tokens, args.connections, args.warmup)
        started = time.monotonic()
        for number in range(1, args.duration // args.window + 1):
            at = round(time.monotonic() - started)
            cpu_before = cpu_seconds(process.pid)
            result = run_wrk(base, tokens, args.connections, args.window)
            cpu = cpu_seconds(process.pid) - cpu_before
            windows.append(
                {
                    "kind": "service",
                    "at_s": at,
                    "seconds": args.window,
                    "rate": round(result["RPS"], 1),
                    "p50_ms": result["P50"],
                    "p99_ms": result["P99"],
                    "cpu_ms_per_create": round(1000 * cpu / max(1, result["REQUESTS"]), 2),
                    "non_200": int(result["NON200"]) + int(result["SOCKET_ERRORS"]),
                    **counter_table_state(cluster, args.database),
                }
            )
            report_window(windows[-1])
            if number % args.ceiling_every == 0:
                at = round(time.monotonic() - started)
                tps = run_pgbench(
                    cluster,
                    args.database,
                    tenants=1,
                    connections=args.connections,
                    seconds=args.ceiling_window,
                )
                windows.append(
                    {
                        "kind": "pgbench",
                        "at_s": at,
                        "seconds": args.ceiling_window,
                        "rate": round(tps, 1),
                        **counter_table_state(cluster, args.database),
                    }
                )
                report_window(windows[-1])
    finally:
        process.terminate()
        process.wait()
    return windows


def report_window(window: dict[str, Any]) -> None:
    unit = "req/s" if window["kind"] == "service" else "tps"
    extra = (
        f" p50 {window['p50_ms']:.1f} ms, p99 {window['p99_ms']:.1f} ms,"
        f" {window['cpu_ms_per_create']} ms CPU/create, {window['non_200']} non-200,"
        if window["kind"] == "service"
        else ""
    )
    print(
        f"{window['at_s']:>4} s {window['kind']:<8} {window['rate']:>8.1f} {unit}{extra}"
        f" counters: {window['dead_tuples']} dead, {window['autovacuums']} autovacuum(s)",
        flush=True,
    )


def judge(windows: list[dict[str, Any]]) -> tuple[list[str], list[str], bool]:
    """Gives every service window its ceiling (the mean of the pgbench windows just before and
    just after it) and its share of the first; returns the table, the verdict and whether both
    targets are met."""
    ceilings = [i for i, w in enumerate(windows) if w["kind"] == "pgbench"]
    services = [w for w in windows if w["kind"] == "service"]
    first = services[0]["rate"]
    lines = [
        "| from s | window | req/s or tps | p50 ms | p99 ms | Python CPU ms/create "
        "| share of ceiling | share of first | counter table: dead rows, autovacuums |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    shares: list[tuple[float, float, int]] = []
    for index, window in enumerate(windows):
        state = f"{window['dead_tuples']}, {window['autovacuums']}"
        if window["kind"] == "pgbench":
            lines.append(
                f"| {window['at_s']} | pgbench {window['seconds']} s | {window['rate']} "
                f"| | | | | | {state} |"
            )
            continue
        before = [i for i in ceilings if i < index][-1:]
        after = [i for i in ceilings if i > index][:1]
        near = [windows[i]["rate"] for i in before + after]
        ceiling = mean(near) if near else float("nan")
        share, of_first = window["rate"] / ceiling, window["rate"] / first
        shares.append((share, of_first, window["at_s"]))
        lines.append(
            f"| {window['at_s']} | service {window['seconds']} s | {window['rate']} "
            f"| {window['p50_ms']:.1f} | {window['p99_ms']:.1f} | {window['cpu_ms_per_create']} "
            f"| {share:.2f} | {of_first:.2f} | {state} |"
        )
    lowest_share = min(shares)
    lowest_first = min(shares, key=lambda s: s[1])
    met_ceiling = lowest_share[0] >= CEILING_SHARE
    met_first = lowest_first[1] >= FIRST_SHARE
    pgbench = [w["rate"] for w in windows if w["kind"] == "pgbench"]
    verdict = [
        f"every service window >= {CEILING_SHARE} x ceiling: {'yes' if met_ceiling else 'NO'} "
        f"(lowest {lowest_share[0]:.2f}, window from {lowest_share[2]} s)",
        f"no service window below {FIRST_SHARE} x the first ({first} req/s): "
        f"{'yes' if met_first else 'NO'} "
        f"(lowest {lowest_first[1]:.2f}, window from {lowest_first[2]} s)",
        f"pgbench windows: {' / '.join(str(r) for r in pgbench)} tps",
        f"non-200 answers: {sum(w['non_200'] for w in services)}",
    ]
    return lines, verdict, met_ceiling and met_first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--duration", type=int, default=180, help="seconds of service creates, in windows"
    )
    parser.add_argument("--window", type=int, default=10, help="seconds a service window")
    parser.add_argument(
        "--ceiling-every", type=int, default=3, help="service windows between pgbench windows"
    )
    parser.add_argument("--ceiling-window", type=int, default=5, help="seconds a pgbench window")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--warmup", type=int, default=2, help="unmeasured seconds of the same creates first"
    )
    add_server_arguments(parser, "ticketing_bench_soak")
    args = parser.parse_args()
    if args.duration // args.window < args.ceiling_every:
        parser.error("--duration must hold at least --ceiling-every windows")

    started = time.monotonic()
    with open_cluster(args.server) as cluster:
        cluster_line = cluster.describe()
        print(cluster_line, flush=True)
        env, data_dir = prepare_create_tenants(cluster, args.database, 1)
        token = mint_tokens(data_dir / "dev-signing-key.pem", [1])
        tokens = write_tokens_file(data_dir / "tenant.txt", [1], token)
        try:
            windows = soak(args, cluster, env, tokens, data_dir / "server.log")
        finally:
            cluster.drop_database(args.database)

    header = [
        f"Soak, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, "
        f"{args.workers} server process(es), one tenant, {args.connections} connections",
        cluster_line,
        f"{args.duration} s of service creates in {args.window}-s windows, "
        f"a {args.ceiling_window}-s pgbench window (the service's create statement, "
        f"{args.connections} sessions) after every {args.ceiling_every}; "
        f"one server process throughout, after {args.warmup} s of the same creates unmeasured",
    ]
    lines, verdict, met = judge(windows)
    print("\n" + "\n".join(header) + "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(verdict))
    print(f"\nwall time {time.monotonic() - started:.0f} s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "cluster": cluster_line,
        "workers": args.workers,
        "connections": args.connections,
        "windows": windows,
        "verdict": verdict,
        "table": header + lines,
    }
    (RESULTS / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    if any(w.get("non_200") for w in windows):
        raise SystemExit(f"some requests did not answer 200: see {data_dir / 'server.log'}")
    shutil.rmtree(data_dir)
    if not met:
        raise SystemExit("a soak target is missed")


if __name__ == "__main__":
    main()
