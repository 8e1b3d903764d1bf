"""The README works as printed: its walkthrough's shell blocks, pasted into bash after the
export lines `ticketing demo` prints, run top to bottom against the demo server (SQLite, and
PostgreSQL when configured); its PostgreSQL steps, followed by the same walkthrough; and it
lists every `make help` target."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import BACKENDS, PG_URL
from tests.support import free_port, sibling_database
from tests.test_cli import cli_env, stop, wait_healthy

PROJECT = Path(__file__).resolve().parents[1]
README = PROJECT / "README.md"
WALKTHROUGH = "## Walkthrough: the API from a shell"
POSTGRESQL_STEPS = "## Running on PostgreSQL"
# The count answer the README documents for its count block.
DOCUMENTED_COUNT = '{"success": true, "status": 200, "data": {"count": 1}}'
MARK = "@@ walkthrough block "
# The story the README tells, in the order it must tell it.
STORY = ["create", "get", "update", "comment", "history", "list", "count", "delete"]


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start : end if end != -1 else len(text)]


def sh_blocks(text: str) -> list[str]:
    """The ```sh blocks of a piece of the README, in its order."""
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def walkthrough_section() -> str:
    return readme_section(WALKTHROUGH)


def walkthrough_blocks() -> list[str]:
    """The walkthrough's ```sh blocks, in the README's order."""
    return sh_blocks(walkthrough_section())


def later_curl_blocks() -> list[str]:
    """The ```sh blocks with a curl after the walkthrough (attachments, queues, portal), which
    go on in the walkthrough's shell, in the README's order."""
    text = README.read_text()
    after = text[text.index(WALKTHROUGH) + len(walkthrough_section()) :]
    return [block for block in sh_blocks(after) if "curl " in block]


def example_blocks() -> list[str]:
    """Every shell example to paste after `make run`, top to bottom."""
    return walkthrough_blocks() + later_curl_blocks()


@dataclass
class Demo:
    base_url: str
    exports: list[str]
    home: Path


@pytest.fixture(scope="module", params=BACKENDS)
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    """`ticketing demo` on a free port with a data folder of its own, and its export lines;
    on PostgreSQL (`TICKETING_DATABASE_URL`), in a new database of its own."""
    home = tmp_path_factory.mktemp("readme")
    port = free_port()
    stdout_path, stderr_path = home / "demo.out", home / "demo.err"
    with ExitStack() as stack:
        extra = {"PYTHONUNBUFFERED": "1"}
        if request.param == "postgresql":
            assert PG_URL
            extra["TICKETING_DATABASE_URL"] = stack.enter_context(
                sibling_database(PG_URL, "_readme_demo")
            )
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "ticketing", "demo", "--port", str(port)],
                env=cli_env(home, **extra),
                stdout=out,
                stderr=err,
                cwd=home,
            )
        stack.callback(stop, process)
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(process, base_url, stderr_path)
        deadline = time.monotonic() + 10
        while "export TOKEN=" not in stdout_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        exports = [
            line for line in stdout_path.read_text().splitlines() if line.startswith("export ")
        ]
        yield Demo(base_url, exports, home)


def run_walkthrough(
    prelude: list[str], blocks: list[str], *, home: Path, cwd: Path | None = None
) -> list[str]:
    """Runs `prelude` (the export lines), then the blocks, in one bash session from the
    project folder (or `cwd`), stopping at the first failing command; returns each block's
    output."""
    script = ["set -eo pipefail", *prelude]
    for number, block in enumerate(blocks):
        script += [f"echo '{MARK}{number}'", block]
    script.append(f"echo '{MARK}end'")
    venv_bin = str(Path(sys.executable).parent)
    env = cli_env(home, TMPDIR=str(home))
    env["PATH"] = f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}"
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        env=env,
        cwd=cwd or PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    parts = re.split(rf"^{re.escape(MARK)}(\w+)\n", result.stdout, flags=re.MULTILINE)
    reached = parts[1::2]
    outputs = parts[2::2]
    failed = reached[-1] if reached else "before the first block"
    assert result.returncode == 0 and reached[-1:] == ["end"], (
        f"walkthrough block {failed} failed (exit {result.returncode}):\n"
        f"{blocks[int(failed)] if failed.isdigit() else ''}\n"
        f"--- stdout:\n{outputs[-1] if outputs else result.stdout}\n--- stderr:\n{result.stderr}"
    )
    return outputs[: len(blocks)]


