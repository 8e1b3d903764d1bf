"""Create-ticket throughput: the service under wrk against pgbench sending the service's own
create statement, in alternating windows of one run.

Usage: python bench/create_bench.py [--rounds 3] [--duration 8] [--warmup 2] [--workers 1]
                                    [--server throwaway|machine] [--database NAME]
Prints a table and writes bench/results/create.json; bench/README.md says how each figure is
taken. A smoke run: --rounds 1 --duration 2 --warmup 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
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
    peak_rss_mib,
    prepare_create_tenants,
    run_pgbench,
    run_wrk,
    start_server,
    write_tokens_file,
)

from ticketing.auth.tokens import TokenVerifier
from ticketing.tickets.repository import TENANT_GATE_SIZE

TENANTS = 64
# Enough distinct tokens that each comes back only after more than the server's cache of
# verified tokens holds have been verified since (each wrk thread walks its own half; twice
# the cache leaves room for one thread running well ahead of the other): every request of
# that row is a signature check.
FRESH_TOKENS = TokenVerifier.CACHE_SIZE * 2
WRK_THREADS = 2  # run_wrk's default


@dataclass
class Side:
    """One workload measured in every round: wrk on the service, or pgbench."""

    name: str
    connections: int
    tenants: int
    tokens: str = "reused"  # service only: "reused" (one per tenant) or "fresh"
    pgbench: bool = False
    ceiling: str = ""  # service only: the name of the pgbench side it is compared with
    contention: bool = False  # pgbench only: sessions pile on one tenant's row locks
    windows: list[dict[str, Any]] = field(default_factory=list)

    def rate(self) -> float:
        key = "tps" if self.pgbench else "rps"
        return round(mean(w[key] for w in self.windows), 1)

    def rate_cell(self) -> str:
        key = "tps" if self.pgbench else "rps"
        values = [w[key] for w in self.windows]
        spread = f" ({min(values):.0f}-{max(values):.0f})" if len(values) > 1 else ""
        return f"{self.rate()}{spread}"


def sides(workers: int) -> list[list[Side]]:
    """The workloads, grouped: each group holds service rows and the pgbench windows they are
    compared with, run back to back in every round (in alternating order)."""
    gate = TENANT_GATE_SIZE * workers
    return [
        [
            Side("service 16c 1t", 16, 1, ceiling="pgbench 16c 1t"),
            Side("pgbench 16c 1t", 16, 1, pgbench=True),
        ],
        [
            # The service lets at most `gate` creates of a tenant wait at the database, so
            # its database sees `gate` sessions of the tenant, not 64.
            Side("service 64c 1t", 64, 1, ceiling=f"pgbench {gate}c 1t"),
            Side(f"pgbench {gate}c 1t", gate, 1, pgbench=True),
            Side("pgbench 64c 1t", 64, 1, pgbench=True, contention=True),
        ],
        [
            Side("service 16c 64t", 16, TENANTS, ceiling="pgbench 16c 64t"),
            Side(
                "service 16c 64t fresh tokens",
                16,
                TENANTS,
                tokens="fresh",
                ceiling="pgbench 16c 64t",
            ),
            Side("pgbench 16c 64t", 16, TENANTS, pgbench=True),
        ],
        [
            Side("service 64c 64t", 64, TENANTS, ceiling="pgbench 64c 64t"),
            Side("pgbench 64c 64t", 64, TENANTS, pgbench=True),
        ],
    ]


def next_start(result: dict[str, float]) -> list[int]:
    return [int(result[f"NEXT_START_{n}"]) for n in range(1, WRK_THREADS + 1)]


def measure(
    side: Side,
    *,
    cluster: Cluster,
    database: str,
    base: str,
    server_pid: int,
    token_files: dict[str, Path],
    cursors: dict[Path, list[int]],
    warmup: int,
    duration: int,
) -> dict[str, Any]:
    """One window: `warmup` seconds of the side's own workload, then `duration` measured.

    `cursors` says per token file where each wrk thread stopped in its share of it: the
    next run carries on from there, so a fresh token is not sent again before its thread has
    sent the rest of its share.
    """
    if side.pgbench:
        if warmup:
            run_pgbench(
                cluster,
                database,
                tenants=side.tenants,
                connections=side.connections,
                seconds=warmup,
            )
        tps = run_pgbench(
            cluster, database, tenants=side.tenants, connections=side.connections, seconds=duration
        )
        return {"tps": round(tps, 1)}
    tokens = token_files[f"{side.tokens}-{side.tenants}"]
    if warmup:
        result = run_wrk(base, tokens, side.connections, warmup, start=cursors.get(tokens))
        cursors[tokens] = next_start(result)
    cpu_before = cpu_seconds(server_pid)
    result = run_wrk(base, tokens, side.connections, duration, start=cursors.get(tokens))
    cpu = cpu_seconds(server_pid) - cpu_before
    cursors[tokens] = next_start(result)
    return {
        "rps": round(result["RPS"], 1),
        "p50_ms": result["P50"],
        "p99_ms": result["P99"],
        "requests": int(result["REQUESTS"]),
        "cpu_s": round(cpu, 2),
        "non_200": int(result["NON200"]) + int(result["SOCKET_ERRORS"]),
    }


def table(groups: list[list[Side]], workers: int, rss: float) -> list[str]:
    gate = TENANT_GATE_SIZE * workers
    lines = [
        "| connections | tenants | tokens | service req/s (min-max) | p50 ms | p99 ms "
        "| Python CPU ms/create | compared with | pgbench tps (min-max) | ratio | non-200 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    token_label = {
        "reused": "one per tenant, reused",
        "fresh": f"fresh per request ({FRESH_TOKENS:,} rotating)",
    }
    for group in groups:
        by_name = {side.name: side for side in group}
        for side in group:
            if side.pgbench:
                continue
            ceiling = by_name[side.ceiling]
            what = f"pgbench, {ceiling.connections} sessions"
            if ceiling.connections == gate and side.connections > gate:
                what += " (as many as the per-tenant gate lets through)"
            windows = side.windows
            requests = sum(w["requests"] for w in windows)
            cpu_ms = 1000 * sum(w["cpu_s"] for w in windows) / max(1, requests)
            lines.append(
                f"| {side.connections} | {side.tenants} | {token_label[side.tokens]} "
                f"| {side.rate_cell()} | {mean(w['p50_ms'] for w in windows):.1f} "
                f"| {max(w['p99_ms'] for w in windows):.1f} | {cpu_ms:.2f} | {what} "
                f"| {ceiling.rate_cell()} | {side.rate() / ceiling.rate():.2f} "
                f"| {sum(w['non_200'] for w in windows)} |"
            )
        for side in group:
            if side.contention:
                lines.append(
                    f"| {side.connections} | {side.tenants} | — | — | — | — | — "
                    f"| pgbench at {side.connections} sessions on one tenant's counter rows: "
                    f"contention, not a ceiling | {side.rate_cell()} | — | — |"
                )
    lines.append(f"\npeak RSS of a server process: {rss} MiB")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="windows per workload")
    parser.add_argument("--duration", type=int, default=8, help="measured seconds a window")
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of the same workload before each window"
    )
    parser.add_argument("--workers", type=int, default=1)
    add_server_arguments(parser, "ticketing_bench_create")
    args = parser.parse_args()

    started = time.monotonic()
    with open_cluster(args.server) as cluster:
        cluster_line = cluster.describe()
        print(cluster_line, flush=True)
        env, data_dir = prepare_create_tenants(cluster, args.database, TENANTS)
        everyone = list(range(1, TENANTS + 1))
        reused = mint_tokens(data_dir / "dev-signing-key.pem", everyone)
        rotation = [everyone[i % TENANTS] for i in range(FRESH_TOKENS)]
        token_files = {
            "reused-1": write_tokens_file(data_dir / "reused-1.txt", everyone[:1], reused[:1]),
            "reused-64": write_tokens_file(data_dir / "reused-64.txt", everyone, reused),
            "fresh-64": write_tokens_file(
                data_dir / "fresh-64.txt",
                rotation,
                mint_tokens(data_dir / "dev-signing-key.pem", rotation),
            ),
        }
        print(f"set up in {time.monotonic() - started:.0f} s", flush=True)
        groups = sides(args.workers)
        cursors: dict[Path, list[int]] = {}
        process, base = start_server(env, workers=args.workers, log=data_dir / "server.log")
        try:
            for round_number in range(args.rounds):
                for group in groups:
                    # Alternate the order: what runs first may meet a different database.
                    for side in group if round_number % 2 == 0 else reversed(group):
                        window = measure(
                            side,
                            cluster=cluster,
                            database=args.database,
                            base=base,
                            server_pid=process.pid,
                            token_files=token_files,
                            cursors=cursors,
                            warmup=args.warmup,
                            duration=args.duration,
                        )
                        side.windows.append(window)
                        print(f"round {round_number + 1} {side.name}: {window}", flush=True)
            rss = peak_rss_mib(process.pid)
        finally:
            process.terminate()
            process.wait()
            cluster.drop_database(args.database)

    header = [
        f"Creates, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, "
        f"{args.workers} server process(es), per-tenant gate {TENANT_GATE_SIZE}",
        cluster_line,
        f"{args.rounds} round(s); in each, every workload runs {args.warmup:g} s unmeasured then "
        f"{args.duration:g} s measured, service and pgbench windows alternating",
    ]
    lines = table(groups, args.workers, rss)
    print("\n" + "\n".join(header) + "\n\n" + "\n".join(lines))
    print(f"\nwall time {time.monotonic() - started:.0f} s")
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "cluster": cluster_line,
        "workers": args.workers,
        "rounds": args.rounds,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "fresh_tokens": FRESH_TOKENS,
        "peak_rss_mib": rss,
        "sides": [
            {
                "name": s.name,
                "connections": s.connections,
                "tenants": s.tenants,
                "tokens": None if s.pgbench else s.tokens,
                "windows": s.windows,
            }
            for group in groups
            for s in group
        ],
        "table": header + lines,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "create.json").write_text(json.dumps(report, indent=2) + "\n")
    if any(w.get("non_200") for group in groups for s in group for w in s.windows):
        raise SystemExit(f"some requests did not answer 200: see {data_dir / 'server.log'}")
    shutil.rmtree(data_dir)


if __name__ == "__main__":
    main()
