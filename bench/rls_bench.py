"""What tenant row-level security costs creates: the same server with and without it.

Usage: python bench/rls_bench.py [--duration 15] [--warmup 5] [--rounds 4]
                                 [--server throwaway|machine] [--database NAME]

Loads the create benchmark's tenants into a scratch PostgreSQL database, then, for one and
for 64 tenants at 16 connections, alternates a server working as the policy-bound role
(TICKETING_DB_ROLE=ticketing_app, the default) with one working as the login user, which owns
the tables and is not bound by the policies (TICKETING_DB_ROLE empty); every round measures
both, in alternating order, so the machine's drift shows in the spread. Prints a table and writes
bench/results/rls.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    RESULTS,
    add_server_arguments,
    machine,
    mint_tokens,
    open_cluster,
    prepare_create_tenants,
    run_wrk,
    start_server,
    write_tokens_file,
)

CONNECTIONS = 16
TENANT_COUNTS = (1, 64)
SETUPS = {"policies (ticketing_app)": "ticketing_app", "no policies (owner)": ""}


def run_rounds(
    args: argparse.Namespace,
    env: dict[str, str],
    data_dir: Path,
    results: dict[str, dict[int, list[float]]],
) -> None:
    tenants = list(range(1, max(TENANT_COUNTS) + 1))
    tokens = mint_tokens(data_dir / "dev-signing-key.pem", tenants)
    tenant_files = {
        count: write_tokens_file(data_dir / f"tenants-{count}.txt", tenants[:count], tokens[:count])
        for count in TENANT_COUNTS
    }
    for round_number in range(args.rounds):
        # Alternate which setup goes first: later runs on a new database tend to be faster.
        order = list(SETUPS.items())
        for setup, role in order if round_number % 2 == 0 else reversed(order):
            process, base = start_server(
                {**env, "TICKETING_DB_ROLE": role}, workers=1, log=data_dir / "server.log"
            )
            try:
                for tenants in TENANT_COUNTS:
                    run_wrk(base, tenant_files[tenants], CONNECTIONS, args.warmup)
                    result = run_wrk(base, tenant_files[tenants], CONNECTIONS, args.duration)
                    if result["NON200"] or result["SOCKET_ERRORS"]:
                        raise SystemExit(f"{setup}: non-200 answers: {result}")
                    rps = round(result["RPS"], 1)
                    results[setup][tenants].append(rps)
                    print(f"{setup}, {tenants} tenants: {rps} req/s", flush=True)
            finally:
                process.terminate()
                process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    add_server_arguments(parser, "ticketing_bench_rls")
    args = parser.parse_args()

    results: dict[str, dict[int, list[float]]] = {s: {t: [] for t in TENANT_COUNTS} for s in SETUPS}
    with open_cluster(args.server) as cluster:
        cluster_line = cluster.describe()
        print(cluster_line, flush=True)
        env, data_dir = prepare_create_tenants(cluster, args.database, max(TENANT_COUNTS))
        try:
            run_rounds(args, env, data_dir, results)
        finally:
            cluster.drop_database(args.database)
        shutil.rmtree(data_dir)

    lines = [
        f"| setup | {' | '.join(f'{t} tenant(s): req/s per round' for t in TENANT_COUNTS)} |",
        "|---|" + "---|" * len(TENANT_COUNTS),
    ]
    for setup, by_tenants in results.items():
        cells = [" / ".join(str(v) for v in by_tenants[t]) for t in TENANT_COUNTS]
        lines.append(f"| {setup} | {' | '.join(cells)} |")
    print(f"\n{cluster_line}\n\n" + "\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "cluster": cluster_line,
        "connections": CONNECTIONS,
        "duration_s": args.duration,
        "rps": {s: {str(t): v for t, v in r.items()} for s, r in results.items()},
    }
    (RESULTS / "rls.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