def json_documents(output: str) -> list[Any]:
    """The JSON objects printed at the start of a line, compact or indented."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    position = 0
    for match in re.finditer(r"^\{", output, flags=re.MULTILINE):
        if match.start() < position:
            continue
        document, position = decoder.raw_decode(output, match.start())
        found.append(document)
    return found


def kind_of(document: dict[str, Any]) -> str:
    """Which step of the story an answer belongs to."""
    message = document.get("message", "")
    data = document.get("data")
    if document.get("error"):
        return "error"
    if message == "ticket created successfully":
        return "create"
    if message == "ticket updated successfully":
        return "update"
    if message == "ticket deleted successfully":
        return "delete"
    if message.startswith("comment"):
        return "comment"
    if message in ("ticket types fetched successfully", "offers fetched successfully"):
        return "catalog"
    if "ticket" in document:
        return "get"
    if isinstance(data, dict) and "statuses" in data:
        return "meta"
    if isinstance(data, dict) and set(data) == {"count"}:
        return "count"
    if isinstance(data, dict) and data.get("value") and "action" in data["value"][0]:
        return "history"
    if isinstance(data, dict) and data.get("value") and "body" in data["value"][0]:
        return "comment"
    if isinstance(data, dict) and "value" in data:
        return "list"
    return "unknown"


def check_walkthrough(outputs: list[str], first: int) -> None:
    """The answers are the ones the README documents; `first` is the number the walkthrough's
    laptop ticket gets (display IDs go on across runs)."""
    laptop, dock = f"CTC-{first:04d}", f"CTC-{first + 1:04d}"
    steps: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for number, output in enumerate(outputs):
        for document in json_documents(output):
            steps.setdefault(kind_of(document), []).append((number, document))
    assert "unknown" not in steps, steps["unknown"]

    # The story, in order: each step's first answer comes from a later block than the last's.
    first_blocks = [steps[step][0][0] for step in STORY]
    assert first_blocks == sorted(first_blocks), dict(zip(STORY, first_blocks, strict=True))

    for kind, answers in steps.items():
        for _, document in answers:
            if kind == "error":
                continue
            assert document["success"] is True and document["status"] == 200, document

    catalog = {d["message"]: d["data"] for _, d in steps["catalog"]}
    types = catalog["ticket types fetched successfully"]["value"]
    assert [t["id"] for t in types] == ["16910", "16911"]
    offers = catalog["offers fetched successfully"]["offers"]
    assert {o["id"]: o["item_type"] for o in offers} == {"23629": "16910", "23630": "16911"}
    assert {"name": "In Progress", "category": "In-Progress Category"} in steps["meta"][0][1][
        "data"
    ]["statuses"]

    created = [d for _, d in steps["create"]]
    assert created[0]["objectId"] == laptop
    assert created[0]["ticket"]["version"] == 2
    assert created[0]["ticket"]["status_type"] == "Open"

    (_, got) = steps["get"][0]
    assert got["objectId"] == laptop
    assert got["ticket"]["etag"] == created[0]["ticket"]["etag"]
    get_block = outputs[steps["get"][0][0]]
    assert re.search(r"^304$", get_block, flags=re.MULTILINE), get_block

    (_, updated) = steps["update"][0]
    assert updated["ticket"]["version"] == 3
    assert updated["ticket"]["status_type"] == "In Progress"
    assert updated["ticket"]["summary"] == "Hardware request - new laptop, 32 GB"

    added, listed = (d for _, d in steps["comment"])
    assert added["comment"]["internal"] is True
    assert [c["id"] for c in listed["data"]["value"]] == [added["comment"]["id"]]

    (_, history) = steps["history"][0]
    entries = history["data"]["value"]
    assert [(e["version"], e["action"]) for e in entries] == [(2, "create"), (3, "update")]

    (_, page) = steps["list"][0]
    assert page["data"]["count"] == 1
    assert [t["object_id"] for t in page["data"]["value"]] == [laptop]

    # The count answer is exactly the one the README prints.
    assert DOCUMENTED_COUNT in walkthrough_section()
    assert [d for _, d in steps["count"]] == [json.loads(DOCUMENTED_COUNT)]

    (_, deleted) = steps["delete"][0]
    assert deleted["objectId"] == laptop
    errors = [d for _, d in steps["error"]]
    assert [(e["status"], e["code"]) for e in errors] == [(404, "NOT_FOUND")], errors

    # The idempotent retry: two identical answers, the second marked as a replay.
    retried = created[1:]
    assert len(retried) == 2
    assert retried[0] == retried[1]
    assert retried[0]["objectId"] == dock
    retry_block = outputs[steps["create"][1][0]]
    replayed = re.findall(r"^idempotent-replayed: true\r?$", retry_block, re.I | re.M)
    assert len(replayed) == 1, retry_block
    etags = re.findall(r"^etag: (.+?)\r?$", retry_block, re.I | re.M)
    assert etags == [f'"{retried[0]["ticket"]["etag"]}"'] * 2


def check_later_examples(outputs: list[str], filed: str) -> None:
    """The attachments, queue and portal examples answered as the README says; `filed` is the
    display ID the attachments example's ticket gets."""
    attachments, queues, portal = outputs
    (upload,) = json_documents(attachments)
    assert upload["success"] is True and upload["attachment"]["name"] == "battery.txt"
    assert upload["attachment"]["size"] == len("Battery cycle count: 1204\n")
    assert re.search(rf"^FILED={filed} FILE={upload['attachment']['id']}$", attachments, re.M)
    assert "downloaded: the same bytes" in attachments
    assert re.search(r"^HTTP/1.1 206 ", attachments, flags=re.MULTILINE), attachments
    assert re.search(r"^content-range: bytes 0-6/26\r?$", attachments, re.I | re.M), attachments
    assert re.search(r"^Battery$", attachments, flags=re.MULTILINE), attachments

    listed, current, members, added, removed, away, back = json_documents(queues)
    for answer in (listed, current, members, added, removed, away, back):
        assert answer["success"] is True and answer["status"] == 200, answer
    assert [q["id"] for q in listed["data"]["value"]] == ["l1", "l2"]
    assert {q["id"] for q in current["data"]["value"]} == {"l1", "l2"}
    assert {m["userId"] for m in members["data"]["value"]} == {
        "admin@example.com",
        "agent@example.com",
    }
    assert added["data"]["userId"] == "lee@example.com"
    assert (away["data"]["availability"], back["data"]["availability"]) == ("away", "available")

    assert re.search(r"^HTTP/1.1 200 ", portal, flags=re.MULTILINE), portal
    assert re.search(r"^content-security-policy: default-src 'none'", portal, re.I | re.M)
    assert '<form method="post" action="/portal/sign-in">' in portal, portal
    # The admin's end of the demo agent's portal sessions (none were started).
    assert json_documents(portal) == [{"success": True, "status": 200, "ended": 0}], portal


