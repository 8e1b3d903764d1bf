"""The `ticketing` command: migrate, serve, token and demo, as real subprocesses (SQLite)."""

from __future__ import annotations

import json
import os
import re
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
from ticketing.kit import migrate

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DEMO_TENANT = "820188ff-2036-4924-b80f-d11610735d86"


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
    while "Discover" not in stdout_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    printed = stdout_path.read_text()

    # A token is printed on a line of its own, and it is a JWT for the demo tenant.
    tokens = re.findall(r"^(eyJ[\w-]+\.[\w-]+\.[\w-]+)$", printed, flags=re.MULTILINE)
    assert tokens, printed
    claims = jwt.decode(tokens[0], options={"verify_signature": False})
    assert claims["tenant_id"] == DEMO_TENANT

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
    assert isinstance(ticket["version"], int) and ticket["version"] >= 1
    assert ticket["status_type"] == "Open"
    assert ticket["status_category"] == "To-do Category"
    assert TIMESTAMP.match(ticket["created_at"]), ticket["created_at"]
    assert TIMESTAMP.match(ticket["updated_at"]), ticket["updated_at"]
    assert isinstance(ticket["id_serial"], int) and not isinstance(ticket["id_serial"], bool)
    assert ticket["metrics"] == []
    assert ticket["slas"] == []
    assert (ticket["priority"], ticket["queueId"], ticket["assignee"]) == (None, None, None)
