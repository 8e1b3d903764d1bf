"""The `ticketing` command: migrate, serve, token and demo, as real subprocesses (SQLite)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support import DESCRIPTION, NEEDED_WITHIN, TITLE, free_port
from ticketing.auth.dev_issuer import load_or_create_dev_key
from ticketing.demo import DEMO_CONFIG
from ticketing.kit import migrate

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DEMO_TENANT = "820188ff-2036-4924-b80f-d11610735d86"
PROJECT = Path(__file__).resolve().parents[1]


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI run: no TICKETING_* from outside, data in `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    env["TICKETING_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def run_cli(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticketing", *args],
        env=cli_env(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=data_dir,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server did not become healthy:\n{log.read_text()}")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; each is terminated at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop(process)


def test_migrate_on_fresh_sqlite_prints_revision(tmp_path: Path) -> None:
    head = migrate.head_revision()
    assert head

    result = run_cli(tmp_path, "migrate")

    assert result.returncode == 0, result.stderr
    assert head in result.stdout
    assert (tmp_path / "ticketing.db").exists()
    # Running it again is harmless and reports the same revision.
    again = run_cli(tmp_path, "migrate")
    assert again.returncode == 0, again.stderr
    assert head in again.stdout


def test_serve_refuses_unmigrated_database(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", "--host", "127.0.0.1", "--port", str(free_port()))

    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "ticketing migrate" in message
    assert "schema" in message.lower()


def test_serve_with_migrate_starts(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ticketing",
                "serve",
                "--migrate",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=cli_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    processes.append(process)

    wait_healthy(process, f"http://127.0.0.1:{port}", log)

    response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert response.status_code == 200
    stop(process)
    assert process.returncode is not None
    # The schema it created is the newest one.
    result = run_cli(tmp_path, "migrate")
    assert migrate.head_revision() in result.stdout  # type: ignore[operator]


def test_token_prints_jwt_with_requested_claims(tmp_path: Path) -> None:
    tenant_id = "820188ff-2036-4924-b80f-d11610735d86"
    result = run_cli(
        tmp_path,
        "token",
        "--tenant",
        tenant_id,
        "--realm",
        "northwind",
        "--user",
        "jdoe",
        "--email",
        "jdoe@example.com",
        "--first-name",
        "Jane",
        "--last-name",
        "Doe",
        "--roles",
        "ticket_agent,tenant_admin",
        "--scope",
        "tickets:write tickets:read",
        "--teams",
        "james,finance",
        "--ttl",
        "600",
    )

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.count(".") == 2
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["tenant_id"] == tenant_id
    assert sorted(claims["realm_access"]["roles"]) == ["tenant_admin", "ticket_agent"]
    assert set(claims["scope"].split()) == {"tickets:write", "tickets:read"}
    assert claims["teams"] == ["james", "finance"]
    assert claims["preferred_username"] == "jdoe"
    assert claims["email"] == "jdoe@example.com"
    assert claims["given_name"] == "Jane"
    assert claims["family_name"] == "Doe"
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["iss"].endswith("/realms/northwind")
    # It is signed by the development key the command created in the data folder.
    header = jwt.get_unverified_header(token)
    key = load_or_create_dev_key(tmp_path / "dev-signing-key.pem")
    assert header["alg"] == "RS256"
    assert header["kid"] == key.kid
    verified = jwt.decode(
        token,
        key.private_key.public_key(),
        algorithms=["RS256"],
        options={"verify_aud": False},
    )
    assert verified["tenant_id"] == tenant_id


def _printed_curl(stdout: str) -> str:
    """The create-ticket curl command as printed: from `curl --request POST` to its last line."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("curl --request POST"))
    command = []
    for line in lines[start:]:
        command.append(line)
        if not line.rstrip().endswith("\\"):
            break
    return "\n".join(command)