def run_and_check_examples(prelude: list[str], *, home: Path, first: int) -> None:
    """Pastes every example after `prelude` and checks every answer; `first` is the display
    number the walkthrough's laptop ticket gets."""
    walkthrough = walkthrough_blocks()
    assert len(walkthrough) >= 10, walkthrough
    later = later_curl_blocks()
    assert len(later) == 3, later
    outputs = run_walkthrough(prelude, walkthrough + later, home=home)
    check_walkthrough(outputs[: len(walkthrough)], first=first)
    check_later_examples(outputs[len(walkthrough) :], filed=f"CTC-{first + 2:04d}")


def live_tickets(demo: Demo, search: str) -> int:
    token = next(line for line in demo.exports if line.startswith("export TOKEN="))
    response = httpx.post(
        f"{demo.base_url}/api/v2/ticketing/ticket/count",
        params={"type": "agent", "module": "ticketing"},
        headers={
            "authorization": f"Bearer {token.removeprefix('export TOKEN=')}",
            "x-tenantid": "820188ff-2036-4924-b80f-d11610735d86",
            "realmname": "demo",
        },
        json={"search": search},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["count"])


def test_demo_prints_the_exports_the_walkthrough_uses(demo: Demo) -> None:
    names = [line.removeprefix("export ").split("=", 1)[0] for line in demo.exports]
    assert names == ["BASE", "TENANT", "REALM", "TOKEN"]
    assert f"export BASE={demo.base_url}" in demo.exports
    blocks = "\n".join(walkthrough_blocks())
    for name in names:
        assert f"${name}" in blocks


def test_every_example_runs_as_printed_and_again_on_the_same_demo(demo: Demo) -> None:
    run_and_check_examples(demo.exports, home=demo.home, first=1)
    # The deleted laptop ticket is gone; the retried create made one ticket, not two; the
    # attachments example filed one.
    assert live_tickets(demo, "laptop") == 0
    assert live_tickets(demo, "Docking station") == 1
    assert live_tickets(demo, "Battery report") == 1

    # Pasted a second time on the same demo it works too, with the next display IDs.
    run_and_check_examples(demo.exports, home=demo.home, first=4)
    assert live_tickets(demo, "Docking station") == 2


