"""Shared pieces of the benchmarks: the PostgreSQL cluster (a throwaway one or the machine's),
a server and its CPU time, the bench tenants, their tokens, wrk and pgbench runs."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ticketing.auth.dev_issuer import load_or_create_dev_key, mint_token
from ticketing.config import APP_ROLE

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DEV_ISSUER = "http://localhost:8000"
# The PostgreSQL settings worth naming in a table header: what moves write throughput.
REPORTED_SETTINGS = (
    "autovacuum",
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "max_wal_size",
    "checkpoint_timeout",
    "max_connections",
)


@dataclass
class Cluster:
    """A PostgreSQL server reachable over TCP as the superuser `postgres` with trust auth."""

    host: str
    port: int
    kind: str  # "throwaway" (initdb'd by the benchmark) or "machine"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Runs SQL with psql as the postgres user."""
        return subprocess.run(
            [*self.connection_args("psql"), "-d", database, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def connection_args(self, program: str) -> list[str]:
        return [program, "-h", self.host, "-p", str(self.port), "-U", "postgres"]

    def fresh_database(self, name: str) -> str:
        """Drops and creates a database; returns its URL."""
        self.drop_database(name)
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def describe(self) -> str:
        """One line naming the server: version, kind, and the settings that move writes."""
        version = self.psql("SHOW server_version").strip()
        names = ", ".join(f"'{name}'" for name in REPORTED_SETTINGS)
        rows = self.psql(
            "SELECT name, setting, coalesce(unit, '') FROM pg_settings "
            f"WHERE name IN ({names}) ORDER BY name"
        )
        settings = {}
        for line in rows.splitlines():
            name, setting, unit = line.split("|")
            settings[name] = _with_unit(setting, unit)
        shown = ", ".join(f"{name} {settings[name]}" for name in REPORTED_SETTINGS)
        if self.kind == "throwaway":
            where = f"throwaway cluster (initdb, stock settings) on port {self.port}"
        else:
            where = f"the machine's server at {self.host}:{self.port}"
        return f"PostgreSQL {version}, {where}: {shown}"


def _with_unit(setting: str, unit: str) -> str:
    if unit == "8kB":
        return f"{int(setting) * 8 // 1024} MB"
    if unit in {"MB", "s", "ms"}:
        return f"{setting} {unit}"
    return setting


def add_server_arguments(parser: argparse.ArgumentParser, default_database: str) -> None:
    parser.add_argument(
        "--server",
        choices=("throwaway", "machine"),
        default="throwaway",
        help="throwaway: initdb a cluster with stock settings on a free port and remove it "
        "afterwards (default); machine: the server of BENCH_PG_ADMIN_URL "
        "(default 127.0.0.1:5432)",
    )
    parser.add_argument(
        "--database",
        default=default_database,
        help="scratch database name (dropped and created; dropped at the end)",
    )


def as_postgres(command: list[str]) -> list[str]:
    """The command as the postgres user when run as root: PostgreSQL's programs (initdb, the
    server) refuse to run as root. (The replica tests use it too.)"""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def pg_bin(name: str) -> str:
    """A PostgreSQL program: on PATH, else in pg_config's bindir (Debian keeps them there)."""
    found = shutil.which(name)
    if found:
        return found
    bindir = subprocess.run(
        ["pg_config", "--bindir"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return str(Path(bindir) / name)


@contextmanager
def open_cluster(kind: str) -> Iterator[Cluster]:
    """The cluster the benchmark runs on; a throwaway one is stopped and removed afterwards."""
    if kind == "machine":
        parts = urlsplit(PG_ADMIN_URL)
        yield Cluster(host=parts.hostname or "127.0.0.1", port=parts.port or 5432, kind="machine")
        return
    home = Path(tempfile.mkdtemp(prefix="ticketing-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, user="postgres", group="postgres")
    data = home / "data"
    port = free_port()
    subprocess.run(
        as_postgres(
            [pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    # Only where it listens is set: everything else is what initdb wrote.
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    subprocess.run(
        as_postgres(
            [
                pg_bin("pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(home / "server.log"),
                "-o",
                options,
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield Cluster(host="127.0.0.1", port=port, kind="throwaway")
    finally:
        subprocess.run(
            as_postgres([pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(home, ignore_errors=True)


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


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    found = [pid]
    for parent in found:
        out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout
        found.extend(int(p) for p in out.split())
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by the process and its live descendants."""
    ticks = 0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may hold spaces:
        # utime and stime are fields 14 and 15 of the whole line.
        fields = stat.rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The largest peak resident set (VmHWM) among the server's processes, in MiB."""
    peak = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            peak = max(peak, int(match.group(1)))
    return round(peak / 1024, 1)


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


def tenant_uuid(n: int) -> str:
    """The id of bench tenant n, as the pgbench script computes it: md5('bench-tenant-' || n)."""
    return str(uuid.UUID(hashlib.md5(f"bench-tenant-{n}".encode()).hexdigest()))  # noqa: S324


def mint_tokens(key_path: Path, tenants: list[int], ttl: int = 7200) -> list[str]:
    """One token per entry of `tenants` (bench tenant numbers), each with its own `jti`,
    signed with the development issuer's key, as `ticketing token` signs them."""
    # RS256 signing is about 1-4 ms of CPU a token here: spread it over the cores.
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        chunks = [tenants[i : i + 500] for i in range(0, len(tenants), 500)]
        minted = pool.map(_mint_chunk, [(str(key_path), chunk, ttl) for chunk in chunks])
        return [token for chunk in minted for token in chunk]


def _mint_chunk(job: tuple[str, list[int], int]) -> list[str]:
    key_path, tenants, ttl = job
    key = load_or_create_dev_key(Path(key_path))
    return [
        mint_token(
            key,
            issuer_base=DEV_ISSUER,
            tenant_id=tenant_uuid(n),
            realm=f"bench{n}",
            username="user@example.com",
            first_name="Jane",
            last_name="Doe",
            roles=["ticket_agent"],
            ttl=ttl,
        )
        for n in tenants
    ]


def write_tokens_file(path: Path, tenants: list[int], tokens: list[str]) -> Path:
    """The file create.lua reads: one "tenant_id realm token" per line."""
    path.write_text(
        "".join(
            f"{tenant_uuid(n)} bench{n} {token}\n" for n, token in zip(tenants, tokens, strict=True)
        )
    )
    return path


def prepare_create_tenants(
    cluster: Cluster, database: str, tenant_count: int
) -> tuple[dict[str, str], Path]:
    """Creates the scratch database, migrates it and loads `tenant_count` bench tenants
    (bench tenant n has the id md5('bench-tenant-' || n) and the realm `bench<n>`).

    Returns the server environment and the data folder (which holds the signing key).
    """
    url = cluster.fresh_database(database)
    data_dir = Path(tempfile.mkdtemp(prefix=f"{database}-"))
    env = {
        "TICKETING_DATABASE_URL": url,
        "TICKETING_DATA_DIR": str(data_dir),
        "TICKETING_DEV_ISSUER_URL": DEV_ISSUER,
    }
    ticketing("migrate", env=env)
    config = {
        "tenants": [tenant_config(tenant_uuid(n), f"bench{n}") for n in range(1, tenant_count + 1)]
    }
    (data_dir / "tenants.json").write_text(json.dumps(config))
    ticketing("load", str(data_dir / "tenants.json"), env=env)
    load_or_create_dev_key(data_dir / "dev-signing-key.pem")
    return env, data_dir


def run_wrk(
    base: str,
    tenants_file: Path,
    connections: int,
    seconds: int,
    *,
    threads: int = 2,
    start: list[int] | None = None,
) -> dict[str, float]:
    """Drives creates with wrk and bench/create.lua; returns the script's figures.

    Each thread walks its own share of the file, thread n from line `start[n - 1]` of it;
    NEXT_START_<n> in the figures says where it stopped.
    """
    load = ["-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s"]
    out = subprocess.run(
        ["wrk", *load, "-s", str(BENCH / "create.lua"), base],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "TENANTS_FILE": str(tenants_file),
            "WRK_THREADS": str(threads),
            **{f"WRK_START_{n + 1}": str(line) for n, line in enumerate(start or [])},
        },
        check=True,
    ).stdout
    values = dict(re.findall(r"^([A-Z0-9_]+) ([\d.]+)$", out, flags=re.MULTILINE))
    return {k: float(v) for k, v in values.items()}


def run_pgbench(
    cluster: Cluster, database: str, *, tenants: int, connections: int, seconds: int
) -> float:
    """Runs bench/create.pgbench.sql (the service's create statement) as the service's role;
    returns transactions per second."""
    load = [
        "-c",
        str(connections),
        "-j",
        str(min(2, connections)),
        "-T",
        str(seconds),
    ]
    script = ["-D", f"tenants={tenants}", "-f", str(BENCH / "create.pgbench.sql")]
    out = subprocess.run(
        [*cluster.connection_args("pgbench"), "-n", "-M", "prepared", *load, *script, database],
        capture_output=True,
        text=True,
        # The role the service works as, bound by the same policies.
        env={**os.environ, "PGOPTIONS": f"-c role={APP_ROLE}"},
    )
    if out.returncode != 0:
        raise SystemExit(f"pgbench failed:\n{out.stdout}\n{out.stderr}")
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    if failed and int(failed.group(1)):
        raise SystemExit(f"pgbench transactions failed:\n{out.stdout}")
    match = re.search(r"tps = ([\d.]+)", out.stdout)
    assert match, out.stdout
    return float(match.group(1))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def machine() -> str:
    return f"{os.cpu_count()} cores, {os.uname().machine}"
