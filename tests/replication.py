"""A throwaway PostgreSQL primary and a streaming replica of it (`pg_basebackup -R`), for the
replica tests.

The machine's own server does not accept replication connections (its pg_hba.conf has no
`replication` entry), so the tests initdb their own primary on a free port; initdb's defaults
(wal_level replica, max_wal_senders 10, trust for local replication) are all a replica needs.
PostgreSQL's programs refuse to run as root: under root (CI) they run as the postgres user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import as_postgres, pg_bin

from tests.support import free_port


def _run(command: list[str]) -> str:
    done = subprocess.run(as_postgres(command), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class Node:
    """One server of the pair."""

    data: Path
    port: int
    home: Path

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1"
        _run(
            [
                pg_bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.data.parent / f"{self.data.name}.log"),
                "-o",
                options,
                "-w",
                "start",
            ]
        )

    def stop(self) -> None:
        _run([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Runs SQL as the superuser; returns the unaligned output."""
        return _run(
            [
                pg_bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAtc",
                sql,
            ]
        ).strip()


@dataclass
class ReplicatedCluster:
    primary: Node
    replica: Node
    home: Path

    def pause_replay(self) -> None:
        """The replica keeps serving reads but stops applying the primary's changes."""
        self.replica.psql("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 10
        while self.replica.psql("SELECT pg_get_wal_replay_pause_state()") != "paused":
            assert time.monotonic() < deadline, "replay did not pause"
            time.sleep(0.05)

    def resume_replay(self) -> None:
        self.replica.psql("SELECT pg_wal_replay_resume()")

    def wait_caught_up(self, timeout: float = 20) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        target = self.primary.psql("SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + timeout
        while self.replica.psql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'") != "t":
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.05)

    def remove(self) -> None:
        for node in (self.replica, self.primary):
            with contextlib.suppress(RuntimeError):  # already stopped
                node.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def start_replicated_cluster() -> ReplicatedCluster:
    """initdb a primary, start it, clone it with pg_basebackup -R, start the replica."""
    home = Path(tempfile.mkdtemp(prefix="ticketing-replica-"))
    if os.geteuid() == 0:
        shutil.chown(home, user="postgres", group="postgres")
    primary = Node(home / "primary", free_port(), home)
    replica = Node(home / "replica", free_port(), home)
    cluster = ReplicatedCluster(primary, replica, home)
    try:
        _run(
            [
                pg_bin("initdb"),
                "-D",
                str(primary.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ]
        )
        primary.start()
        _run(
            [
                pg_bin("pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(replica.data),
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
            ]
        )
        replica.start()
    except BaseException:
        cluster.remove()
        raise
    return cluster
