"""Counts answered from counters agree with counts made by scanning, through every change."""

from __future__ import annotations

from typing import Any

from tests.support import Tenant

PARAMS = {"type": "agent", "module": "ticketing"}
SCAN = {"column": "createdAt", "op": "GE", "operand": "2000-01-01T00:00:00Z"}


def _count(tenant: Tenant, body: dict[str, Any]) -> int:
    response = tenant.client.post(
        f"{tenant.base_url}/api/v2/ticketing/ticket/count",
        params=PARAMS,
        headers=tenant.headers(),
        json=body,
    )
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["count"])


def _listed_count(tenant: Tenant, body: dict[str, Any]) -> int:
    response = tenant.client.post(
        f"{tenant.base_url}/api/v2/ticketing/ticket/list",
        params=PARAMS,
        headers=tenant.headers(),
        json=body,
    )
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["count"])


def _status(name: str, *extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "filter": {
            "op": "AND",
            "operand": [{"column": "status", "op": "EQ", "operand": name}, *extra],
        }
    }


def _assert_counts(tenant: Tenant, expected: dict[str, int]) -> None:
    total = sum(expected.values())
    assert _count(tenant, {}) == total
    assert _listed_count(tenant, {}) == total
    assert _count(tenant, {"filter": {"op": "AND", "operand": [SCAN]}}) == total
    for status, number in expected.items():
        assert _count(tenant, _status(status)) == number, status
        assert _listed_count(tenant, _status(status)) == number, status
        assert _count(tenant, _status(status, SCAN)) == number, status
    in_filter = {
        "filter": {
            "op": "OR",
            "operand": [{"column": "status", "op": "IN", "operand": list(expected)}],
        }
    }
    assert _count(tenant, in_filter) == total


def _update(tenant: Tenant, object_id: str, **changes: Any) -> None:
    current = tenant.get(f"/ticket/{object_id}").json()["ticket"]["etag"]
    response = tenant.client.patch(
        f"{tenant.base_url}/api/v2/ticketing/ticket/update/{object_id}",
        params=PARAMS,
        headers=tenant.headers(),
        json={"etag": current, **changes},
    )
    assert response.status_code == 200, response.text


def _delete(tenant: Tenant, object_id: str) -> None:
    current = tenant.get(f"/ticket/{object_id}").headers["etag"]
    response = tenant.client.delete(
        f"{tenant.base_url}/api/v2/ticketing/ticket/{object_id}",
        params=PARAMS,
        headers=tenant.headers(**{"If-Match": current}),
    )
    assert response.status_code == 200, response.text


def test_counts_follow_creates_updates_and_deletes(tenant: Tenant) -> None:
    ids = [tenant.create().json()["objectId"] for _ in range(4)]
    _assert_counts(tenant, {"Open": 4, "In Progress": 0})
    _update(tenant, ids[0], status="In Progress")
    _update(tenant, ids[1], status="In Progress")
    _update(tenant, ids[1], summary="only the summary")
    _assert_counts(tenant, {"Open": 2, "In Progress": 2})
    _delete(tenant, ids[0])
    _delete(tenant, ids[2])
    _assert_counts(tenant, {"Open": 1, "In Progress": 1})
    _update(tenant, ids[1], status="Closed")
    _assert_counts(tenant, {"Open": 1, "In Progress": 0, "Closed": 1})


def test_failed_changes_leave_counts_alone(tenant: Tenant) -> None:
    object_id = tenant.create().json()["objectId"]
    stale = tenant.client.patch(
        f"{tenant.base_url}/api/v2/ticketing/ticket/update/{object_id}",
        params=PARAMS,
        headers=tenant.headers(),
        json={"etag": "00000000-0000-0000-0000-000000000000", "status": "Closed"},
    )
    assert stale.status_code == 409
    bad = tenant.client.patch(
        f"{tenant.base_url}/api/v2/ticketing/ticket/update/{object_id}",
        params=PARAMS,
        headers=tenant.headers(),
        json={
            "etag": tenant.get(f"/ticket/{object_id}").json()["ticket"]["etag"],
            "status": "Closed",
            "summary": 5,
        },
    )
    assert bad.status_code == 400
    _assert_counts(tenant, {"Open": 1, "Closed": 0})


def test_a_ticket_user_counts_only_their_own(tenant: Tenant) -> None:
    tenant.create()
    mine = tenant.token(roles=["ticket_user"], username="me@example.com", email="me@example.com")
    tenant.create(token=mine)
    response = tenant.client.post(
        f"{tenant.base_url}/api/v2/ticketing/ticket/count",
        params=PARAMS,
        headers=tenant.headers(mine),
        json={},
    )
    assert response.json()["data"]["count"] == 1
    response = tenant.client.post(
        f"{tenant.base_url}/api/v2/ticketing/ticket/count",
        params=PARAMS,
        headers=tenant.headers(mine),
        json=_status("Open"),
    )
    assert response.json()["data"]["count"] == 1