@pytest.mark.postgresql
@pytest.mark.skipif(not PG_URL, reason="TICKETING_TEST_DATABASE_URL is not set")
def test_postgresql_steps_then_the_walkthrough(tmp_path: Path) -> None:
    """The README's PostgreSQL section, step by step, then the walkthrough unchanged: its
    `createdb` is a new database of the test's own; every other line runs as printed, from the
    project folder, with the server on a free port instead of 8000."""
    setup, exports = sh_blocks(readme_section(POSTGRESQL_STEPS))[:2]
    createdb, url_line, *loads, serve = setup.splitlines()
    readme_url = url_line.removeprefix("export TICKETING_DATABASE_URL=")
    assert createdb.startswith("createdb ") and url_line.startswith("export "), setup
    # The database `createdb` makes is the one the URL names.
    assert createdb.split()[-1] == urlsplit(readme_url).path.lstrip("/"), setup
    assert [line.split()[:2] for line in loads] == [
        [".venv/bin/ticketing", "migrate"],
        [".venv/bin/ticketing", "load"],
    ], setup
    # The demo tenant's one-click portal sign-in is asked for (else the API only).
    assert serve.startswith("TICKETING_DEV_SIGN_IN=true .venv/bin/ticketing serve "), setup
    assert "--port 8000" in serve, setup
    assert "http://127.0.0.1:8000" in exports and "ticketing token" in exports, exports

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    assert PG_URL
    with sibling_database(PG_URL, "_readme_steps") as url:
        env = cli_env(tmp_path, TICKETING_DATABASE_URL=url, PYTHONUNBUFFERED="1")
        for line in loads:
            done = subprocess.run(
                ["bash", "-c", line], env=env, cwd=PROJECT, capture_output=True, text=True
            )
            assert done.returncode == 0, (line, done.stdout, done.stderr)
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", "exec env " + serve.replace("--port 8000", f"--port {port}")],
                env=env,
                cwd=PROJECT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_healthy(process, base_url, log)
            prelude = exports.replace("http://127.0.0.1:8000", base_url).splitlines()
            run_and_check_examples(prelude, home=tmp_path, first=1)
        finally:
            stop(process)


def test_the_readme_lists_every_make_target() -> None:
    listed = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    targets = [line.split()[0] for line in listed.splitlines() if line.strip()]
    assert {"help", "install", "run", "reset", "test", "bench-sse"} <= set(targets), listed
    table = readme_section("## Quick start")
    missing = [
        target
        for target in targets
        if not re.search(rf"^\| `make {re.escape(target)}( \[[^]]*\])?` \|", table, re.MULTILINE)
    ]
    assert missing == [], f"make targets the README's table omits: {missing}"


# The test files that call the service's functions in the test process, without HTTP, as the
# README's "Tests" section names them.
IN_PROCESS = [
    "tests/test_attachment_content.py",
    "tests/test_desk_config.py",
    "tests/test_field_types.py",
    "tests/test_filters.py",
    "tests/test_sla_calendar.py",
    "tests/test_sla_clocks.py",
    "tests/test_migrations.py",
]
# The fixtures that start or reach a server (tests/conftest.py).
SERVER_FIXTURES = {"server", "tenant", "make_tenant", "http"}


def test_the_readme_names_the_in_process_tests_and_no_test_uses_an_in_process_client() -> None:
    tests_section = readme_section("## Tests")
    named = re.findall(r"`(tests/test_\w+\.py)`", tests_section)
    assert [name for name in named if name in IN_PROCESS] == IN_PROCESS, tests_section
    for name in IN_PROCESS:
        source = (PROJECT / name).read_text()
        # In-process indeed: nothing starts a server or speaks HTTP, and no test takes a
        # fixture that does.
        for word in ("start_server", "base_url", "httpx", "subprocess"):
            assert not re.search(rf"\b{word}\b", source), (name, word)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                arguments = {a.arg for a in node.args.args}
                assert not arguments & SERVER_FIXTURES, (name, node.name, arguments)
    # Every other test reaches the app over real HTTP: no test drives it in-process.
    for path in sorted((PROJECT / "tests").glob("*.py")):
        if path.name == Path(__file__).name:
            continue
        source = path.read_text()
        for client in ("TestClient", "ASGITransport", "create_app("):
            assert client not in source, (path.name, client)
