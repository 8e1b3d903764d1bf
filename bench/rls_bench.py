"""What tenant row-level security costs creates: the same server with and without it.

Usage: python bench/rls_bench.py [--duration 15] [--rounds 4]

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
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, psql, start_server
from create_bench import TENANT_COUNTS, prepare, run_wrk

DB_NAME = "ticketing_bench_rls"
CONNECTIONS = 16
SETUPS = {"policies (ticketing_app)": "ticketing_app", "no policies (owner)": ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    env, tenant_files, data_dir = prepare(DB_NAME)
    results: dict[str, dict[int, list[float]]] = {s: {t: [] for t in TENANT_COUNTS} for s in SETUPS}
    try:
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
    finally:
        psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")

    lines = [
        f"| setup | {' | '.join(f'{t} tenant(s): req/s per round' for t in TENANT_COUNTS)} |",
        "|---|" + "---|" * len(TENANT_COUNTS),
    ]
    for setup, by_tenants in results.items():
        cells = [" / ".join(str(v) for v in by_tenants[t]) for t in TENANT_COUNTS]
        lines.append(f"| {setup} | {' | '.join(cells)} |")
    print("\n" + "\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "connections": CONNECTIONS,
        "duration_s": args.duration,
        "rps": {s: {str(t): v for t, v in r.items()} for s, r in results.items()},
    }
    (RESULTS / "rls.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