def test_demo_prints_token_and_working_curl(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    stdout_path = tmp_path / "demo.out"
    stderr_path = tmp_path / "demo.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "ticketing", "demo", "--port", str(port)],
            env=cli_env(tmp_path, PYTHONUNBUFFERED="1"),
            stdout=out,
            stderr=err,
            cwd=tmp_path,
        )
    processes.append(process)
    wait_healthy(process, f"http://127.0.0.1:{port}", stderr_path)
    deadline = time.monotonic() + 10
    while "--data" not in stdout_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    printed = stdout_path.read_text()

    # Export lines for the README's examples, the token a JWT for the demo tenant.
    exports = re.findall(r"^export (\w+)=(\S+)$", printed, flags=re.MULTILINE)
    assert [name for name, _ in exports] == ["BASE", "TENANT", "REALM", "TOKEN"], printed
    values = dict(exports)
    assert values["BASE"] == f"http://127.0.0.1:{port}"
    assert values["TENANT"] == DEMO_TENANT
    assert values["REALM"] == "demo"
    assert re.fullmatch(r"eyJ[\w-]+\.[\w-]+\.[\w-]+", values["TOKEN"])
    claims = jwt.decode(values["TOKEN"], options={"verify_signature": False})
    assert claims["tenant_id"] == DEMO_TENANT
    assert "Ctrl-C stops it" in printed
    key_file = tmp_path / "dev-signing-key.pem"
    assert f"trusting tokens signed with the development key {key_file}" in stderr_path.read_text()
    # The demo's one-click sign-in is on, and it says so.
    assert (
        "ticketing: WARNING: the development sign-in is on (TICKETING_DEV_SIGN_IN): "
        f"http://127.0.0.1:{port}/portal/sign-in mints tokens of the demo tenant's users"
    ) in stderr_path.read_text()
    assert httpx.get(f"http://127.0.0.1:{port}/portal/sign-in", timeout=10).status_code == 200

    curl = _printed_curl(printed)
    assert f":{port}/api/v2/ticketing/ticket/create/james/16910" in curl
    result = subprocess.run(
        ["bash", "-c", curl + " --silent --show-error --write-out '\\nHTTP %{http_code}'"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    body_text, _, status_line = result.stdout.rpartition("\n")
    assert status_line == "HTTP 200", result.stdout
    body = json.loads(body_text)

    assert set(body) == {"success", "message", "status", "objectId", "ticket"}
    assert body["success"] is True
    assert body["message"] == "ticket created successfully"
    assert body["status"] == 200
    assert body["objectId"] == "CTC-0001"
    ticket = body["ticket"]
    assert set(ticket) == {
        "id",
        "tenant_id",
        "object_id",
        "etag",
        "summary",
        "data",
        "lookup_props",
        "attachments",
        "moved_to",
        "deleted_seq",
        "version",
        "status_type",
        "status_category",
        "created_at",
        "updated_at",
        "id_serial",
        "metrics",
        "slas",
        "priority",
        "queueId",
        "assignee",
    }
    assert UUID.match(ticket["id"])
    assert ticket["tenant_id"] == DEMO_TENANT
    assert ticket["object_id"] == "CTC-0001"
    assert UUID.match(ticket["etag"])
    assert ticket["summary"] == "Hardware request - new laptop"
    assert ticket["data"] == {
        TITLE: "Need a replacement laptop",
        DESCRIPTION: "<p>Current laptop battery no longer holds charge.</p>",
        NEEDED_WITHIN: "<2week",
        "offerId": "23629",
        "ccWatchers": [],
        "toWatchers": [],
        "submittedBy": "user@example.com",
        "lastUpdatedBy": {
            "lastName": "Doe",
            "username": "user@example.com",
            "firstName": "Jane",
        },
    }
    assert ticket["lookup_props"] == {"teamId": "james", "itemTypeId": "16910"}
    assert ticket["moved_to"] is None
    assert ticket["deleted_seq"] == -1
    assert ticket["version"] == 2
    assert ticket["status_type"] == "Open"
    assert ticket["status_category"] == "To-do Category"
    assert TIMESTAMP.match(ticket["created_at"]), ticket["created_at"]
    assert TIMESTAMP.match(ticket["updated_at"]), ticket["updated_at"]
    assert isinstance(ticket["id_serial"], int) and not isinstance(ticket["id_serial"], bool)
    assert ticket["metrics"] == []
    # The demo tenant routes "Needed within: <2week" to medium priority in its L1 queue, whose
    # round robin assigns the first available agent, and runs its standard SLA (wall clock).
    assert (ticket["priority"], ticket["queueId"]) == ("medium", "l1")
    assert ticket["assignee"] == "admin@example.com"
    clocks = {clock["kind"]: clock for clock in ticket["slas"]}
    assert set(clocks) == {"response", "resolution"}
    assert (clocks["response"]["targetMinutes"], clocks["resolution"]["targetMinutes"]) == (
        240,
        1440,
    )
    assert all(c["policyId"] == "standard" and c["state"] == "running" for c in clocks.values())


def test_demo_on_a_taken_port_says_so_and_exits_before_printing_a_token(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run_cli(tmp_path, "demo", "--port", str(port), timeout=60)

    assert result.returncode == 1, result
    assert result.stdout == ""
    assert "eyJ" not in result.stderr and "curl" not in result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    # It stopped before touching the database.
    assert not (tmp_path / "ticketing.db").exists()


def test_demo_print_config_prints_the_demo_tenant_file(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "demo", "--print-config")

    assert result.returncode == 0, result.stderr
    assert result.stdout == DEMO_CONFIG.read_text()
    assert "id: 820188ff-2036-4924-b80f-d11610735d86" in result.stdout
    assert not (tmp_path / "ticketing.db").exists()


def env_without_data_dir(home: Path, **extra: str) -> dict[str, str]:
    """An environment with no TICKETING_DATA_DIR and no XDG_DATA_HOME, HOME at `home`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TICKETING_") and k != "XDG_DATA_HOME"
    }
    env.update(HOME=str(home), **extra)
    return env


DEMO_TOKEN_ARGS = (
    "--tenant",
    DEMO_TENANT,
    "--realm",
    "demo",
    "--user",
    "u",
    "--roles",
    "ticket_agent",
)


def token_from(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "ticketing", "token", *DEMO_TOKEN_ARGS],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.parametrize("xdg", [False, True], ids=["home", "xdg-data-home"])
def test_token_signs_with_the_same_key_from_any_folder(tmp_path: Path, xdg: bool) -> None:
    home = tmp_path / "home"
    env = env_without_data_dir(home)
    if xdg:
        env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
        key_file = tmp_path / "xdg" / "ticketing" / "dev-signing-key.pem"
    else:
        key_file = home / ".local" / "share" / "ticketing" / "dev-signing-key.pem"

    first = token_from(tmp_path / "one", env)
    second = token_from(tmp_path / "two" / "deeper", env)

    key = load_or_create_dev_key(key_file)
    for result in (first, second):
        assert jwt.get_unverified_header(result.stdout.strip())["kid"] == key.kid
        assert f"ticketing: signed with the development key {key_file}" in result.stderr
    assert not (tmp_path / "one" / "data").exists()


def test_server_accepts_a_token_minted_in_another_folder(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    env = env_without_data_dir(tmp_path / "home", PYTHONUNBUFFERED="1")
    port = free_port()
    (tmp_path / "server").mkdir()
    log = tmp_path / "demo.err"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "ticketing", "demo", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=tmp_path / "server",
        )
    processes.append(process)
    wait_healthy(process, f"http://127.0.0.1:{port}", log)
    key_file = tmp_path / "home" / ".local" / "share" / "ticketing" / "dev-signing-key.pem"
    assert f"trusting tokens signed with the development key {key_file}" in log.read_text()

    token = token_from(tmp_path / "elsewhere", env).stdout.strip()
    response = httpx.get(
        f"http://127.0.0.1:{port}/api/v2/ticketing/tenant/sc/offers",
        params={"type": "agent", "module": "ticketing"},
        headers={
            "authorization": f"Bearer {token}",
            "x-tenantid": DEMO_TENANT,
            "realmname": "demo",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("xdg", [False, True], ids=["home", "xdg-data-home"])
def test_make_reset_empties_the_demo_database_and_keeps_the_key(tmp_path: Path, xdg: bool) -> None:
    env = env_without_data_dir(tmp_path / "home")
    if xdg:
        env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    # The folder the service itself would use with this environment.
    folder = Path(
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from ticketing.config import Settings; print(Settings().data_dir)",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    folder.mkdir(parents=True)
    for name in ("ticketing.db", "ticketing.db-wal", "ticketing.db-shm", "dev-signing-key.pem"):
        (folder / name).write_text("x")

    subprocess.run(
        ["make", "--no-print-directory", "reset"],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        check=True,
        timeout=60,
    )

    assert sorted(p.name for p in folder.iterdir()) == ["dev-signing-key.pem"]


def make_run(data_dir: Path, port: int, out: Path) -> subprocess.Popen[bytes]:
    """`make run PORT=<port>` from the project folder, in a process group of its own (make and
    the demo it starts), its output in `out`."""
    with out.open("wb") as sink:
        return subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PORT={port}"],
            env=cli_env(data_dir, PYTHONUNBUFFERED="1"),
            cwd=PROJECT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Ends a process started by make_run and the demo under it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_make_run_port_serves_on_that_port(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "make.out"
    process = make_run(tmp_path, port, out)
    try:
        wait_healthy(process, f"http://127.0.0.1:{port}", out)
        deadline = time.monotonic() + 10
        while "export TOKEN=" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        printed = out.read_text()
        assert f"export BASE=http://127.0.0.1:{port}\n" in printed, printed
        token = re.search(r"^export TOKEN=(\S+)$", printed, flags=re.MULTILINE)
        assert token, printed
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/v2/ticketing/tenant/sc/offers",
            params={"type": "agent", "module": "ticketing"},
            headers={
                "authorization": f"Bearer {token.group(1)}",
                "x-tenantid": DEMO_TENANT,
                "realmname": "demo",
            },
            timeout=30,
        )
        assert response.status_code == 200, response.text
    finally:
        stop_group(process)


def test_make_run_on_a_taken_port_says_so_and_fails_before_printing_a_token(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = tmp_path / "make.out"
        process = make_run(tmp_path, port, out)
        try:
            returncode = process.wait(timeout=120)
        finally:
            stop_group(process)

    printed = out.read_text()
    assert returncode != 0, printed
    assert f"ticketing: port {port} on 127.0.0.1 is already in use" in printed, printed
    assert "eyJ" not in printed and "export" not in printed and "curl" not in printed, printed
    assert not (tmp_path / "ticketing.db").exists()
