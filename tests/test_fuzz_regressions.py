"""What fuzzing /openapi.json found, kept as plain HTTP tests (tests/test_fuzz.py runs the fuzzer).

Each case is an answer the server gave that the document did not describe, or a request the
document described wrongly: list and count sent without a body, validation failures documented
as the framework's 422 instead of the 400 they are, a reused Idempotency-Key (422) and one in
use (409), bodies over 1 MiB (413) and headers over 32 KiB (431) on every operation, and
/healthz answering 503 while the database is unreachable. Each test sends the request, checks
the answer, and checks that the operation documents that status.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import Server, Tenant, seed_body
from tests.ticket_api import API, QUERY, call, created


@pytest.fixture(scope="module")
def document(server: Server) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/openapi.json", timeout=10)
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def documented(document: dict[str, Any], method: str, path: str) -> set[int]:
    """The statuses /openapi.json lists for one operation."""
    return {int(status) for status in document["paths"][path][method.lower()]["responses"]}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def test_list_and_count_answer_without_a_body(tenant: Tenant, document: dict[str, Any]) -> None:
    created(tenant.create())
    for what in ("list", "count"):
        path = f"{API}/ticket/{what}"
        response = tenant.client.post(
            f"{tenant.base_url}{path}", params=QUERY, headers=tenant.headers()
        )
        assert response.status_code == 200, response.text
        assert document["paths"][path]["post"]["requestBody"]["required"] is False
    body = call(tenant, "POST", "/ticket/count").json()
    assert body["data"] == {"count": 1}


def test_validation_failures_are_400_and_no_operation_documents_the_frameworks_422(
    tenant: Tenant, document: dict[str, Any]
) -> None:
    response = call(tenant, "POST", "/ticket/list", json={"top": "ten"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INPUT_VALIDATION_FAILURE"
    for method, path, operation in operations(document):
        responses = operation["responses"]
        assert "400" in responses or not path.startswith(API), (method, path)
        # 422 means one thing here: an Idempotency-Key reused with another request.
        if "422" in responses:
            assert "IDEMPOTENCY_KEY_REUSED" in responses["422"]["description"], (method, path)
            assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"])


def test_reused_idempotency_key_is_a_documented_422(
    tenant: Tenant, document: dict[str, Any]
) -> None:
    ticket = created(tenant.create())
    key = {"Idempotency-Key": "fuzz-1"}
    path = f"/ticket/update/{ticket['object_id']}"
    first = call(tenant, "PATCH", path, json={"etag": ticket["etag"], "summary": "a"}, headers=key)
    assert first.status_code == 200, first.text
    again = call(tenant, "PATCH", path, json={"etag": ticket["etag"], "summary": "b"}, headers=key)
    assert again.status_code == 422
    assert again.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert {409, 422} <= documented(document, "PATCH", f"{API}/ticket/update/{{objectId}}")
    # A key belongs to one request: the same key on a create is another request too.
    again = tenant.create(seed_body(), headers={**tenant.headers(), **key})
    assert again.status_code == 422
    assert again.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert tenant.ticket_count() == 1
    create = f"{API}/ticket/create/{{teamId}}/{{itemTypeId}}"
    assert {409, 422} <= documented(document, "POST", create)


BODY_CALLS = [
    ("POST", "/ticket/create/james/16910", f"{API}/ticket/create/{{teamId}}/{{itemTypeId}}"),
    ("PATCH", "/ticket/update/CTC-0001", f"{API}/ticket/update/{{objectId}}"),
    ("POST", "/ticket/list", f"{API}/ticket/list"),
    ("POST", "/ticket/count", f"{API}/ticket/count"),
    ("POST", "/ticket/CTC-0001/comments", f"{API}/ticket/{{objectId}}/comments"),
]


@pytest.mark.parametrize(("method", "url", "path"), BODY_CALLS)
def test_bodies_over_one_mebibyte_are_a_documented_413(
    tenant: Tenant, document: dict[str, Any], method: str, url: str, path: str
) -> None:
    created(tenant.create())
    response = tenant.client.request(
        method,
        f"{tenant.base_url}{API}{url}",
        params=QUERY,
        headers=tenant.headers(),
        content=b'{"summary": "' + b"x" * (1024 * 1024) + b'"}',
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert 413 in documented(document, method, path)
    assert tenant.ticket_count() == 1


def test_headers_over_32_kib_are_a_documented_431_on_every_operation(
    tenant: Tenant, document: dict[str, Any]
) -> None:
    response = tenant.get("/tenant/meta", headers=tenant.headers(**{"X-Padding": "a" * 40000}))
    assert response.status_code == 431
    assert response.json()["code"] == "REQUEST_HEADER_FIELDS_TOO_LARGE"
    for method, path, _operation in operations(document):
        assert 431 in documented(document, method, path), (method, path)


def test_every_operation_documents_500_and_healthz_documents_503(document: dict[str, Any]) -> None:
    # 500: what an unexpected error answers (tests/test_errors.py provokes one); 503 on
    # /healthz: its answer while the database is unreachable (tests/test_resilience.py).
    for method, path, _operation in operations(document):
        assert 500 in documented(document, method, path), (method, path)
    assert documented(document, "GET", "/healthz") == {200, 431, 500, 503}
