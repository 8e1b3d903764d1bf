"""Create-ticket throughput: the service under wrk against pgbench doing the same database work.

Usage: python bench/create_bench.py [--duration 20] [--warmup 5] [--workers 2]
Prints a table and writes bench/results/create.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    DEV_ISSUER,
    RESULTS,
    fresh_database,
    psql,
    start_server,
    tenant_config,
    ticketing,
)

from ticketing.config import APP_ROLE

BENCH = Path(__file__).resolve().parent
DB_NAME = "ticketing_bench_create"
CONNECTIONS = (16, 64)
TENANT_COUNTS = (1, 64)


def tenant_uuid(n: int) -> str:
    """The id of bench tenant n, as the pgbench script computes it: md5('bench-tenant-' || n)."""
    return str(uuid.UUID(hashlib.md5(f"bench-tenant-{n}".encode()).hexdigest()))  # noqa: S324


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def peak_rss_mib(pids: list[int]) -> float:
    """The largest peak resident set (VmHWM) among the processes, in MiB."""
    peak = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            peak = max(peak, int(match.group(1)))
    return round(peak / 1024, 1)


def run_wrk(base: str, tenants_file: Path, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(BENCH / "create.lua"),
            base,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TENANTS_FILE": str(tenants_file)},
        check=True,
    ).stdout
    values = dict(re.findall(r"^([A-Z0-9_]+) ([\d.]+)$", out, flags=re.MULTILINE))
    return {k: float(v) for k, v in values.items()}


def run_pgbench(tenants: int, connections: int, seconds: int, database: str = DB_NAME) -> float:
    out = subprocess.run(
        [
            "pgbench",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-n",
            "-M",
            "prepared",
            "-c",
            str(connections),
            "-j",
            "2",
            "-T",
            str(seconds),
            "-D",
            f"tenants={tenants}",
            "-f",
            str(BENCH / "create.pgbench.sql"),
            database,
        ],
        capture_output=True,
        text=True,
        # The role the service works as, bound by the same policies.
        env={**os.environ, "PGOPTIONS": f"-c role={APP_ROLE}"},
    )
    if out.returncode != 0:
        raise SystemExit(f"pgbench failed:\n{out.stdout}\n{out.stderr}")
    match = re.search(r"tps = ([\d.]+)", out.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    if failed and int(failed.group(1)):
        raise SystemExit(f"pgbench transactions failed:\n{out.stdout}")
    assert match, out.stdout
    return float(match.group(1))


def prepare(database: str) -> tuple[dict[str, str], dict[int, Path], Path]:
    """Creates the scratch database, migrates it, loads the bench tenants, mints their
    tokens and warms the database.

    Returns the server environment, per tenant count the wrk tenants file, and the data
    folder.
    """
    url = fresh_database(database)
    data_dir = Path(tempfile.mkdtemp(prefix=f"{database}-"))
    env = {
        "TICKETING_DATABASE_URL": url,
        "TICKETING_DATA_DIR": str(data_dir),
        "TICKETING_DEV_ISSUER_URL": DEV_ISSUER,
    }
    ticketing("migrate", env=env)
    max_tenants = max(TENANT_COUNTS)
    config = {
        "tenants": [tenant_config(tenant_uuid(n), f"bench{n}") for n in range(1, max_tenants + 1)]
    }
    (data_dir / "tenants.json").write_text(json.dumps(config))
    ticketing("load", str(data_dir / "tenants.json"), env=env)
    lines = []
    for n in range(1, max_tenants + 1):
        token = ticketing(
            "token",
            "--tenant",
            tenant_uuid(n),
            "--realm",
            f"bench{n}",
            "--user",
            "user@example.com",
            "--first-name",
            "Jane",
            "--last-name",
            "Doe",
            "--roles",
            "ticket_agent",
            "--ttl",
            "7200",
            env=env,
        ).strip()
        lines.append(f"{tenant_uuid(n)} bench{n} {token}")
    tenant_files = {}
    for count in TENANT_COUNTS:
        path = data_dir / f"tenants-{count}.txt"
        path.write_text("\n".join(lines[:count]) + "\n")
        tenant_files[count] = path
    # A new database's first minutes are slower (new WAL segments, relation extension):
    # warm it with the ceiling's own workload so that both sides meet the same database.
    run_pgbench(max_tenants, 16, 15, database=database)
    return env, tenant_files, data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    env, tenant_files, data_dir = prepare(DB_NAME)
    process, base = start_server(env, workers=args.workers, log=data_dir / "server.log")
    rows = []
    try:
        workers = worker_pids(process.pid) or [process.pid]
        for tenants in TENANT_COUNTS:
            for connections in CONNECTIONS:
                run_wrk(base, tenant_files[tenants], connections, args.warmup)
                result = run_wrk(base, tenant_files[tenants], connections, args.duration)
                rows.append(
                    {
                        "connections": connections,
                        "tenants": tenants,
                        "service_rps": round(result["RPS"], 1),
                        "p50_ms": result["P50"],
                        "p99_ms": result["P99"],
                        "requests": int(result["REQUESTS"]),
                        "non_200": int(result["NON200"]),
                        "socket_errors": int(result["SOCKET_ERRORS"]),
                    }
                )
                print(f"service c={connections} tenants={tenants}: {rows[-1]}", flush=True)
        rss = peak_rss_mib(workers)
    finally:
        process.terminate()
        process.wait()
    for row in rows:
        run_pgbench(row["tenants"], row["connections"], args.warmup)
        tps = run_pgbench(row["tenants"], row["connections"], args.duration)
        row["pgbench_tps"] = round(tps, 1)
        row["ratio"] = round(row["service_rps"] / tps, 2)
        row["peak_rss_mib_per_worker"] = rss
        print(f"pgbench c={row['connections']} tenants={row['tenants']}: {tps:.1f} tps", flush=True)

    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {os.uname().machine}",
        "workers": args.workers,
        "duration_s": args.duration,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "create.json").write_text(json.dumps(report, indent=2))
    print(
        "\n| connections | tenants | service req/s | p50 ms | p99 ms | pgbench tps | ratio "
        "| peak RSS/worker MiB | non-200 |\n|---|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['connections']} | {r['tenants']} | {r['service_rps']} | {r['p50_ms']} "
            f"| {r['p99_ms']} | {r['pgbench_tps']} | {r['ratio']} "
            f"| {r['peak_rss_mib_per_worker']} | {r['non_200'] + r['socket_errors']} |"
        )
    psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    if any(r["non_200"] or r["socket_errors"] for r in rows):
        raise SystemExit("some requests did not answer 200")


if __name__ == "__main__":
    main()
