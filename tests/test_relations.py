"""Ticket relations and merges, black-box over HTTP on every backend.

Relations: `ticketRelation` on create, GET/POST/DELETE /ticket/{objectId}/relations, one
parent per ticket, no cycles in parent or blocks chains (also under concurrent writes), a
history entry and a `ticket.updated` event on both tickets, etags untouched, visibility as
for reading a ticket. Merges: etag rules, `moved_to` and a Done-category status, merged
tickets out of default lists and counts (which stay exact), a filter that asks for them. The
`parent` list filter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, text

from tests.desk_support import desk_overrides, metrics_of, slas_by_kind
from tests.sse_client import SseReader
from tests.support import Tenant, seed_body
from tests.test_events import open_stream
from tests.ticket_api import (
    assert_error,
    call,
    count,
    create_everything,
    created,
    delete,
    get_ticket,
    list_ids,
    patch,
    reason_of,
    updated,
    user_token,
)
from ticketing.models import Ticket, TicketRelation
from ticketing.relations.repository import children_of
from ticketing.tickets.repository import scoped

EMPTY = {
    "parent": None,
    "children": [],
    "relates_to": [],
    "duplicate_of": [],
    "duplicates": [],
    "blocks": [],
    "blocked_by": [],
}


# --------------------------------------------------------------------------- helpers


def new(tenant: Tenant, relation: dict[str, str] | None = None, token: str | None = None) -> str:
    """Creates a seed ticket (with `relation` as its ticketRelation); its display ID."""
    ticket = created(tenant.create(seed_body(ticketRelation=relation), token=token))
    return str(ticket["object_id"])


def relations(tenant: Tenant, object_id: str, token: str | None = None) -> dict[str, Any]:
    response = tenant.get(f"/ticket/{object_id}/relations", token=token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["status"] == 200 and body["objectId"] == object_id
    return body["relations"]  # type: ignore[no-any-return]


def ids(relations_view: dict[str, Any]) -> dict[str, Any]:
    """The view with display IDs only."""
    parent = relations_view["parent"]
    return {
        key: (parent and parent["objectId"])
        if key == "parent"
        else [entry["objectId"] for entry in value]
        for key, value in relations_view.items()
    }


def relate(
    tenant: Tenant, object_id: str, kind: Any, other: Any, token: str | None = None
) -> httpx.Response:
    body = {"type": kind, "objectId": other}
    return call(tenant, "POST", f"/ticket/{object_id}/relations", json=body, token=token)


def related(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and isinstance(body["message"], str)
    return body["relations"]  # type: ignore[no-any-return]


def unrelate(
    tenant: Tenant, object_id: str, kind: str, other: str, token: str | None = None
) -> httpx.Response:
    return call(tenant, "DELETE", f"/ticket/{object_id}/relations/{kind}/{other}", token=token)


def history(tenant: Tenant, object_id: str) -> list[dict[str, Any]]:
    response = tenant.get(f"/ticket/{object_id}/history")
    assert response.status_code == 200, response.text
    return response.json()["data"]["value"]  # type: ignore[no-any-return]


def merge(
    tenant: Tenant,
    object_id: str,
    body: Any,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return call(
        tenant, "POST", f"/ticket/{object_id}/merge", json=body, token=token, headers=headers
    )


def parent_filter(operand: Any, op: str = "EQ") -> dict[str, Any]:
    return {
        "top": 100,
        "filter": {"op": "AND", "operand": [{"column": "parent", "op": op, "operand": operand}]},
    }


# --------------------------------------------------------------------------- on create


def test_create_with_a_parent_makes_the_new_ticket_its_child(tenant: Tenant) -> None:
    parent = created(tenant.create())
    child = created(
        tenant.create(seed_body(ticketRelation={"type": "parent", "objectId": "CTC-0001"}))
    )
    assert child["object_id"] == "CTC-0002"
    assert ids(relations(tenant, "CTC-0002")) == {**EMPTY, "parent": "CTC-0001"}
    view = relations(tenant, "CTC-0001")
    assert view == {
        **EMPTY,
        "children": [
            {
                "objectId": "CTC-0002",
                "summary": "Hardware request - new laptop",
                "status_type": "Open",
                "status_category": "To-do Category",
            }
        ],
    }
    # The parent records it without a new version; the child's creation names it.
    assert get_ticket(tenant, "CTC-0001") == {**parent}
    entries = history(tenant, "CTC-0001")
    assert [(e["version"], e["action"]) for e in entries] == [(2, "create"), (2, "relate")]
    assert entries[1]["changes"] == [
        {"field": "relation", "old": None, "new": {"type": "children", "objectId": "CTC-0002"}}
    ]
    [creation] = history(tenant, "CTC-0002")
    assert {
        "field": "relation",
        "old": None,
        "new": {"type": "parent", "objectId": "CTC-0001"},
    } in (creation["changes"])


@pytest.mark.parametrize(
    ("kind", "seen_from_new", "seen_from_old"),
    [
        ("relates_to", "relates_to", "relates_to"),
        ("duplicate_of", "duplicate_of", "duplicates"),
        ("blocks", "blocks", "blocked_by"),
    ],
)
def test_create_with_each_other_type(
    tenant: Tenant, kind: str, seen_from_new: str, seen_from_old: str
) -> None:
    old = new(tenant)
    fresh = new(tenant, {"type": kind, "objectId": old})
    assert ids(relations(tenant, fresh)) == {**EMPTY, seen_from_new: [old]}
    assert ids(relations(tenant, old)) == {**EMPTY, seen_from_old: [fresh]}


def test_create_with_an_unknown_related_ticket_is_400_and_writes_nothing(tenant: Tenant) -> None:
    new(tenant)
    response = tenant.create(seed_body(ticketRelation={"type": "parent", "objectId": "CTC-0099"}))
    assert reason_of(response) == {"ticketRelation": ["Related ticket CTC-0099 not found"]}
    assert tenant.ticket_count() == 1
    # No display number was used up.
    assert new(tenant) == "CTC-0002"


def test_create_related_to_a_deleted_ticket_or_another_tenants_is_400(
    tenant: Tenant, make_tenant: Any
) -> None:
    gone = created(tenant.create())
    assert delete(tenant, "CTC-0001", gone["etag"]).status_code == 200
    response = tenant.create(seed_body(ticketRelation={"type": "blocks", "objectId": "CTC-0001"}))
    assert reason_of(response) == {"ticketRelation": ["Related ticket CTC-0001 not found"]}

    other = make_tenant()
    new(other)
    response = other.create(seed_body(ticketRelation={"type": "parent", "objectId": "CTC-0002"}))
    assert reason_of(response) == {"ticketRelation": ["Related ticket CTC-0002 not found"]}
    assert tenant.ticket_count() == 1 and other.ticket_count() == 1


def test_a_requester_may_relate_a_new_ticket_only_to_their_own(tenant: Tenant) -> None:
    alice, bob = user_token(tenant, "alice"), user_token(tenant, "bob")
    own = new(tenant, token=alice)
    theirs = new(tenant, token=bob)
    response = tenant.create(
        seed_body(ticketRelation={"type": "parent", "objectId": theirs}), token=alice
    )
    assert reason_of(response) == {"ticketRelation": [f"Related ticket {theirs} not found"]}
    child = new(tenant, {"type": "parent", "objectId": own}, token=alice)
    assert ids(relations(tenant, own, token=alice))["children"] == [child]


@pytest.mark.parametrize(
    "relation",
    [
        {"type": "child", "objectId": "CTC-0001"},
        {"type": "PARENT", "objectId": "CTC-0001"},
        {"type": 1, "objectId": "CTC-0001"},
        {"objectId": "CTC-0001"},
        {"type": "parent"},
        {"type": "parent", "objectId": 1},
        {"type": "parent", "objectId": ""},
        {"type": "parent", "objectId": "C" * 41},
        {"type": "parent", "objectId": "CTC-0001", "note": "x"},
        {},
    ],
)
def test_create_with_a_malformed_relation_is_400_on_ticket_relation(
    tenant: Tenant, relation: dict[str, Any]
) -> None:
    new(tenant)
    reason = reason_of(tenant.create(seed_body(ticketRelation=relation)))
    assert list(reason) == ["ticketRelation"] and reason["ticketRelation"]
    assert tenant.ticket_count() == 1


def test_unknown_type_message_names_the_types(tenant: Tenant) -> None:
    new(tenant)
    response = tenant.create(seed_body(ticketRelation={"type": "child", "objectId": "CTC-0001"}))
    assert reason_of(response) == {
        "ticketRelation": [
            "ticketRelation.type must be one of: parent, relates_to, duplicate_of, blocks"
        ]
    }


# --------------------------------------------------------------------------- POST / DELETE


def test_add_and_remove_relations_shows_them_on_both_tickets(tenant: Tenant) -> None:
    a, b, c = new(tenant), new(tenant), new(tenant)
    view = related(relate(tenant, a, "blocks", b))
    assert ids(view) == {**EMPTY, "blocks": [b]}
    related(relate(tenant, a, "relates_to", c))
    related(relate(tenant, c, "duplicate_of", a))
    related(relate(tenant, b, "parent", a))
    assert ids(relations(tenant, a)) == {
        **EMPTY,
        "children": [b],
        "relates_to": [c],
        "duplicates": [c],
        "blocks": [b],
    }
    assert ids(relations(tenant, b)) == {**EMPTY, "parent": a, "blocked_by": [a]}
    assert ids(relations(tenant, c)) == {**EMPTY, "relates_to": [a], "duplicate_of": [a]}

    # Removed from either side, by the name that side sees it under.
    assert ids(related(unrelate(tenant, a, "children", b))) == {
        **EMPTY,
        "relates_to": [c],
        "duplicates": [c],
        "blocks": [b],
    }
    related(unrelate(tenant, b, "blocked_by", a))
    related(unrelate(tenant, c, "relates_to", a))
    related(unrelate(tenant, a, "duplicates", c))
    for object_id in (a, b, c):
        assert relations(tenant, object_id) == EMPTY


def test_relation_changes_are_history_on_both_tickets_and_keep_etags(tenant: Tenant) -> None:
    a, b = new(tenant), new(tenant)
    before = {x: get_ticket(tenant, x) for x in (a, b)}
    related(relate(tenant, a, "blocks", b))
    related(unrelate(tenant, a, "blocks", b))
    related(relate(tenant, b, "blocks", a))
    for x in (a, b):
        after = get_ticket(tenant, x)
        assert (after["etag"], after["version"]) == (before[x]["etag"], before[x]["version"])
    entries_a = history(tenant, a)
    entries_b = history(tenant, b)
    assert [(e["version"], e["action"]) for e in entries_a] == [
        (2, "create"),
        (2, "relate"),
        (2, "unrelate"),
        (2, "relate"),
    ]
    assert [e["changes"] for e in entries_a[1:]] == [
        [{"field": "relation", "old": None, "new": {"type": "blocks", "objectId": b}}],
        [{"field": "relation", "old": {"type": "blocks", "objectId": b}, "new": None}],
        [{"field": "relation", "old": None, "new": {"type": "blocked_by", "objectId": b}}],
    ]
    assert [e["changes"] for e in entries_b[1:]] == [
        [{"field": "relation", "old": None, "new": {"type": "blocked_by", "objectId": a}}],
        [{"field": "relation", "old": {"type": "blocked_by", "objectId": a}, "new": None}],
        [{"field": "relation", "old": None, "new": {"type": "blocks", "objectId": a}}],
    ]
    # An update after relation changes is the next version, listed after them.
    updated(patch(tenant, a, {"etag": before[a]["etag"], "summary": "later"}))
    assert [(e["version"], e["action"]) for e in history(tenant, a)][-2:] == [
        (2, "relate"),
        (3, "update"),
    ]


def _events(tenant: Tenant) -> list[tuple[str, str, int, Any]]:
    rows = tenant.db.fetch(
        "SELECT kind, object_id, version, payload FROM ticket_events WHERE tenant_id = :t"
        " ORDER BY id",
        t=uuid.UUID(tenant.id),
    )
    return [
        (kind, object_id, version, json.loads(p) if isinstance(p, str) else p)
        for kind, object_id, version, p in rows
    ]


def test_relation_changes_write_an_update_event_on_both_tickets(
    tenant: Tenant, streams: list[SseReader]
) -> None:
    reader = open_stream(tenant)
    streams.append(reader)
    a, b = new(tenant), new(tenant)
    related(relate(tenant, a, "blocks", b))
    related(unrelate(tenant, b, "blocked_by", a))
    c = new(tenant, {"type": "relates_to", "objectId": a})

    rows = _events(tenant)
    assert [(kind, object_id, version) for kind, object_id, version, _ in rows] == [
        ("ticket.created", a, 2),
        ("ticket.created", b, 2),
        ("ticket.updated", a, 2),
        ("ticket.updated", b, 2),
        ("ticket.updated", b, 2),
        ("ticket.updated", a, 2),
        ("ticket.created", c, 2),
        ("ticket.updated", a, 2),
    ]
    assert [payload["changes"] for *_, payload in rows[2:6]] == [
        [{"field": "relation", "old": None, "new": {"type": "blocks", "objectId": b}}],
        [{"field": "relation", "old": None, "new": {"type": "blocked_by", "objectId": a}}],
        [{"field": "relation", "old": {"type": "blocked_by", "objectId": a}, "new": None}],
        [{"field": "relation", "old": {"type": "blocks", "objectId": b}, "new": None}],
    ]
    assert rows[7][3]["changes"] == [
        {"field": "relation", "old": None, "new": {"type": "relates_to", "objectId": c}}
    ]
    # The list stream shows each as an update of the ticket as it now is.
    events = reader.wait_for(lambda events: len([e for e in events if e.event != "heartbeat"]) >= 9)
    shown = [(e.event, e.data["objectId"]) for e in events if e.event in ("created", "updated")]
    assert shown == [
        ("created", a),
        ("created", b),
        ("updated", a),
        ("updated", b),
        ("updated", b),
        ("updated", a),
        ("created", c),
        ("updated", a),
    ]
    last = [e for e in events if e.event == "updated"][-1]
    assert last.data["ticket"] == get_ticket(tenant, a)
    assert last.data["version"] == 2


def test_a_second_parent_is_400(tenant: Tenant) -> None:
    a, b, child = new(tenant), new(tenant), new(tenant)
    related(relate(tenant, child, "parent", a))
    assert reason_of(relate(tenant, child, "parent", b)) == {
        "type": [f"Ticket {child} already has a parent ({a})"]
    }
    # Seen from the parent's side too: b cannot adopt a child that has a parent.
    assert ids(relations(tenant, child))["parent"] == a
    assert ids(relations(tenant, b)) == EMPTY


def test_a_deleted_parent_is_replaced(tenant: Tenant) -> None:
    old_parent, new_parent, child = new(tenant), new(tenant), new(tenant)
    related(relate(tenant, child, "parent", old_parent))
    etag = get_ticket(tenant, old_parent)["etag"]
    assert delete(tenant, old_parent, etag).status_code == 200
    assert ids(relations(tenant, child))["parent"] is None
    related(relate(tenant, child, "parent", new_parent))
    assert ids(relations(tenant, child))["parent"] == new_parent


@pytest.mark.parametrize("kind", ["parent", "blocks"])
def test_cycles_are_400(tenant: Tenant, kind: str) -> None:
    a, b, c = new(tenant), new(tenant), new(tenant)
    related(relate(tenant, a, kind, b))
    related(relate(tenant, b, kind, c))
    # (b, a) would also give b a second parent; c has none.
    pairs = ((c, a), (c, b)) if kind == "parent" else ((b, a), (c, a), (c, b))
    for source, target in pairs:
        reason = reason_of(relate(tenant, source, kind, target))
        assert reason == {"objectId": [f"{source} {kind} {target} would create a cycle"]}
    # Other types may point back.
    related(relate(tenant, c, "relates_to", a))
    assert ids(relations(tenant, a))[kind] == ([b] if kind == "blocks" else b)


def test_self_duplicate_unknown_and_malformed_relations(tenant: Tenant) -> None:
    a, b = new(tenant), new(tenant)
    assert reason_of(relate(tenant, a, "blocks", a)) == {
        "objectId": ["A ticket cannot be related to itself"]
    }
    assert reason_of(relate(tenant, a, "blocks", "CTC-0099")) == {
        "objectId": ["Related ticket CTC-0099 not found"]
    }
    assert set(reason_of(relate(tenant, a, "sibling", b))) == {"type"}
    assert set(reason_of(relate(tenant, a, "blocks", 7))) == {"objectId"}
    response = call(tenant, "POST", f"/ticket/{a}/relations", json=["blocks", b])
    assert set(reason_of(response)) == {"body"}
    response = call(
        tenant, "POST", f"/ticket/{a}/relations", json={"type": "blocks", "objectId": b, "x": 1}
    )
    assert set(reason_of(response)) == {"x"}
    related(relate(tenant, a, "relates_to", b))
    assert_error(relate(tenant, a, "relates_to", b), 409, "RELATION_EXISTS")
    # relates_to is one relation whichever side names it.
    assert_error(relate(tenant, b, "relates_to", a), 409, "RELATION_EXISTS")
    related(relate(tenant, a, "parent", b))
    assert_error(relate(tenant, b, "children", a), 400)  # not a type one may add
    assert_error(relate(tenant, a, "parent", b), 409, "RELATION_EXISTS")
    assert_error(relate(tenant, "CTC-0099", "blocks", a), 404)
    # Nothing of this was stored.
    assert ids(relations(tenant, a)) == {**EMPTY, "parent": b, "relates_to": [b]}
    assert [e["action"] for e in history(tenant, a)] == ["create", "relate", "relate"]


def test_relating_to_a_deleted_ticket_is_400_and_writes_nothing(tenant: Tenant) -> None:
    a, b = new(tenant), new(tenant)
    gone = created(tenant.create())["object_id"]
    assert delete(tenant, gone, get_ticket(tenant, gone)["etag"]).status_code == 200
    for kind in ("parent", "relates_to", "duplicate_of", "blocks"):
        assert reason_of(relate(tenant, a, kind, gone)) == {
            "objectId": [f"Related ticket {gone} not found"]
        }
    assert_error(relate(tenant, gone, "blocks", b), 404, "NOT_FOUND")
    assert relations(tenant, a) == EMPTY and relations(tenant, b) == EMPTY
    assert [e["action"] for e in history(tenant, a)] == ["create"]


def test_an_update_does_not_take_a_relation(tenant: Tenant) -> None:
    a, b = new(tenant), new(tenant)
    before = get_ticket(tenant, a)
    body = {"etag": before["etag"], "ticketRelation": {"type": "parent", "objectId": b}}
    assert reason_of(patch(tenant, a, body)) == {"ticketRelation": ["Unknown key ticketRelation"]}
    assert get_ticket(tenant, a) == before
    assert relations(tenant, a) == EMPTY


def test_admins_relate_and_merge(tenant: Tenant) -> None:
    admin = tenant.token(roles=["tenant_admin"])
    a, b = new(tenant), new(tenant)
    assert ids(related(relate(tenant, a, "blocks", b, token=admin))) == {**EMPTY, "blocks": [b]}
    related(unrelate(tenant, a, "blocks", b, token=admin))
    response = merge(tenant, a, {"into": b, "etag": get_ticket(tenant, a)["etag"]}, token=admin)
    assert response.status_code == 200, response.text
    assert response.json()["ticket"]["moved_to"] == b


def test_removing_what_is_not_there(tenant: Tenant) -> None:
    a, b = new(tenant), new(tenant)
    assert_error(unrelate(tenant, a, "blocks", b), 404, "NOT_FOUND")
    assert_error(unrelate(tenant, a, "blocks", "CTC-0099"), 404, "NOT_FOUND")
    assert_error(unrelate(tenant, "CTC-0099", "blocks", a), 404, "NOT_FOUND")
    assert set(reason_of(unrelate(tenant, a, "siblings", b))) == {"type"}
    assert [e["action"] for e in history(tenant, a)] == ["create"]


# --------------------------------------------------------------------------- visibility


def test_requesters_relate_only_their_own_tickets(tenant: Tenant) -> None:
    alice, bob = user_token(tenant, "alice"), user_token(tenant, "bob")
    mine, also_mine = new(tenant, token=alice), new(tenant, token=alice)
    theirs = new(tenant, token=bob)
    related(relate(tenant, mine, "blocks", also_mine, token=alice))
    assert reason_of(relate(tenant, mine, "blocks", theirs, token=alice)) == {
        "objectId": [f"Related ticket {theirs} not found"]
    }
    assert_error(relate(tenant, theirs, "blocks", mine, token=alice), 404)
    assert_error(tenant.get(f"/ticket/{theirs}/relations", token=alice), 404)
    assert_error(unrelate(tenant, theirs, "blocked_by", mine, token=alice), 404)
    # An agent relates Bob's ticket to Alice's: Alice does not see Bob's in her view.
    related(relate(tenant, theirs, "relates_to", mine))
    assert ids(relations(tenant, mine, token=alice)) == {**EMPTY, "blocks": [also_mine]}
    assert ids(relations(tenant, mine))["relates_to"] == [theirs]
    related(unrelate(tenant, mine, "blocks", also_mine, token=alice))


def test_other_tenants_and_read_only_tokens(tenant: Tenant, make_tenant: Any) -> None:
    a, b = new(tenant), new(tenant)
    other = make_tenant()
    assert_error(other.get(f"/ticket/{a}/relations"), 404)
    assert_error(relate(other, a, "blocks", b), 404)
    assert_error(unrelate(other, a, "blocks", b), 404)
    assert_error(merge(other, a, {"into": b, "etag": get_ticket(tenant, a)["etag"]}), 404)
    reader = tenant.token(scope="openid tickets:read")
    assert relations(tenant, a, token=reader) == EMPTY
    assert_error(relate(tenant, a, "blocks", b, token=reader), 401, "USER_PERMISSION_FAILURE")
    assert_error(unrelate(tenant, a, "blocks", b, token=reader), 401, "USER_PERMISSION_FAILURE")
    assert relations(tenant, a) == EMPTY


# --------------------------------------------------------------------------- concurrency


def _together(*requests: Any) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(lambda send: send(), requests))


@pytest.mark.parametrize("kind", ["parent", "blocks"])
def test_concurrent_writes_never_close_a_cycle_together(tenant: Tenant, kind: str) -> None:
    for _round in range(8):
        a, b, c = new(tenant), new(tenant), new(tenant)
        related(relate(tenant, a, kind, b))
        # b -> c and c -> a are each fine alone; together with a -> b they close a cycle.
        answers = _together(lambda: relate(tenant, b, kind, c), lambda: relate(tenant, c, kind, a))
        assert sorted(r.status_code for r in answers) == [200, 400], [r.text for r in answers]
        failed = next(r for r in answers if r.status_code == 400)
        assert "would create a cycle" in reason_of(failed)["objectId"][0]


def test_concurrent_second_parents_only_one_wins(tenant: Tenant) -> None:
    for _round in range(5):
        child, first, second = new(tenant), new(tenant), new(tenant)
        answers = _together(
            lambda: relate(tenant, child, "parent", first),
            lambda: relate(tenant, child, "parent", second),
        )
        assert sorted(r.status_code for r in answers) == [200, 400], [r.text for r in answers]
        assert ids(relations(tenant, child))["parent"] in (first, second)


def _at(value: Any) -> datetime:
    """A timestamp read from the database (SQLite gives text, stored in UTC)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_a_target_deleted_concurrently_is_never_related_after_its_deletion(
    tenant: Tenant,
) -> None:
    for _round in range(3):
        target = created(tenant.create())
        object_id = target["object_id"]
        others = [new(tenant) for _ in range(6)]
        relation = {"type": "parent", "objectId": object_id}
        sends = [lambda: tenant.create(seed_body(ticketRelation=relation)) for _ in range(6)] + [
            lambda other=other: relate(tenant, other, "blocks", object_id) for other in others
        ]
        sends.insert(6, lambda: delete(tenant, object_id, target["etag"]))
        answers = _together(*sends)
        assert answers[6].status_code == 200, answers[6].text
        for answer in answers[:6] + answers[7:]:
            assert answer.status_code in (200, 400), answer.text
            if answer.status_code == 400:
                assert "not found" in str(reason_of(answer))
        [(deleted_at,)] = tenant.db.fetch(
            "SELECT h.changed_at FROM ticket_history h JOIN tickets t ON t.tenant_id = h.tenant_id "
            "AND t.id = h.ticket_id WHERE t.object_id = :o AND h.tenant_id = :t "
            "AND h.action = 'delete'",
            o=object_id,
            t=uuid.UUID(tenant.id),
        )
        rows = tenant.db.fetch(
            "SELECT r.created_at FROM ticket_relations r JOIN tickets t "
            "ON t.tenant_id = r.tenant_id AND t.id = r.target_id WHERE t.object_id = :o "
            "AND r.tenant_id = :t",
            o=object_id,
            t=uuid.UUID(tenant.id),
        )
        succeeded = sum(1 for a in answers[:6] + answers[7:] if a.status_code == 200)
        assert len(rows) == succeeded
        # Each relation was made while the target still stood: its deletion waited for it.
        assert all(_at(row[0]) < _at(deleted_at) for row in rows), (rows, deleted_at)


