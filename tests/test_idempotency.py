"""Idempotency-Key on create and update: retries replay, reuse is refused, nothing doubles."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.support import TITLE, Tenant, seed_body
from tests.ticket_api import call, created, get_ticket


def _create(tenant: Tenant, key: str, body: Any = None, token: str | None = None) -> httpx.Response:
    headers = tenant.headers(token)
    headers["Idempotency-Key"] = key
    return tenant.create(body, headers=headers)


def test_a_retry_with_the_same_key_replays_the_first_answer(tenant: Tenant) -> None:
    first = _create(tenant, "order-1")
    second = _create(tenant, "order-1")
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert tenant.ticket_count() == 1


def test_the_same_key_with_another_body_is_422(tenant: Tenant) -> None:
    assert _create(tenant, "order-2").status_code == 200
    response = _create(tenant, "order-2", seed_body(summary="something else"))
    assert response.status_code == 422
    assert response.json() == {
        "error": True,
        "code": "IDEMPOTENCY_KEY_REUSED",
        "message": "This Idempotency-Key was used with a different request",
        "status": 422,
    }
    assert tenant.ticket_count() == 1


def test_concurrent_requests_with_one_key_create_one_ticket(tenant: Tenant) -> None:
    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            headers = {**tenant.headers(), "Idempotency-Key": "burst"}
            return list(
                await asyncio.gather(
                    *(
                        client.post(
                            f"{tenant.base_url}/api/v2/ticketing/ticket/create/james/16910",
                            params={"type": "template", "module": "ticketing"},
                            headers=headers,
                            json=seed_body(),
                        )
                        for _ in range(20)
                    )
                )
            )

    responses = asyncio.run(fire())
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["objectId"] for r in responses} == {"CTC-0001"}
    assert tenant.ticket_count() == 1


def test_keys_belong_to_the_caller_and_the_tenant(make_tenant: Callable[..., Tenant]) -> None:
    tenant, other = make_tenant(), make_tenant()
    alice = tenant.token(username="alice", email="alice@example.com")
    bob = tenant.token(username="bob", email="bob@example.com")
    assert _create(tenant, "shared", token=alice).json()["objectId"] == "CTC-0001"
    assert _create(tenant, "shared", token=bob).json()["objectId"] == "CTC-0002"
    assert _create(other, "shared").json()["objectId"] == "CTC-0001"
    assert tenant.ticket_count() == 2
    assert other.ticket_count() == 1


def test_a_refused_request_is_refused_again_and_creates_nothing(tenant: Tenant) -> None:
    body = seed_body()
    del body["ticketBody"][TITLE]
    first = _create(tenant, "bad", body)
    second = _create(tenant, "bad", body)
    assert first.status_code == second.status_code == 400
    assert second.json() == first.json()
    assert tenant.ticket_count() == 0
    assert _create(tenant, "good").json()["objectId"] == "CTC-0001"


def test_an_answer_lost_after_the_create_is_rebuilt_from_the_ticket(tenant: Tenant) -> None:
    first = created(_create(tenant, "lost"))
    # As if the process died after creating the ticket and before storing its answer.
    tenant.db.fetch(
        "UPDATE idempotency_keys SET status_code = NULL, response = NULL WHERE tenant_id = :t",
        t=uuid.UUID(tenant.id),
    )
    again = _create(tenant, "lost")
    assert again.status_code == 200
    assert created(again)["object_id"] == first["object_id"]
    assert created(again)["etag"] == first["etag"]
    assert tenant.ticket_count() == 1


def test_an_expired_key_can_be_used_again(tenant: Tenant) -> None:
    assert _create(tenant, "daily").json()["objectId"] == "CTC-0001"
    tenant.db.fetch(
        "UPDATE idempotency_keys SET created_at = :old WHERE tenant_id = :t",
        t=uuid.UUID(tenant.id),
        old=datetime(2000, 1, 1, tzinfo=UTC if tenant.db.name == "postgresql" else None),
    )
    assert _create(tenant, "daily").json()["objectId"] == "CTC-0002"


def test_malformed_keys_are_400(tenant: Tenant) -> None:
    for key in ("x" * 256, "with space", "ünïcode"):
        headers: dict[str, Any] = {**tenant.headers(), "Idempotency-Key": key.encode()}
        response = tenant.create(headers=headers)
        assert response.status_code == 400, key
        assert "Idempotency-Key" in response.json()["validationResult"]["reason"]
    assert tenant.ticket_count() == 0


def test_a_retried_update_replays_instead_of_conflicting(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    body = {"etag": ticket["etag"], "summary": "Updated once"}
    first = call(
        tenant, "PATCH", "/ticket/update/CTC-0001", json=body, headers={"Idempotency-Key": "upd-1"}
    )
    second = call(
        tenant, "PATCH", "/ticket/update/CTC-0001", json=body, headers={"Idempotency-Key": "upd-1"}
    )
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert get_ticket(tenant, "CTC-0001")["version"] == ticket["version"] + 1
    without_key = call(tenant, "PATCH", "/ticket/update/CTC-0001", json=body)
    assert without_key.status_code == 409


def test_a_retried_update_that_changes_nothing_replays_and_writes_nothing(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    body = {"etag": ticket["etag"]}
    key = {"Idempotency-Key": "noop-1"}
    first = call(tenant, "PATCH", "/ticket/update/CTC-0001", json=body, headers=key)
    second = call(tenant, "PATCH", "/ticket/update/CTC-0001", json=body, headers=key)
    assert first.status_code == second.status_code == 200
    assert first.json()["ticket"] == ticket
    assert second.json() == first.json()
    assert second.headers["etag"] == first.headers["etag"] == f'"{ticket["etag"]}"'
    assert second.headers.get("idempotent-replayed") == "true"
    assert get_ticket(tenant, "CTC-0001") == ticket
    # The same key with a real change is another request.
    changed = {"etag": ticket["etag"], "summary": "changed"}
    reused = call(tenant, "PATCH", "/ticket/update/CTC-0001", json=changed, headers=key)
    assert reused.status_code == 422
    assert get_ticket(tenant, "CTC-0001") == ticket
