"""The served /openapi.json as third-party tools take it: it validates as OpenAPI, and a client
generated from it (openapi-python-client) has every operation and works against the server.

Both tools are the ones clients use; the document is fetched from a running server, so what is
tested is what is served.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from tests.support import TITLE, Server, Tenant, seed_body

BASE = "/api/v2/ticketing"
CREATE = ("POST", f"{BASE}/ticket/create/{{}}/{{}}")
GET = ("GET", f"{BASE}/ticket/{{}}")
LIST = ("POST", f"{BASE}/ticket/list")
DOWNLOAD_PATH = f"{BASE}/ticket/{{objectId}}/attachments/{{attachmentId}}"
PACKAGE = "ticketing_client"  # the generator's name for a document titled "Ticketing"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# In each generated operation module: the request's method and URL template.
REQUEST_LINE = re.compile(r'"method": "(\w+)",\s*"url": "([^"]+)"')


def operation_key(method: str, path: str) -> tuple[str, str]:
    """(METHOD, path with every {parameter} blank): the document names path parameters as the
    server does (`{objectId}`), the generated code as Python does (`{object_id}`)."""
    return method.upper(), re.sub(r"\{[^}]*\}", "{}", path)


@pytest.fixture
def document(server: Server, http: httpx.Client) -> dict[str, Any]:
    response = http.get(f"{server.base_url}/openapi.json")
    assert response.status_code == 200, response.text
    served: dict[str, Any] = response.json()
    return served


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[Path]:
    """The folder that the client's package is generated into; importable while the test
    runs."""
    out = tmp_path / "client"
    sys.path.insert(0, str(out))
    yield out
    sys.path.remove(str(out))
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


def test_served_openapi_document_is_valid_openapi(document: dict[str, Any]) -> None:
    # Raises on the first violation (a parameter listed twice was one).
    validate(document)
    for operations in document["paths"].values():
        for method, operation in operations.items():
            places = [(p["name"], p["in"]) for p in operation.get("parameters", [])]
            assert len(places) == len(set(places)), (method, operation["operationId"])


def test_attachment_download_answers_declare_a_concrete_media_type(
    document: dict[str, Any],
) -> None:
    responses = document["paths"][DOWNLOAD_PATH]["get"]["responses"]
    for status in ("200", "206"):
        content = responses[status]["content"]
        # application/octet-stream first (what generators read as bytes); `*/*` because the
        # file comes with its stored Content-Type; never a JSON body.
        assert list(content) == ["application/octet-stream", "*/*"], (status, content)
        assert content["application/octet-stream"]["schema"] == {
            "type": "string",
            "format": "binary",
        }
    assert "Content-Range" in responses["206"]["headers"]


def test_generated_client_covers_every_operation_and_creates_reads_and_lists_tickets(
    server: Server, tenant: Tenant, document: dict[str, Any], generated: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document))
    bin_dir = Path(sys.executable).parent
    started = time.monotonic()
    result = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--output-path",
            # With no project metadata, the output path is the package itself.
            str(generated / PACKAGE),
            "--meta",
            "none",
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        # The generator formats its output with ruff, found on PATH.
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # It prints each skipped operation or omitted answer as a WARNING.
    assert "warning" not in output.lower(), output
    assert time.monotonic() - started < 30, "generating the client took over 30 s"

    # Every operation of the document is a module of the generated client.
    operations = {
        operation_key(method, path): operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }
    modules: dict[tuple[str, str], str] = {}
    for source in (generated / PACKAGE / "api").rglob("*.py"):
        match = REQUEST_LINE.search(source.read_text())
        if match:
            name = ".".join(source.relative_to(generated).with_suffix("").parts)
            modules[operation_key(match[1], match[2])] = name
    missing = {key: operation_id for key, operation_id in operations.items() if key not in modules}
    assert not missing, f"operations without a module in the generated client: {missing}"
    assert len(modules) == len(operations)

    # A file (200, or 206 for a range) is read as its bytes, not parsed as JSON.
    download_module = modules[operation_key("GET", DOWNLOAD_PATH)]
    download = (generated / Path(*download_module.split("."))).with_suffix(".py").read_text()
    for status in (200, 206):
        as_bytes = rf"== {status}:\s+response_{status} = File\(payload=BytesIO\(response\.content\)"
        assert re.search(as_bytes, download), status

    package = importlib.import_module(PACKAGE)
    create, get, listing = (importlib.import_module(modules[key]) for key in (CREATE, GET, LIST))
    models = importlib.import_module(f"{PACKAGE}.models")

    # authorization comes from the client's token; accept is not a parameter in OpenAPI
    # (it is ignored there), so the client sends it for every call.
    client = package.AuthenticatedClient(
        base_url=server.base_url,
        token=tenant.token(),
        headers={"accept": "application/json"},
        raise_on_unexpected_status=True,
    )
    with client:
        common = {
            "client": client,
            "type_": enum_argument(create, "type_", "template"),
            "module": enum_argument(create, "module", "ticketing"),
            "x_tenantid": tenant.id,
            "realmname": tenant.realm,
        }
        # A header is a string: the client takes the tenant id as one.
        assert inspect.signature(create.sync_detailed).parameters["x_tenantid"].annotation in (
            str,
            "str",
        )
        created = create.sync_detailed(
            "james", "16910", body=models.TicketCreate.from_dict(seed_body()), **common
        )
        assert created.status_code == 200, created.content
        assert isinstance(created.parsed, models.TicketCreated), created.parsed
        object_id = created.parsed.object_id
        assert object_id.startswith("CTC-")
        assert created.parsed.ticket.summary == "Hardware request - new laptop"
        assert created.parsed.ticket.data[TITLE] == "Need a replacement laptop"

        common["type_"] = enum_argument(get, "type_", "template")
        common["module"] = enum_argument(get, "module", "ticketing")
        read = get.sync_detailed(object_id, **common)
        assert read.status_code == 200, read.content
        assert isinstance(read.parsed, models.TicketEnvelope), read.parsed
        assert read.parsed.object_id == object_id
        assert read.parsed.ticket.id == created.parsed.ticket.id
        assert read.parsed.ticket.summary == "Hardware request - new laptop"
        assert read.parsed.ticket.data["offerId"] == "23629"
        assert read.parsed.ticket.etag == created.parsed.ticket.etag

        common["type_"] = enum_argument(listing, "type_", "template")
        common["module"] = enum_argument(listing, "module", "ticketing")
        listed = listing.sync_detailed(**common)
        assert listed.status_code == 200, listed.content
        assert isinstance(listed.parsed, models.TicketListResponse), listed.parsed
        assert listed.parsed.data.count == 1
        assert [t.object_id for t in listed.parsed.data.value] == [object_id]
        assert listed.parsed.data.value[0].summary == "Hardware request - new laptop"


def enum_argument(module: ModuleType, parameter: str, value: str) -> Any:
    """`value` as the enum the generated operation takes for `parameter`."""
    annotation = inspect.signature(module.sync_detailed).parameters[parameter].annotation
    return annotation(value)