# --------------------------------------------------------------------------- merge


def test_merge_moves_the_ticket_and_leaves_it_readable(tenant: Tenant) -> None:
    source = created(tenant.create())
    target = created(tenant.create())
    comment = call(tenant, "POST", "/ticket/CTC-0001/comments", json={"body": "first"})
    assert comment.status_code == 200
    response = merge(tenant, "CTC-0001", {"into": "CTC-0002", "etag": source["etag"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "ticket merged successfully" and body["objectId"] == "CTC-0001"
    merged = body["ticket"]
    assert merged["moved_to"] == "CTC-0002"
    assert (merged["status_type"], merged["status_category"]) == ("Resolved", "Done Category")
    assert merged["version"] == source["version"] + 1 and merged["etag"] != source["etag"]
    assert response.headers["etag"] == f'"{merged["etag"]}"'
    assert get_ticket(tenant, "CTC-0001") == merged
    comments = tenant.get("/ticket/CTC-0001/comments").json()["data"]["value"]
    assert [c["body"] for c in comments] == ["first"]
    source_history = history(tenant, "CTC-0001")[-1]
    assert (source_history["version"], source_history["action"]) == (3, "merge")
    assert source_history["changes"] == [
        {"field": "moved_to", "old": None, "new": "CTC-0002"},
        {"field": "status", "old": "Open", "new": "Resolved"},
    ]
    target_history = history(tenant, "CTC-0002")[-1]
    assert (target_history["version"], target_history["action"]) == (2, "merge")
    assert target_history["changes"] == [{"field": "mergedFrom", "old": None, "new": "CTC-0001"}]
    assert get_ticket(tenant, "CTC-0002") == target


def test_a_merge_stops_the_sla_clocks_as_an_update_to_done_does(
    make_tenant: Callable[..., Tenant],
) -> None:
    desk = make_tenant(**desk_overrides())
    source, target, twin = (created(desk.create()) for _ in range(3))
    response = merge(
        desk, source["object_id"], {"into": target["object_id"], "etag": source["etag"]}
    )
    assert response.status_code == 200, response.text
    merged = response.json()["ticket"]
    resolved = updated(patch(desk, twin["object_id"], {"etag": twin["etag"], "status": "Resolved"}))
    # Issue 10: resolution is met "by entering the Done category", also by a merge.
    for ticket in (merged, resolved):
        assert ticket["status_category"] == "Done Category"
        assert {
            k: (s["state"], s["stoppedAt"] is not None) for k, s in slas_by_kind(ticket).items()
        } == {
            "response": ("met", True),
            "resolution": ("met", True),
        }
        assert set(metrics_of(ticket)) == {"first_response_seconds", "resolution_seconds"}
    assert get_ticket(desk, source["object_id"]) == merged
    # The merge's history entry carries the clock changes an update to Done records.
    merge_entry = history(desk, source["object_id"])[-1]
    update_entry = history(desk, twin["object_id"])[-1]
    assert merge_entry["action"] == "merge"
    assert {c["field"] for c in merge_entry["changes"]} - {"moved_to"} == {
        c["field"] for c in update_entry["changes"]
    }
    # Nothing is left for the breach sweeper to find on the merged ticket.
    rows = desk.db.fetch(
        "SELECT sla_due_at, sla_sweep_at FROM tickets WHERE tenant_id = :t AND object_id = :o",
        t=uuid.UUID(desk.id),
        o=source["object_id"],
    )
    assert rows == [(None, None)]


def test_merged_tickets_leave_default_lists_and_counts_stay_exact(tenant: Tenant) -> None:
    tickets = [created(tenant.create()) for _ in range(4)]
    updated(patch(tenant, "CTC-0004", {"etag": tickets[3]["etag"], "status": "In Progress"}))
    assert (
        merge(tenant, "CTC-0001", {"into": "CTC-0002", "etag": tickets[0]["etag"]}).status_code
        == 200
    )
    live = ["CTC-0004", "CTC-0003", "CTC-0002"]
    assert list_ids(tenant) == live
    assert count(tenant) == 3
    open_only = {
        "filter": {"op": "AND", "operand": [{"column": "status", "op": "EQ", "operand": "Open"}]}
    }
    assert count(tenant, open_only) == 2
    resolved = {
        "filter": {
            "op": "AND",
            "operand": [{"column": "status", "op": "EQ", "operand": "Resolved"}],
        }
    }
    assert count(tenant, resolved) == 0 and list_ids(tenant, {**resolved, "top": 100}) == []
    # Filters that ask for merged tickets find them.
    for condition in (
        {"column": "merged", "op": "EQ", "operand": True},
        {"column": "movedTo", "op": "EQ", "operand": "CTC-0002"},
        {"column": "movedTo", "op": "IN", "operand": ["CTC-0002", "CTC-0003"]},
    ):
        query = {"top": 100, "filter": {"op": "AND", "operand": [condition]}}
        assert list_ids(tenant, query) == ["CTC-0001"], condition
        assert count(tenant, query) == 1
    everything = {
        "top": 100,
        "filter": {"op": "AND", "operand": [{"column": "movedTo", "op": "NE", "operand": "x"}]},
    }
    assert list_ids(tenant, everything) == ["CTC-0004", "CTC-0003", "CTC-0002", "CTC-0001"]
    not_merged = {
        "top": 100,
        "filter": {"op": "AND", "operand": [{"column": "merged", "op": "EQ", "operand": False}]},
    }
    assert list_ids(tenant, not_merged) == live

    # Changing or deleting the merged ticket leaves the counts exact.
    merged = get_ticket(tenant, "CTC-0001")
    merged = updated(patch(tenant, "CTC-0001", {"etag": merged["etag"], "status": "Open"}))
    assert count(tenant) == 3 and count(tenant, open_only) == 2
    assert delete(tenant, "CTC-0001", merged["etag"]).status_code == 200
    assert count(tenant) == 3 and count(tenant, open_only) == 2
    assert (
        count(
            tenant,
            {
                "filter": {
                    "op": "AND",
                    "operand": [{"column": "merged", "op": "EQ", "operand": True}],
                }
            },
        )
        == 0
    )
    # What the counters answer equals what the rows say.
    assert count(tenant, {"search": "Hardware"}) == 3
    assert (
        count(
            tenant,
            {
                "filter": {
                    "op": "AND",
                    "operand": [
                        {"column": "statusCategory", "op": "EQ", "operand": "To-do Category"}
                    ],
                }
            },
        )
        == 2
    )


def test_merge_etag_rules(tenant: Tenant) -> None:
    source = created(tenant.create())
    new(tenant)
    assert_error(merge(tenant, "CTC-0001", {"into": "CTC-0002"}), 428, "ETAG_REQUIRED")
    stale = str(uuid.uuid4())
    assert_error(
        merge(tenant, "CTC-0001", {"into": "CTC-0002", "etag": stale}), 409, "ETAG_MISMATCH"
    )
    response = merge(tenant, "CTC-0001", {"into": "CTC-0002"}, headers={"If-Match": f'"{stale}"'})
    assert_error(response, 412, "PRECONDITION_FAILED")
    assert get_ticket(tenant, "CTC-0001") == source
    response = merge(
        tenant, "CTC-0001", {"into": "CTC-0002"}, headers={"If-Match": f'"{source["etag"]}"'}
    )
    assert response.status_code == 200, response.text


def test_merge_refusals(tenant: Tenant) -> None:
    first = created(tenant.create())
    second = created(tenant.create())
    third = created(tenant.create())
    gone = created(tenant.create())
    assert delete(tenant, "CTC-0004", gone["etag"]).status_code == 200
    etag = first["etag"]
    cases: list[tuple[Any, dict[str, list[str]]]] = [
        ({"into": "CTC-0001", "etag": etag}, {"into": ["A ticket cannot be merged into itself"]}),
        ({"into": "CTC-0099", "etag": etag}, {"into": ["Ticket CTC-0099 not found"]}),
        ({"into": "CTC-0004", "etag": etag}, {"into": ["Ticket CTC-0004 not found"]}),
        (
            {"into": 5, "etag": etag},
            {"into": ["into must be the display ID of the ticket to merge into"]},
        ),
        ({"etag": etag}, {"into": ["into must be the display ID of the ticket to merge into"]}),
        ({"into": "CTC-0002", "etag": etag, "why": 1}, {"why": ["Unknown key why"]}),
    ]
    for body, reason in cases:
        assert reason_of(merge(tenant, "CTC-0001", body)) == reason, body
    assert get_ticket(tenant, "CTC-0001") == first
    # Into a merged ticket, and a merged ticket again.
    assert (
        merge(tenant, "CTC-0002", {"into": "CTC-0003", "etag": second["etag"]}).status_code == 200
    )
    assert reason_of(merge(tenant, "CTC-0001", {"into": "CTC-0002", "etag": etag})) == {
        "into": ["Ticket CTC-0002 was merged into CTC-0003"]
    }
    merged = get_ticket(tenant, "CTC-0002")
    assert reason_of(merge(tenant, "CTC-0002", {"into": "CTC-0001", "etag": merged["etag"]})) == {
        "objectId": ["Ticket CTC-0002 was already merged into CTC-0003"]
    }
    assert_error(merge(tenant, "CTC-0099", {"into": "CTC-0001", "etag": etag}), 404)
    user = user_token(tenant, "alice")
    assert_error(
        merge(tenant, "CTC-0001", {"into": "CTC-0003", "etag": etag}, token=user),
        401,
        "USER_PERMISSION_FAILURE",
    )
    assert get_ticket(tenant, "CTC-0001") == first
    assert get_ticket(tenant, "CTC-0003") == third
    assert [e["action"] for e in history(tenant, "CTC-0001")] == ["create"]


def test_merge_needs_a_done_status_in_the_workflow(tenant: Tenant) -> None:
    everything = create_everything(tenant)  # item type 20000: New, Triaged only
    new(tenant)
    response = merge(
        tenant, everything["object_id"], {"into": "CTC-0001", "etag": everything["etag"]}
    )
    assert reason_of(response) == {
        "objectId": ["The workflow of item type 20000 has no Done-category status"]
    }
    assert get_ticket(tenant, everything["object_id"]) == everything


# --------------------------------------------------------------------------- parent filter


def test_parent_filter_lists_and_counts_children(tenant: Tenant) -> None:
    p1, p2 = new(tenant), new(tenant)
    c1 = new(tenant, {"type": "parent", "objectId": p1})
    c2 = new(tenant, {"type": "parent", "objectId": p1})
    c3 = new(tenant, {"type": "parent", "objectId": p2})
    new(tenant, {"type": "blocks", "objectId": p1})
    assert list_ids(tenant, parent_filter(p1)) == [c2, c1]
    assert count(tenant, parent_filter(p1)) == 2
    assert list_ids(tenant, parent_filter([p1, p2], "IN")) == [c3, c2, c1]
    assert list_ids(tenant, parent_filter("CTC-0999")) == []
    both = parent_filter(p1)
    both["filter"]["operand"].append({"column": "objectId", "op": "EQ", "operand": c1})
    assert list_ids(tenant, both) == [c1]
    alice = user_token(tenant, "alice")
    assert list_ids(tenant, parent_filter(p1), token=alice) == []
    for bad in (parent_filter(p1, "NE"), parent_filter(7), parent_filter([], "IN")):
        response = call(tenant, "POST", "/ticket/list", json=bad)
        assert set(reason_of(response)) <= {"filter.operand[0].op", "filter.operand[0].operand"}


def test_the_parent_filter_is_answered_from_the_relations_index(tenant: Tenant) -> None:
    parent = new(tenant)
    child = new(tenant, {"type": "parent", "objectId": parent})
    tenant_id = uuid.UUID(tenant.id)

    async def plan(engine: Any) -> str:
        async with engine.begin() as conn:
            template = dict(
                (
                    await conn.execute(
                        select(Ticket.__table__).where(
                            Ticket.tenant_id == tenant_id, Ticket.object_id == parent
                        )
                    )
                )
                .mappings()
                .one()
            )
            # Enough tickets and relations that the planner weighs the indexes as it would
            # on a real tenant.
            bulk = [
                {
                    **template,
                    "id": uuid.uuid4(),
                    "object_id": f"BULK-{n:05d}",
                    "display_prefix": "BULK",
                    "display_number": n,
                    "id_serial": 10_000_000 + n,
                }
                for n in range(3000)
            ]
            await conn.execute(insert(Ticket), bulk)
            await conn.execute(
                insert(TicketRelation),
                [
                    {
                        "tenant_id": tenant_id,
                        "source_id": row["id"],
                        "type": "parent",
                        "target_id": bulk[n % 300]["id"],
                        "created_at": template["created_at"],
                        "created_by": {},
                    }
                    for n, row in enumerate(bulk[300:], start=300)
                ],
            )
            postgresql = engine.dialect.name == "postgresql"
            await conn.execute(text("ANALYZE"))
            query = (
                scoped(tenant_id)
                .where(Ticket.moved_to.is_(None), Ticket.id.in_(children_of(tenant_id, [parent])))
                .order_by(Ticket.created_at.desc(), Ticket.id_serial.desc())
                .limit(30)
            )
            sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
            explain = "EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN "
            rows = (await conn.execute(text(explain + sql))).all()
            return "\n".join(str(value) for row in rows for value in row)

    found = tenant.db.run(plan)
    assert "ix_ticket_relations_target" in found, found
    assert list_ids(tenant, parent_filter(parent)) == [child]
