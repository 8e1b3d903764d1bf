"""HTTP helpers for the ticket lifecycle tests: calls, error checks, and common steps."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.support import Tenant, everything_body

QUERY = {"type": "template", "module": "ticketing"}
API = "/api/v2/ticketing"


def call(
    tenant: Tenant,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """One request to /api/v2/ticketing{path} with the tenant's standard headers."""
    all_headers = tenant.headers(token)
    all_headers.update(headers or {})
    return tenant.client.request(
        method,
        f"{tenant.base_url}{API}{path}",
        params=QUERY if params is None else params,
        headers=all_headers,
        json=json,
    )


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The error envelope {"error": true, "code", "message", "status"} with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["error"] is True, body
    assert isinstance(body.get("code"), str) and body["code"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert body["status"] == status, body
    assert set(body) <= {"error", "code", "message", "status", "validationResult"}, body
    if code is not None:
        assert body["code"] == code, body
    return body  # type: ignore[no-any-return]


def reason_of(response: httpx.Response) -> dict[str, list[str]]:
    """A 400 INPUT_VALIDATION_FAILURE; returns validationResult.reason."""
    body = assert_error(response, 400, "INPUT_VALIDATION_FAILURE")
    assert body["validationResult"]["result"] is False, body
    reason = body["validationResult"]["reason"]
    assert isinstance(reason, dict) and reason, body
    return reason  # type: ignore[no-any-return]


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()["ticket"]  # type: ignore[no-any-return]


def numbered(tenant: Tenant, ticket: dict[str, Any], timeout: float = 10) -> int:
    """The outbox position of the ticket's created event, once an event hub has numbered it
    (a server numbers committed events a few times a second)."""
    deadline = time.monotonic() + timeout
    while True:
        found = tenant.db.fetch(
            "SELECT position FROM ticket_events"
            " WHERE ticket_id = :t AND kind = 'ticket.created' AND position IS NOT NULL",
            t=uuid.UUID(ticket["id"]),
        )
        if found:
            return int(found[0][0])
        assert time.monotonic() < deadline, "the created event was not numbered"
        time.sleep(0.05)


def create_everything(tenant: Tenant, token: str | None = None, **fields: Any) -> dict[str, Any]:
    """A ticket of item type 20000 (every field type, prefix ALL)."""
    return created(
        tenant.create(
            everything_body(**fields), item_type="20000", catalog_type="agent", token=token
        )
    )


def get_ticket(tenant: Tenant, object_id: str, token: str | None = None) -> dict[str, Any]:
    response = tenant.get(f"/ticket/{object_id}", token=token)
    assert response.status_code == 200, response.text
    return response.json()["ticket"]  # type: ignore[no-any-return]


def patch(
    tenant: Tenant,
    object_id: str,
    body: Any,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return call(
        tenant, "PATCH", f"/ticket/update/{object_id}", token=token, json=body, headers=headers
    )


def updated(response: httpx.Response) -> dict[str, Any]:
    """A successful update's envelope; returns the ticket."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "ticket updated successfully"
    assert body["status"] == 200
    assert body["objectId"] == body["ticket"]["object_id"]
    return body["ticket"]  # type: ignore[no-any-return]


def delete(
    tenant: Tenant, object_id: str, etag: str | None, token: str | None = None
) -> httpx.Response:
    headers = {} if etag is None else {"If-Match": f'"{etag}"'}
    return call(tenant, "DELETE", f"/ticket/{object_id}", token=token, headers=headers)


def list_ids(
    tenant: Tenant, body: dict[str, Any] | None = None, token: str | None = None
) -> list[str]:
    response = call(tenant, "POST", "/ticket/list", token=token, json=body or {"top": 100})
    assert response.status_code == 200, response.text
    return [t["object_id"] for t in response.json()["data"]["value"]]


def count(tenant: Tenant, body: dict[str, Any] | None = None, token: str | None = None) -> int:
    response = call(tenant, "POST", "/ticket/count", token=token, json=body or {})
    assert response.status_code == 200, response.text
    return response.json()["data"]["count"]  # type: ignore[no-any-return]


def user_token(tenant: Tenant, name: str = "alice", **kw: Any) -> str:
    """A ticket_user token for `name` (submittedBy is the email)."""
    return tenant.token(
        roles=["ticket_user"],
        username=name,
        email=f"{name}@example.com",
        first_name=name.title(),
        last_name="User",
        **kw,
    )


def unchanged(tenant: Tenant, before: dict[str, Any]) -> None:
    """Nothing was written: the ticket reads back exactly as before."""
    after = get_ticket(tenant, before["object_id"])
    assert after == before


def history_len(tenant: Tenant, object_id: str) -> int:
    response = tenant.get(f"/ticket/{object_id}/history")
    assert response.status_code == 200, response.text
    return len(response.json()["data"]["value"])
