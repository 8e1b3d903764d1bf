"""A ticket's history and comments, black-box over HTTP (issue 3).

History: every change in order (creation first), with version, when, who, and each changed
field's old and new value. Comments: sanitized like rich text, internal ones for agents and
admins only, and adding one leaves the ticket's etag and version alone.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support import (
    DESCRIPTION,
    F_NUMBER,
    F_TEXT,
    NEEDED_WITHIN,
    TITLE,
    Tenant,
)
from tests.ticket_api import (
    assert_error,
    call,
    create_everything,
    created,
    get_ticket,
    patch,
    reason_of,
    updated,
    user_token,
)

# --------------------------------------------------------------------------- helpers


def history(tenant: Tenant, object_id: str, token: str | None = None) -> list[dict[str, Any]]:
    response = tenant.get(f"/ticket/{object_id}/history", token=token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["status"] == 200, body
    assert body["objectId"] == object_id
    entries = body["data"]["value"]
    for entry in entries:
        assert {"version", "at", "by", "changes"} <= set(entry), entry
        assert entry["at"].endswith("Z")
        datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
    return entries  # type: ignore[no-any-return]


def changes_of(entry: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """field -> (old, new)."""
    return {c["field"]: (c["old"], c["new"]) for c in entry["changes"]}


def add_comment(
    tenant: Tenant, object_id: str, body: Any, token: str | None = None
) -> httpx.Response:
    return call(tenant, "POST", f"/ticket/{object_id}/comments", token=token, json=body)


def comment_ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["status"] == 200, body
    assert isinstance(body["message"], str) and body["message"]
    return body["comment"]  # type: ignore[no-any-return]


def comments(tenant: Tenant, object_id: str, token: str | None = None) -> list[dict[str, Any]]:
    response = tenant.get(f"/ticket/{object_id}/comments", token=token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["status"] == 200, body
    assert body["data"]["count"] == len(body["data"]["value"])
    return body["data"]["value"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- history


def test_history_starts_with_creation(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    entries = history(tenant, "CTC-0001")
    assert len(entries) == 1
    entry = entries[0]
    assert entry["version"] == ticket["version"]
    assert entry["at"] == ticket["created_at"]
    assert entry["by"]["username"] == "user@example.com"
    assert entry.get("action", "create") == "create"
    changes = changes_of(entry)
    assert changes["summary"] == (None, "Hardware request - new laptop")
    assert changes[TITLE] == (None, "Need a replacement laptop")
    assert changes[NEEDED_WITHIN] == (None, "<2week")
    assert changes["status"] == (None, "Open")


def test_history_records_each_update_in_order(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    agent = tenant.token(
        username="agent.smith", email="smith@example.com", first_name="Agent", last_name="Smith"
    )
    steps: list[tuple[dict[str, Any], str | None]] = [
        ({"summary": "Laptop, urgent"}, None),
        ({"ticketBody": {TITLE: "Replacement laptop", NEEDED_WITHIN: "<1week"}}, agent),
        ({"status": "In Progress"}, agent),
        ({"ticketBody": {DESCRIPTION: None}, "status": "Resolved"}, None),
    ]
    versions = [ticket]
    for change, token in steps:
        time.sleep(0.005)
        ticket = updated(patch(tenant, "CTC-0001", {"etag": ticket["etag"], **change}, token=token))
        versions.append(ticket)

    entries = history(tenant, "CTC-0001")
    assert [e["version"] for e in entries] == [v["version"] for v in versions]
    assert [e["at"] for e in entries] == [versions[0]["created_at"]] + [
        v["updated_at"] for v in versions[1:]
    ]
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert [e["by"]["username"] for e in entries] == [
        "user@example.com",
        "user@example.com",
        "agent.smith",
        "agent.smith",
        "user@example.com",
    ]
    assert entries[2]["by"]["firstName"] == "Agent"
    assert entries[2]["by"]["lastName"] == "Smith"
    assert changes_of(entries[1]) == {
        "summary": ("Hardware request - new laptop", "Laptop, urgent")
    }
    assert changes_of(entries[2]) == {
        TITLE: ("Need a replacement laptop", "Replacement laptop"),
        NEEDED_WITHIN: ("<2week", "<1week"),
    }
    assert changes_of(entries[3]) == {"status": ("Open", "In Progress")}
    assert changes_of(entries[4]) == {
        DESCRIPTION: ("<p>Current laptop battery no longer holds charge.</p>", None),
        "status": ("In Progress", "Resolved"),
    }


def test_history_of_every_field_type(tenant: Tenant) -> None:
    ticket = create_everything(tenant, **{F_NUMBER: 1})
    assert changes_of(history(tenant, ticket["object_id"])[0])[F_NUMBER] == (None, 1)
    ticket = updated(
        patch(
            tenant,
            ticket["object_id"],
            {"etag": ticket["etag"], "ticketBody": {F_NUMBER: 2, F_TEXT: "bye"}},
        )
    )
    last = history(tenant, ticket["object_id"])[-1]
    assert changes_of(last) == {F_NUMBER: (1, 2), F_TEXT: ("hello", "bye")}


def test_failed_updates_leave_no_history(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    assert_error(patch(tenant, "CTC-0001", {"summary": "no etag"}), 428)
    assert_error(patch(tenant, "CTC-0001", {"etag": "stale", "summary": "x"}), 409)
    reason_of(patch(tenant, "CTC-0001", {"etag": ticket["etag"], "ticketBody": {TITLE: None}}))
    assert len(history(tenant, "CTC-0001")) == 1


def test_comments_are_not_history(tenant: Tenant) -> None:
    created(tenant.create())
    comment_ok(add_comment(tenant, "CTC-0001", {"body": "<p>hello</p>"}))
    assert len(history(tenant, "CTC-0001")) == 1


def test_history_of_unknown_ticket_is_404(tenant: Tenant) -> None:
    created(tenant.create())
    assert_error(tenant.get("/ticket/CTC-0042/history"), 404)


# --------------------------------------------------------------------------- comments


def test_add_and_list_comments(tenant: Tenant) -> None:
    created(tenant.create())
    agent = tenant.token(
        username="agent.smith", email="smith@example.com", first_name="Agent", last_name="Smith"
    )
    first = comment_ok(add_comment(tenant, "CTC-0001", {"body": "<p>First</p>"}))
    time.sleep(0.005)
    second = comment_ok(
        add_comment(tenant, "CTC-0001", {"body": "<p>Second</p>", "internal": False}, agent)
    )
    assert first["body"] == "<p>First</p>"
    assert first["internal"] is False
    assert first["objectId"] == "CTC-0001"
    assert first["author"]["username"] == "user@example.com"
    assert second["author"] == {
        "username": "agent.smith",
        "email": "smith@example.com",
        "firstName": "Agent",
        "lastName": "Smith",
    }
    assert first["id"] != second["id"]
    assert first["created_at"].endswith("Z")
    assert comments(tenant, "CTC-0001") == [first, second]


@pytest.mark.parametrize(
    ("dirty", "kept"),
    [
        ("<p>Hi<script>alert(1)</script></p>", "Hi"),
        ('<p onclick="steal()">Click</p>', "Click"),
        ('<a href="javascript:alert(1)">link</a>', "link"),
        ('<img src="x" onerror="alert(1)">text', "text"),
        ("<iframe src='https://evil.example'></iframe><b>bold</b>", "<b>bold</b>"),
    ],
)
def test_comment_body_is_sanitized(tenant: Tenant, dirty: str, kept: str) -> None:
    created(tenant.create())
    comment = comment_ok(add_comment(tenant, "CTC-0001", {"body": dirty}))
    for bad in ("<script", "onclick", "onerror", "javascript:", "<iframe", "alert(1)</script"):
        assert bad not in comment["body"], comment["body"]
    assert kept in comment["body"]
    assert comments(tenant, "CTC-0001")[0]["body"] == comment["body"]


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({}, "body"),
        ({"body": ""}, "body"),
        ({"body": "   "}, "body"),
        ({"body": 42}, "body"),
        ({"body": None}, "body"),
        ({"body": "<script>alert(1)</script>"}, "body"),
        ({"body": "x" * 70_000}, "body"),
        ({"body": "hi", "internal": "yes"}, "internal"),
        ({"body": "hi", "author": "someone else"}, "author"),
    ],
)
def test_bad_comment_is_400(tenant: Tenant, body: dict[str, Any], key: str) -> None:
    created(tenant.create())
    assert key in reason_of(add_comment(tenant, "CTC-0001", body))
    assert comments(tenant, "CTC-0001") == []


def test_internal_comments_are_for_agents_and_admins(tenant: Tenant) -> None:
    alice = user_token(tenant, "alice")
    created(tenant.create(token=alice))
    public = comment_ok(add_comment(tenant, "CTC-0001", {"body": "public", "internal": False}))
    internal = comment_ok(add_comment(tenant, "CTC-0001", {"body": "internal", "internal": True}))
    assert internal["internal"] is True
    admin = tenant.token(roles=["tenant_admin"], username="admin")
    from_admin = comment_ok(
        add_comment(tenant, "CTC-0001", {"body": "admin", "internal": True}, admin)
    )
    mine = comment_ok(add_comment(tenant, "CTC-0001", {"body": "mine"}, alice))
    assert mine["internal"] is False

    everything = [public, internal, from_admin, mine]
    assert comments(tenant, "CTC-0001") == everything
    assert comments(tenant, "CTC-0001", admin) == everything
    assert comments(tenant, "CTC-0001", tenant.token(scope="openid tickets:read")) == everything
    assert comments(tenant, "CTC-0001", alice) == [public, mine]


def test_ticket_user_cannot_post_internal(tenant: Tenant) -> None:
    alice = user_token(tenant, "alice")
    created(tenant.create(token=alice))
    response = add_comment(tenant, "CTC-0001", {"body": "secret", "internal": True}, alice)
    assert response.status_code in (401, 403), response.text
    assert_error(response, response.status_code)
    assert comments(tenant, "CTC-0001") == []


def test_comment_leaves_etag_and_version_alone(tenant: Tenant) -> None:
    before = created(tenant.create())
    comment_ok(add_comment(tenant, "CTC-0001", {"body": "one"}))
    comment_ok(add_comment(tenant, "CTC-0001", {"body": "two", "internal": True}))
    after = get_ticket(tenant, "CTC-0001")
    assert after == before
    response = tenant.client.get(
        f"{tenant.base_url}/api/v2/ticketing/ticket/CTC-0001",
        params={"type": "template", "module": "ticketing"},
        headers=tenant.headers(**{"If-None-Match": f'"{before["etag"]}"'}),
    )
    assert response.status_code == 304
    # The etag read before the comments still updates the ticket.
    assert updated(patch(tenant, "CTC-0001", {"etag": before["etag"], "summary": "after"}))


def test_comments_on_unknown_ticket_are_404(tenant: Tenant) -> None:
    created(tenant.create())
    assert_error(tenant.get("/ticket/CTC-0002/comments"), 404)
    assert_error(add_comment(tenant, "CTC-0002", {"body": "hi"}), 404)


def test_comments_belong_to_their_ticket(tenant: Tenant) -> None:
    created(tenant.create())
    created(tenant.create())
    one = comment_ok(add_comment(tenant, "CTC-0001", {"body": "on one"}))
    two = comment_ok(add_comment(tenant, "CTC-0002", {"body": "on two"}))
    assert comments(tenant, "CTC-0001") == [one]
    assert comments(tenant, "CTC-0002") == [two]
    assert two["objectId"] == "CTC-0002"


def test_comments_need_a_json_body(tenant: Tenant) -> None:
    created(tenant.create())
    response = tenant.client.post(
        f"{tenant.base_url}/api/v2/ticketing/ticket/CTC-0001/comments",
        params={"type": "template", "module": "ticketing"},
        headers=tenant.headers(),
        content=b"not json",
    )
    reason_of(response)
    response = tenant.client.post(
        f"{tenant.base_url}/api/v2/ticketing/ticket/CTC-0001/comments",
        params={"type": "template", "module": "ticketing"},
        headers=tenant.headers(**{"content-type": "text/plain"}),
        content=b'{"body": "hi"}',
    )
    reason_of(response)
    assert comments(tenant, "CTC-0001") == []
