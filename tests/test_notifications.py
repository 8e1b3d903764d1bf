"""Notifications made from ticket events: who gets them, the list/count/read endpoints, and
the notification stream, over real HTTP on every backend."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from tests.desk_support import AGENTS, agent_token, desk_overrides
from tests.sse_client import SseReader
from tests.support import Tenant, seed_body
from tests.ticket_api import (
    QUERY,
    assert_error,
    call,
    created,
    get_ticket,
    numbered,
    patch,
    reason_of,
    user_token,
)
from ticketing.events import outbox
from ticketing.notifications.generator import notifications_for

STREAM = "/api/v2/ticketing/ticket/sse/notifications"


def notifications(tenant: Tenant, token: str, body: dict[str, Any] | None = None) -> list[Any]:
    response = call(tenant, "POST", "/ticket/notifications", token=token, json=body or {})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["count"] >= len(data["value"])
    return data["value"]  # type: ignore[no-any-return]


def unread(tenant: Tenant, token: str) -> int:
    response = call(tenant, "GET", "/ticket/notification/count", token=token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    return body["unread"]  # type: ignore[no-any-return]


def comment(tenant: Tenant, object_id: str, text: str, internal: bool = False) -> None:
    response = call(
        tenant,
        "POST",
        f"/ticket/{object_id}/comments",
        json={"body": f"<p>{text}</p>", "internal": internal},
    )
    assert response.status_code == 200, response.text


def test_a_comment_notifies_the_submitter_and_watchers_but_not_its_author(
    tenant: Tenant,
) -> None:
    alice, carol, bob = (user_token(tenant, n) for n in ("alice", "carol", "bob"))
    body = seed_body()
    body["ticketBody"]["ccWatchers"] = ["carol@example.com"]
    ticket = created(tenant.create(body, token=alice))
    comment(tenant, ticket["object_id"], "Ordered")

    [notice] = notifications(tenant, alice)
    assert notice["type"] == "comment"
    assert notice["objectId"] == ticket["object_id"]
    assert notice["ticketId"] == ticket["id"]
    assert notice["read"] is False
    assert notice["data"]["comment"]["body"] == "<p>Ordered</p>"
    assert [n["type"] for n in notifications(tenant, carol)] == ["comment"]
    assert notifications(tenant, bob) == []
    assert notifications(tenant, tenant.token()) == []  # the author
    assert unread(tenant, alice) == 1


def test_a_status_change_notifies_and_an_internal_comment_does_not(tenant: Tenant) -> None:
    alice = user_token(tenant, "alice")
    ticket = created(tenant.create(token=alice))
    comment(tenant, ticket["object_id"], "agents only", internal=True)
    assert notifications(tenant, alice) == []
    changed = patch(tenant, ticket["object_id"], {"etag": ticket["etag"], "summary": "same"})
    assert changed.status_code == 200
    assert notifications(tenant, alice) == []  # no status change
    moved = patch(
        tenant, ticket["object_id"], {"etag": changed.json()["ticket"]["etag"], "status": "Closed"}
    )
    assert moved.status_code == 200, moved.text
    [notice] = notifications(tenant, alice)
    assert notice["type"] == "status_changed"
    assert notice["data"]["from"] == "Open" and notice["data"]["to"] == "Closed"


def test_filters_paging_marking_read_and_read_all(tenant: Tenant) -> None:
    alice = user_token(tenant, "alice")
    first = created(tenant.create(seed_body(summary="first"), token=alice))
    second = created(tenant.create(seed_body(summary="second"), token=alice))
    for i in range(3):
        comment(tenant, first["object_id"], f"c{i}")
    moved = patch(tenant, second["object_id"], {"etag": second["etag"], "status": "Closed"})
    assert moved.status_code == 200
    everything = notifications(tenant, alice)
    assert len(everything) == 4
    created_at = [n["createdAt"] for n in everything]
    assert created_at == sorted(created_at, reverse=True)
    assert len(notifications(tenant, alice, {"type": "comment"})) == 3
    assert len(notifications(tenant, alice, {"ticket": second["object_id"]})) == 1
    assert len(notifications(tenant, alice, {"top": 2})) == 2
    assert len(notifications(tenant, alice, {"top": 2, "offset": 3})) == 1
    assert len(notifications(tenant, alice, {"from": "2000-01-01T00:00:00Z"})) == 4
    assert notifications(tenant, alice, {"to": "2000-01-01T00:00:00Z"}) == []

    target = everything[0]["id"]
    marked = call(
        tenant, "PATCH", f"/ticket/notifications/{target}", token=alice, json={"read": True}
    )
    assert marked.status_code == 200, marked.text
    assert marked.json()["notification"]["read"] is True
    assert unread(tenant, alice) == 3
    assert [n["id"] for n in notifications(tenant, alice, {"read": True})] == [target]
    assert len(notifications(tenant, alice, {"read": False})) == 3

    done = call(tenant, "POST", "/ticket/notifications/read-all", token=alice)
    assert done.status_code == 200, done.text
    assert done.json()["updated"] == 3
    assert unread(tenant, alice) == 0


def test_nobody_sees_or_marks_another_users_notifications(tenant: Tenant, make_tenant: Any) -> None:
    alice, bob = user_token(tenant, "alice"), user_token(tenant, "bob")
    ticket = created(tenant.create(token=alice))
    comment(tenant, ticket["object_id"], "hello")
    [notice] = notifications(tenant, alice)
    path = f"/ticket/notifications/{notice['id']}"
    assert_error(call(tenant, "PATCH", path, token=bob, json={"read": True}), 404)
    other = make_tenant()
    assert_error(call(other, "PATCH", path, json={"read": True}), 404)
    assert call(tenant, "POST", "/ticket/notifications/read-all", token=bob).json()["updated"] == 0
    assert unread(tenant, alice) == 1


def test_bad_notification_requests_are_400_and_change_nothing(tenant: Tenant) -> None:
    alice = user_token(tenant, "alice")
    ticket = created(tenant.create(token=alice))
    comment(tenant, ticket["object_id"], "hello")
    [notice] = notifications(tenant, alice)
    path = f"/ticket/notifications/{notice['id']}"
    assert "read" in reason_of(call(tenant, "PATCH", path, token=alice, json={"read": "yes"}))
    assert "colour" in reason_of(
        call(tenant, "PATCH", path, token=alice, json={"read": True, "colour": 1})
    )
    assert "read" in reason_of(call(tenant, "PATCH", path, token=alice, json={}))
    listing = "/ticket/notifications"
    assert "top" in reason_of(call(tenant, "POST", listing, token=alice, json={"top": 0}))
    assert "type" in reason_of(call(tenant, "POST", listing, token=alice, json={"type": "x"}))
    assert "from" in reason_of(call(tenant, "POST", listing, token=alice, json={"from": "soon"}))
    dates = reason_of(
        call(tenant, "POST", listing, token=alice, json={"from": "notadate", "to": "later"})
    )
    assert dates == {
        key: [f"You have entered an invalid date value for {key}, expects a proper date string"]
        for key in ("from", "to")
    }
    assert_error(
        call(tenant, "PATCH", "/ticket/notifications/not-an-id", token=alice, json={"read": True}),
        404,
    )
    no_query = call(tenant, "GET", "/ticket/notification/count", token=alice, params={})
    assert_error(no_query, 400, "INPUT_VALIDATION_FAILURE")
    assert unread(tenant, alice) == 1


def test_the_notification_stream_sends_the_callers_notifications_only(
    tenant: Tenant, streams: list[SseReader], position: Callable[[Tenant, str | None], int]
) -> None:
    alice, bob = user_token(tenant, "alice"), user_token(tenant, "bob")
    readers = {
        name: SseReader(
            f"{tenant.base_url}{STREAM}", tenant.headers(token, accept="text/event-stream"), QUERY
        )
        for name, token in (("alice", alice), ("bob", bob))
    }
    streams.extend(readers.values())
    ticket = created(tenant.create(token=alice))
    comment(tenant, ticket["object_id"], "for alice")
    events = readers["alice"].wait_for(
        lambda events: any(e.event == "notification" for e in events)
    )
    assert events[0].event == "connected"
    [notice] = [e for e in events if e.event == "notification"]
    assert notice.data == notifications(tenant, alice)[0]
    assert notice.id is not None and position(tenant, notice.id) > 0
    bob_events = readers["bob"].wait_for(lambda events: len(events) >= 1)
    assert [e.event for e in bob_events] == ["connected"]


def test_the_notification_stream_resets_from_past_the_newest_event(
    tenant: Tenant, streams: list[SseReader], opaque: Callable[[Tenant, int], str]
) -> None:
    alice = user_token(tenant, "alice")
    ticket = created(tenant.create(token=alice))
    numbered(tenant, ticket)
    newest = tenant.db.fetch("SELECT max(position) FROM ticket_events")[0][0]
    headers = tenant.headers(alice, accept="text/event-stream")
    headers["Last-Event-ID"] = opaque(tenant, newest + 100_000)
    reader = SseReader(f"{tenant.base_url}{STREAM}", headers, QUERY)
    streams.append(reader)
    events = reader.wait_for(lambda events: len(events) >= 2)
    assert [e.event for e in events[:2]] == ["connected", "reset"]
    comment(tenant, ticket["object_id"], "after the reset")
    events = reader.wait_for(lambda events: any(e.event == "notification" for e in events))
    [notice] = [e for e in events if e.event == "notification"]
    assert notice.data == notifications(tenant, alice)[0]


def test_an_assignee_change_notifies_the_new_assignee() -> None:
    ticket = {
        "tenant_id": uuid.uuid4(),
        "id": uuid.uuid4(),
        "object_id": "CTC-0001",
        "summary": "s",
        "submitted_by": "alice@example.com",
        "data": {},
    }
    payload = {
        "actor": {"username": "agent", "email": "agent@example.com"},
        "changes": [{"field": "assignee", "old": None, "new": "dave"}],
    }
    rows = notifications_for(outbox.TICKET_UPDATED, ticket, payload)
    assert [(r["recipient"], r["kind"]) for r in rows] == [("dave", "assigned")]
    payload["actor"] = {"username": "dave"}
    assert notifications_for(outbox.TICKET_UPDATED, ticket, payload) == []


# -- events and notifications of routing and SLA changes ---------------------------------------


def _event_rows(tenant: Tenant, object_id: str) -> list[tuple[str, int, dict[str, Any]]]:
    rows = tenant.db.fetch(
        "SELECT kind, version, payload FROM ticket_events WHERE tenant_id = :t AND object_id = :o"
        " ORDER BY id",
        t=uuid.UUID(tenant.id),
        o=object_id,
    )
    return [(k, v, json.loads(p) if isinstance(p, str | bytes) else p) for k, v, p in rows]


def test_a_round_robin_assignment_at_creation_notifies_the_assignee(
    make_tenant: Callable[..., Tenant],
) -> None:
    desk = make_tenant(**desk_overrides())
    alice = user_token(desk, "alice")
    ticket = created(desk.create(token=alice))
    assignee = ticket["assignee"]
    assert assignee in AGENTS
    [notice] = notifications(desk, agent_token(desk, assignee))
    assert (notice["type"], notice["objectId"]) == ("assigned", ticket["object_id"])
    assert notice["message"] == f"{ticket['object_id']} was assigned to you"
    assert notice["data"]["assignee"] == {"field": "assignee", "old": None, "new": assignee}
    for other in AGENTS:
        if other != assignee:
            assert notifications(desk, agent_token(desk, other)) == []
    assert notifications(desk, alice) == []
    # The created event names the assignment and carries the notification, for the
    # notification streams.
    [(kind, _, payload)] = _event_rows(desk, ticket["object_id"])
    assert kind == "ticket.created"
    assert {"field": "assignee", "old": None, "new": assignee} in payload["changes"]
    assert [n["recipient"] for n in payload["notifications"]] == [assignee]
    assert payload["notifications"][0]["id"] == notice["id"]


def test_nobody_is_notified_of_an_assignment_to_themselves_at_creation(
    make_tenant: Callable[..., Tenant],
) -> None:
    desk = make_tenant(**desk_overrides(members=[AGENTS[0]]))
    me = agent_token(desk, AGENTS[0])
    ticket = created(desk.create(token=me))
    assert ticket["assignee"] == AGENTS[0]
    assert notifications(desk, me) == []
    [(_, _, payload)] = _event_rows(desk, ticket["object_id"])
    assert "notifications" not in payload


def test_an_agents_first_public_comment_writes_one_update_then_the_comment(
    make_tenant: Callable[..., Tenant],
) -> None:
    desk = make_tenant(**desk_overrides())
    alice = user_token(desk, "alice")
    ticket = created(desk.create(token=alice))
    object_id, version = ticket["object_id"], ticket["version"]
    agent = agent_token(desk, AGENTS[0])
    for text in ("On it", "Still on it"):
        response = call(
            desk, "POST", f"/ticket/{object_id}/comments", token=agent,
            json={"body": f"<p>{text}</p>"},
        )  # fmt: skip
        assert response.status_code == 200, response.text
    rows = _event_rows(desk, object_id)
    # The first comment meets the response clock: an update of the ticket's clocks (same
    # version and etag: a comment never changes them), then the comment, which carries the
    # ticket as it left it; the second moves no clock.
    assert [(kind, v) for kind, v, _ in rows] == [
        ("ticket.created", version),
        ("ticket.updated", version),
        ("comment.created", version),
        ("comment.created", version),
    ]
    update = rows[1][2]
    assert {c["field"] for c in update["changes"]} >= {"sla.response"}
    assert "notifications" not in update
    assert rows[1][2]["ticket"]["etag"] == str(ticket["etag"])
    assert rows[2][2]["ticket"]["sla"] == rows[1][2]["ticket"]["sla"]
    assert get_ticket(desk, object_id)["version"] == version
    assert [n["type"] for n in notifications(desk, alice)] == ["comment", "comment"]


def test_a_breach_notifies_the_assignee_once() -> None:
    ticket = {
        "tenant_id": uuid.uuid4(),
        "id": uuid.uuid4(),
        "object_id": "ALL-0001",
        "summary": "s",
        "submitted_by": "alice@example.com",
        "assignee": "a2@example.com",
        "data": {},
    }
    payload = {
        "actor": {"username": "sla-sweeper", "email": ""},
        "changes": [
            {"field": "sla.response", "old": "running", "new": "breached"},
            {"field": "slaBreachAt", "old": None, "new": "2026-11-29T10:00:00+00:00"},
        ],
    }
    rows = notifications_for(outbox.TICKET_UPDATED, ticket, payload)
    assert [(r["recipient"], r["kind"]) for r in rows] == [("a2@example.com", "sla_breached")]
    assert rows[0]["message"] == "ALL-0001 breached its response SLA"
    assert notifications_for(outbox.TICKET_UPDATED, {**ticket, "assignee": None}, payload) == []
    met = {**payload, "changes": [{"field": "sla.response", "old": "running", "new": "met"}]}
    assert notifications_for(outbox.TICKET_UPDATED, ticket, met) == []
