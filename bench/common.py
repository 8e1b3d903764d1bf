"""Shared pieces of the benchmarks: a scratch PostgreSQL database, a server, a tenant, tokens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DEV_ISSUER = "http://localhost:8000"


def psql(sql: str, database: str = "postgres") -> str:
    """Runs SQL with psql as the postgres user on the local server."""
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qAtc", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def fresh_database(name: str) -> str:
    """Drops and creates a database; returns its URL."""
    psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(f"CREATE DATABASE {name}")
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def ticketing(*args: str, env: dict[str, str]) -> str:
    """Runs the `ticketing` command."""
    return subprocess.run(
        [sys.executable, "-m", "ticketing", *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    ).stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    env: dict[str, str], *, workers: int, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """Starts `ticketing serve` and waits until /healthz answers."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ticketing",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
            ],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"server did not start:\n{log.read_text()}")


def tenant_config(tenant_id: str, realm: str) -> dict[str, Any]:
    """The seed's example tenant (team james, item type 16910, offer 23629)."""
    return {
        "id": tenant_id,
        "name": f"Bench {realm}",
        "realm": realm,
        "prefix": "CTC",
        "teams": [{"id": "james", "name": "James"}],
        "ticket_types": [
            {
                "id": "16910",
                "name": "Hardware request",
                "fields": [
                    {
                        "id": "ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53",
                        "name": "title",
                        "label": "Title",
                        "type": "text",
                        "required": True,
                    },
                    {
                        "id": "7f111983-1013-41be-a056-989fff018bb5",
                        "name": "description",
                        "label": "Description",
                        "type": "richtext",
                    },
                    {
                        "id": "711ea9e6-1b73-4070-9eb2-941803f7f5d4",
                        "name": "neededWithin",
                        "label": "Needed within",
                        "type": "dropdown",
                        "options": [{"value": "<1week"}, {"value": "<2week"}, {"value": "<1month"}],
                    },
                ],
            }
        ],
        "offers": [{"id": "23629", "name": "New laptop", "item_type": "16910"}],
    }


def new_tenant_id() -> str:
    return str(uuid.uuid4())


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]
