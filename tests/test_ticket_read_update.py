"""A ticket after creation, black-box over HTTP (issue 3): get with ETag / If-None-Match,
update with etags (body or If-Match; 428 / 409 / 412), concurrent updates, soft delete,
who may do what, and tenant isolation on every ticket endpoint.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support import (
    DESCRIPTION,
    F_CHECKBOX,
    F_DATE,
    F_DROPDOWN,
    F_EMAIL,
    F_MULTISELECT,
    F_NUMBER,
    F_RICHTEXT,
    F_TEXT,
    F_TEXTAREA,
    NEEDED_WITHIN,
    TITLE,
    Tenant,
    everything_body,
    seed_body,
)
from tests.ticket_api import (
    API,
    QUERY,
    assert_error,
    call,
    count,
    create_everything,
    created,
    delete,
    get_ticket,
    history_len,
    list_ids,
    patch,
    reason_of,
    unchanged,
    updated,
    user_token,
)

# --------------------------------------------------------------------------- GET


def test_get_returns_the_create_shape_with_quoted_etag(tenant: Tenant) -> None:
    create = tenant.create()
    ticket = created(create)
    response = tenant.get(f"/ticket/{ticket['object_id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "success": True,
        "status": 200,
        "objectId": "CTC-0001",
        "ticket": ticket,
    }
    assert list(body["ticket"]) == list(create.json()["ticket"])
    assert response.headers["etag"] == f'"{ticket["etag"]}"'


def test_if_none_match_current_is_304_and_stale_is_200(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    path = f"{tenant.base_url}{API}/ticket/{ticket['object_id']}"
    current = f'"{ticket["etag"]}"'

    not_modified = tenant.client.get(
        path, params=QUERY, headers=tenant.headers(**{"If-None-Match": current})
    )
    assert not_modified.status_code == 304, not_modified.text
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == current

    stale = tenant.client.get(
        path, params=QUERY, headers=tenant.headers(**{"If-None-Match": f'"{uuid.uuid4()}"'})
    )
    assert stale.status_code == 200, stale.text
    assert stale.json()["ticket"] == ticket

    # After an update the old etag is stale and the new one is current.
    new = updated(patch(tenant, ticket["object_id"], {"etag": ticket["etag"], "summary": "x"}))
    old = tenant.client.get(
        path, params=QUERY, headers=tenant.headers(**{"If-None-Match": current})
    )
    assert old.status_code == 200
    assert old.json()["ticket"]["etag"] == new["etag"]
    assert old.headers["etag"] == f'"{new["etag"]}"'
    fresh = tenant.client.get(
        path, params=QUERY, headers=tenant.headers(**{"If-None-Match": f'"{new["etag"]}"'})
    )
    assert fresh.status_code == 304


@pytest.mark.parametrize("object_id", ["CTC-0002", "CTC-9999", "ALL-0001", "nonsense", "ctc-0001"])
def test_get_unknown_ticket_is_404(tenant: Tenant, object_id: str) -> None:
    created(tenant.create())
    assert_error(tenant.get(f"/ticket/{object_id}"), 404)


def test_get_needs_type_and_module(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    response = tenant.get(f"/ticket/{ticket['object_id']}", params={"module": "ticketing"})
    assert "type" in reason_of(response)
    response = tenant.get(f"/ticket/{ticket['object_id']}", params={"type": "template"})
    assert "module" in reason_of(response)


# --------------------------------------------------------------------------- PATCH success


def test_update_with_body_etag(tenant: Tenant) -> None:
    before = created(tenant.create())
    time.sleep(0.01)
    token = tenant.token(
        username="agent.smith", email="smith@example.com", first_name="Agent", last_name="Smith"
    )
    response = patch(
        tenant,
        "CTC-0001",
        {"etag": before["etag"], "summary": "Laptop - urgent", "ticketBody": {TITLE: "New title"}},
        token=token,
    )
    after = updated(response)
    assert response.json()["objectId"] == "CTC-0001"
    assert response.headers["etag"] == f'"{after["etag"]}"'

    assert after["summary"] == "Laptop - urgent"
    assert after["data"][TITLE] == "New title"
    assert after["version"] == before["version"] + 1
    assert after["etag"] != before["etag"]
    uuid.UUID(after["etag"])
    assert after["updated_at"] > before["updated_at"]
    assert after["created_at"] == before["created_at"]
    assert after["data"]["lastUpdatedBy"] == {
        "lastName": "Smith",
        "username": "agent.smith",
        "firstName": "Agent",
    }
    # Fields not given stay; so do the ticket's identity and bindings.
    assert after["data"]["submittedBy"] == before["data"]["submittedBy"] == "user@example.com"
    for key in (DESCRIPTION, NEEDED_WITHIN, "offerId", "ccWatchers", "toWatchers"):
        assert after["data"][key] == before["data"][key], key
    for key in ("id", "tenant_id", "object_id", "lookup_props", "status_type", "status_category"):
        assert after[key] == before[key], key
    assert after["id_serial"] == before["id_serial"]
    # What the update answered is what is stored.
    assert get_ticket(tenant, "CTC-0001") == after


@pytest.mark.parametrize("via", ["body", "If-Match"])
def test_an_update_with_only_the_etag_changes_nothing(tenant: Tenant, via: str) -> None:
    before = created(tenant.create())
    token = tenant.token(username="bob", email="bob@example.com", first_name="Bob")
    if via == "body":
        response = patch(tenant, "CTC-0001", {"etag": before["etag"]}, token=token)
    else:
        headers = {"If-Match": f'"{before["etag"]}"'}
        response = patch(tenant, "CTC-0001", {}, token=token, headers=headers)
    # 200 with the ticket as it is: same etag, version, updatedAt and lastUpdatedBy.
    assert updated(response) == before
    assert response.headers["etag"] == f'"{before["etag"]}"'
    unchanged(tenant, before)
    assert history_len(tenant, "CTC-0001") == 1
    # The etag is still the current one.
    assert updated(patch(tenant, "CTC-0001", {"etag": before["etag"], "summary": "now"}))


def test_an_update_to_the_values_the_ticket_already_has_changes_nothing(tenant: Tenant) -> None:
    before = created(tenant.create())
    body = {
        "etag": before["etag"],
        "summary": before["summary"],
        "status": before["status_type"],
        "ticketBody": {TITLE: before["data"][TITLE], NEEDED_WITHIN: before["data"][NEEDED_WITHIN]},
        "ccWatchers": before["data"]["ccWatchers"],
    }
    token = tenant.token(username="bob", email="bob@example.com", first_name="Bob")
    assert updated(patch(tenant, "CTC-0001", body, token=token)) == before
    unchanged(tenant, before)
    assert history_len(tenant, "CTC-0001") == 1


@pytest.mark.parametrize("if_match", ["quoted", "bare"])
def test_update_with_if_match(tenant: Tenant, if_match: str) -> None:
    before = created(tenant.create())
    value = f'"{before["etag"]}"' if if_match == "quoted" else before["etag"]
    after = updated(
        patch(tenant, "CTC-0001", {"summary": "via If-Match"}, headers={"If-Match": value})
    )
    assert after["summary"] == "via If-Match"
    assert after["version"] == before["version"] + 1
    # The next update needs the new etag.
    again = updated(
        patch(tenant, "CTC-0001", {"summary": "again"}, headers={"If-Match": f'"{after["etag"]}"'})
    )
    assert again["version"] == before["version"] + 2


def test_each_update_needs_the_latest_etag(tenant: Tenant) -> None:
    first = created(tenant.create())
    etag = first["etag"]
    for n in range(3):
        ticket = updated(patch(tenant, "CTC-0001", {"etag": etag, "summary": f"round {n}"}))
        assert ticket["version"] == first["version"] + n + 1
        etag = ticket["etag"]
    assert_error(patch(tenant, "CTC-0001", {"etag": first["etag"], "summary": "old"}), 409)
    assert get_ticket(tenant, "CTC-0001")["summary"] == "round 2"


def test_null_clears_an_optional_field(tenant: Tenant) -> None:
    before = create_everything(
        tenant, **{F_NUMBER: 42, F_TEXTAREA: "short", F_EMAIL: "a@example.com"}
    )
    after = updated(
        patch(
            tenant,
            before["object_id"],
            {"etag": before["etag"], "ticketBody": {F_NUMBER: None, F_TEXTAREA: None}},
        )
    )
    assert after["data"].get(F_NUMBER) is None
    assert after["data"].get(F_TEXTAREA) is None
    assert after["data"][F_EMAIL] == "a@example.com"
    assert after["data"][F_TEXT] == "hello"
    assert get_ticket(tenant, before["object_id"]) == after


@pytest.mark.parametrize("value", [None, "", "   "])
def test_required_field_cannot_be_cleared(tenant: Tenant, value: Any) -> None:
    before = created(tenant.create())
    response = patch(tenant, "CTC-0001", {"etag": before["etag"], "ticketBody": {TITLE: value}})
    reason = reason_of(response)
    assert reason[TITLE] == ["Field Title is required"]
    unchanged(tenant, before)


@pytest.mark.parametrize("value", ["", "   ", 7])
def test_summary_cannot_be_cleared_or_mistyped(tenant: Tenant, value: Any) -> None:
    before = created(tenant.create())
    response = patch(tenant, "CTC-0001", {"etag": before["etag"], "summary": value})
    assert "summary" in reason_of(response)
    unchanged(tenant, before)


def test_update_summary_length_limit(tenant: Tenant) -> None:
    before = created(tenant.create())
    response = patch(tenant, "CTC-0001", {"etag": before["etag"], "summary": "x" * 1001})
    assert reason_of(response) == {"summary": ["summary must be at most 1000 characters long"]}
    unchanged(tenant, before)
    after = updated(patch(tenant, "CTC-0001", {"etag": before["etag"], "summary": "é" * 1000}))
    assert after["summary"] == "é" * 1000
    assert get_ticket(tenant, "CTC-0001")["summary"] == "é" * 1000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (F_TEXT, "x" * 21),
        (F_TEXT, 12),
        (F_TEXTAREA, "x" * 11),
        (F_NUMBER, "12"),
        (F_NUMBER, 101),
        (F_NUMBER, -1),
        (F_NUMBER, True),
        (F_DATE, ""),
        (F_DATE, "10/07/2025"),
        (F_DROPDOWN, "urgent"),
        (F_MULTISELECT, ["low", "nope"]),
        (F_MULTISELECT, "low"),
        (F_CHECKBOX, "true"),
        (F_EMAIL, "not-an-email"),
    ],
)
def test_field_validation_is_the_same_as_create(tenant: Tenant, field: str, value: Any) -> None:
    before = create_everything(tenant)
    create_reason = reason_of(
        tenant.create(everything_body(**{field: value}), item_type="20000", catalog_type="agent")
    )
    update_reason = reason_of(
        patch(tenant, before["object_id"], {"etag": before["etag"], "ticketBody": {field: value}})
    )
    assert update_reason == {field: create_reason[field]}
    unchanged(tenant, before)


def test_every_failing_field_is_listed_at_once(tenant: Tenant) -> None:
    before = create_everything(tenant)
    response = patch(
        tenant,
        before["object_id"],
        {
            "etag": before["etag"],
            "summary": "",
            "status": "Nope",
            "ticketBody": {F_NUMBER: "x", F_CHECKBOX: 1, F_TEXT: None},
        },
    )
    reason = reason_of(response)
    assert {"summary", "status", F_NUMBER, F_CHECKBOX, F_TEXT} <= set(reason)
    unchanged(tenant, before)


def test_richtext_is_sanitized_on_update(tenant: Tenant) -> None:
    before = create_everything(tenant)
    dirty = (
        '<p onclick="steal()">Hi <a href="javascript:alert(1)">there</a></p>'
        "<script>alert(1)</script>"
    )
    after = updated(
        patch(
            tenant, before["object_id"], {"etag": before["etag"], "ticketBody": {F_RICHTEXT: dirty}}
        )
    )
    stored = after["data"][F_RICHTEXT]
    assert "Hi" in stored and "there" in stored
    for bad in ("<script", "onclick", "javascript:", "alert(1)</script"):
        assert bad not in stored, stored


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"bogus": 1}, "bogus"),
        ({"source": "web"}, "source"),
        ({"ticketBody": {"00000000-0000-4000-8000-0000000000ff": "x"}}, None),
        ({"ticketBody": {"notAField": "x"}}, "notAField"),
        ({"ticketBody": {F_TEXT: "hello"}}, F_TEXT),  # a field of another item type
        ({"ticketBody": "title=x"}, "ticketBody"),
        ({"ticketBody": {"offerId": "23630"}}, "offerId"),
        ({"ccWatchers": "a@example.com"}, "ccWatchers"),
    ],
)
def test_unknown_or_malformed_keys_are_400(
    tenant: Tenant, body: dict[str, Any], key: str | None
) -> None:
    before = created(tenant.create())
    reason = reason_of(patch(tenant, "CTC-0001", {"etag": before["etag"], **body}))
    expected = key if key is not None else next(iter(body["ticketBody"]))
    assert expected in reason, reason
    unchanged(tenant, before)


def test_watchers_can_be_replaced(tenant: Tenant) -> None:
    before = created(tenant.create())
    after = updated(
        patch(
            tenant,
            "CTC-0001",
            {"etag": before["etag"], "ccWatchers": ["a@example.com"], "toWatchers": ["bob"]},
        )
    )
    assert after["data"]["ccWatchers"] == ["a@example.com"]
    assert after["data"]["toWatchers"] == ["bob"]
    assert after["data"][TITLE] == before["data"][TITLE]


def test_body_that_is_not_a_json_object_is_400(tenant: Tenant) -> None:
    before = created(tenant.create())
    for content in (b"[]", b"not json", b'"etag"'):
        response = tenant.client.patch(
            f"{tenant.base_url}{API}/ticket/update/CTC-0001",
            params=QUERY,
            headers=tenant.headers(**{"If-Match": f'"{before["etag"]}"'}),
            content=content,
        )
        reason_of(response)
    unchanged(tenant, before)


# --------------------------------------------------------------------------- status


def test_status_change_moves_type_and_category(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    assert (ticket["status_type"], ticket["status_category"]) == ("Open", "To-do Category")
    for status, category in [
        ("In Progress", "In-Progress Category"),
        ("Resolved", "Done Category"),
        ("Closed", "Done Category"),
        ("Open", "To-do Category"),
    ]:
        ticket = updated(patch(tenant, "CTC-0001", {"etag": ticket["etag"], "status": status}))
        assert (ticket["status_type"], ticket["status_category"]) == (status, category)
    assert get_ticket(tenant, "CTC-0001") == ticket


def test_status_of_a_custom_workflow(tenant: Tenant) -> None:
    ticket = create_everything(tenant)
    assert (ticket["status_type"], ticket["status_category"]) == ("Triaged", "In-Progress Category")
    ticket = updated(patch(tenant, ticket["object_id"], {"etag": ticket["etag"], "status": "New"}))
    assert (ticket["status_type"], ticket["status_category"]) == ("New", "To-do Category")
    # "Open" is a status of another item type, not of this one.
    reason = reason_of(
        patch(tenant, ticket["object_id"], {"etag": ticket["etag"], "status": "Open"})
    )
    assert "status" in reason
    unchanged(tenant, ticket)


@pytest.mark.parametrize("status", ["Bogus", "open", "", 3, ["Closed"]])
def test_unknown_status_is_400(tenant: Tenant, status: Any) -> None:
    before = created(tenant.create())
    reason = reason_of(patch(tenant, "CTC-0001", {"etag": before["etag"], "status": status}))
    assert "status" in reason
    unchanged(tenant, before)


FLOW_TYPE = {
    "id": "16910",
    "name": "Flow",
    "fields": [
        {"id": TITLE, "name": "title", "label": "Title", "type": "text", "required": True},
    ],
    "workflow": {
        "statuses": [
            {"name": "Open", "category": "To-do Category", "initial": True},
            {"name": "In Progress", "category": "In-Progress Category"},
            {"name": "Done", "category": "Done Category"},
        ],
        "transitions": {"Open": ["In Progress"], "In Progress": ["Open", "Done"]},
    },
}


def flow_tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant(
        ticket_types=[FLOW_TYPE], offers=[{"id": "23629", "name": "Flow", "item_type": "16910"}]
    )


def create_flow(tenant: Tenant) -> dict[str, Any]:
    body = seed_body(ticketBody={"offerId": "23629", TITLE: "flow"})
    return created(tenant.create(body))


def test_workflow_transitions_are_enforced(make_tenant: Callable[..., Tenant]) -> None:
    tenant = flow_tenant(make_tenant)
    ticket = create_flow(tenant)
    assert ticket["status_type"] == "Open"

    # Open -> Done is not a transition.
    reason = reason_of(patch(tenant, "CTC-0001", {"etag": ticket["etag"], "status": "Done"}))
    assert "status" in reason
    unchanged(tenant, ticket)

    ticket = updated(patch(tenant, "CTC-0001", {"etag": ticket["etag"], "status": "In Progress"}))
    assert ticket["status_category"] == "In-Progress Category"
    ticket = updated(patch(tenant, "CTC-0001", {"etag": ticket["etag"], "status": "Done"}))
    assert (ticket["status_type"], ticket["status_category"]) == ("Done", "Done Category")

    # Done has no outgoing transitions.
    for target in ("Open", "In Progress"):
        reason = reason_of(patch(tenant, "CTC-0001", {"etag": ticket["etag"], "status": target}))
        assert "status" in reason
    unchanged(tenant, ticket)


def test_workflow_without_transitions_allows_any_status(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    ticket = updated(patch(tenant, "CTC-0001", {"etag": ticket["etag"], "status": "Closed"}))
    ticket = updated(patch(tenant, "CTC-0001", {"etag": ticket["etag"], "status": "Open"}))
    assert ticket["status_type"] == "Open"


# --------------------------------------------------------------------------- etags


@pytest.mark.parametrize(
    "body", [{"summary": "no etag"}, {"etag": None, "summary": "null etag"}, {}]
)
def test_missing_etag_is_428(tenant: Tenant, body: dict[str, Any]) -> None:
    before = created(tenant.create())
    assert_error(patch(tenant, "CTC-0001", body), 428)
    unchanged(tenant, before)
    assert history_len(tenant, "CTC-0001") == 1


@pytest.mark.parametrize("stale", ["random", "garbage", "previous"])
def test_stale_body_etag_is_409_etag_mismatch(tenant: Tenant, stale: str) -> None:
    first = created(tenant.create())
    before = updated(patch(tenant, "CTC-0001", {"etag": first["etag"], "summary": "v2"}))
    etag = {"random": str(uuid.uuid4()), "garbage": "not-an-etag", "previous": first["etag"]}[stale]
    response = patch(
        tenant, "CTC-0001", {"etag": etag, "summary": "lost", "ticketBody": {TITLE: "lost"}}
    )
    assert_error(response, 409, "ETAG_MISMATCH")
    unchanged(tenant, before)
    assert history_len(tenant, "CTC-0001") == 2


@pytest.mark.parametrize("stale", ["random", "previous"])
def test_stale_if_match_is_412(tenant: Tenant, stale: str) -> None:
    first = created(tenant.create())
    before = updated(patch(tenant, "CTC-0001", {"etag": first["etag"], "summary": "v2"}))
    etag = str(uuid.uuid4()) if stale == "random" else first["etag"]
    response = patch(tenant, "CTC-0001", {"summary": "lost"}, headers={"If-Match": f'"{etag}"'})
    assert_error(response, 412)
    unchanged(tenant, before)
    assert history_len(tenant, "CTC-0001") == 2


def test_body_etag_with_its_http_quotes_is_accepted(tenant: Tenant) -> None:
    before = created(tenant.create())
    after = updated(patch(tenant, "CTC-0001", {"etag": f'"{before["etag"]}"', "summary": "quoted"}))
    assert after["summary"] == "quoted"
    assert after["version"] == before["version"] + 1
    # A quoted etag that is stale is still stale.
    response = patch(tenant, "CTC-0001", {"etag": f'"{before["etag"]}"', "summary": "lost"})
    assert_error(response, 409, "ETAG_MISMATCH")
    assert get_ticket(tenant, "CTC-0001") == after


@pytest.mark.parametrize(
    ("body_etag", "if_match"),
    [("bare", "quoted"), ("quoted", "bare"), ("quoted", "quoted"), ("bare", "listed")],
)
def test_body_etag_and_if_match_naming_the_same_etag_are_accepted(
    tenant: Tenant, body_etag: str, if_match: str
) -> None:
    before = created(tenant.create())
    etag = before["etag"]
    body = {"etag": etag if body_etag == "bare" else f'"{etag}"', "summary": "both"}
    header = {"bare": etag, "quoted": f'"{etag}"', "listed": f'"{uuid.uuid4()}", "{etag}"'}
    after = updated(patch(tenant, "CTC-0001", body, headers={"If-Match": header[if_match]}))
    assert after["summary"] == "both"
    assert after["version"] == before["version"] + 1


@pytest.mark.parametrize("stale_one", ["body", "If-Match", "neither"])
def test_body_etag_and_if_match_that_disagree_are_400(tenant: Tenant, stale_one: str) -> None:
    before = created(tenant.create())
    current, other = before["etag"], str(uuid.uuid4())
    if stale_one == "neither":  # both unknown, but different: still a disagreement
        current = str(uuid.uuid4())
    body_etag = other if stale_one == "body" else current
    if_match = other if stale_one != "body" else current
    response = patch(
        tenant,
        "CTC-0001",
        {"etag": body_etag, "summary": "x"},
        headers={"If-Match": f'"{if_match}"'},
    )
    reason = reason_of(response)
    assert set(reason) == {"etag"}, reason
    assert any("disagree" in message for message in reason["etag"]), reason
    unchanged(tenant, before)
    assert history_len(tenant, "CTC-0001") == 1


def test_weak_if_match_never_satisfies_a_write(tenant: Tenant) -> None:
    before = created(tenant.create())
    weak = f'W/"{before["etag"]}"'
    response = patch(tenant, "CTC-0001", {"summary": "weak"}, headers={"If-Match": weak})
    assert_error(response, 412, "PRECONDITION_FAILED")
    # Also when the body names the same etag: they agree, but the header is weak.
    response = patch(
        tenant, "CTC-0001", {"etag": before["etag"], "summary": "weak"}, headers={"If-Match": weak}
    )
    assert_error(response, 412, "PRECONDITION_FAILED")
    # A weak etag in the body is no better.
    response = patch(tenant, "CTC-0001", {"etag": weak, "summary": "weak"})
    assert_error(response, 409, "ETAG_MISMATCH")
    assert_error(
        call(tenant, "DELETE", "/ticket/CTC-0001", headers={"If-Match": weak}),
        412,
        "PRECONDITION_FAILED",
    )
    unchanged(tenant, before)
    assert history_len(tenant, "CTC-0001") == 1
    assert count(tenant) == 1


def test_weak_if_none_match_still_matches_for_reads(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    response = tenant.get(
        "/ticket/CTC-0001", headers=tenant.headers(**{"If-None-Match": f'W/"{ticket["etag"]}"'})
    )
    assert response.status_code == 304


def test_if_match_star_matches_whatever_version_is_current(tenant: Tenant) -> None:
    first = created(tenant.create())
    current = updated(patch(tenant, "CTC-0001", {"etag": first["etag"], "summary": "v2"}))
    after = updated(patch(tenant, "CTC-0001", {"summary": "star"}, headers={"If-Match": "*"}))
    assert after["summary"] == "star"
    assert after["version"] == current["version"] + 1
    assert history_len(tenant, "CTC-0001") == 3
    # With a body etag too, the body etag decides.
    response = patch(
        tenant, "CTC-0001", {"etag": current["etag"], "summary": "x"}, headers={"If-Match": "*"}
    )
    assert_error(response, 409, "ETAG_MISMATCH")
    assert get_ticket(tenant, "CTC-0001") == after
    response = call(tenant, "DELETE", "/ticket/CTC-0001", headers={"If-Match": "*"})
    assert response.status_code == 200, response.text
    assert_error(tenant.get("/ticket/CTC-0001"), 404)
    # No current version: `*` matches nothing, and the ticket is gone.
    assert_error(patch(tenant, "CTC-0001", {"summary": "x"}, headers={"If-Match": "*"}), 404)


def test_validation_failure_writes_nothing(tenant: Tenant) -> None:
    before = created(tenant.create())
    response = patch(
        tenant,
        "CTC-0001",
        {"etag": before["etag"], "summary": "would change", "ticketBody": {NEEDED_WITHIN: "never"}},
    )
    assert NEEDED_WITHIN in reason_of(response)
    unchanged(tenant, before)
    assert history_len(tenant, "CTC-0001") == 1
    # The etag is still current.
    assert updated(patch(tenant, "CTC-0001", {"etag": before["etag"], "summary": "ok"}))


def test_update_of_unknown_ticket_is_404(tenant: Tenant) -> None:
    created(tenant.create())
    assert_error(patch(tenant, "CTC-0002", {"etag": str(uuid.uuid4()), "summary": "x"}), 404)


def _race(tenant: Tenant, requests: list[tuple[dict[str, Any], dict[str, str]]]) -> list[int]:
    """Sends the PATCHes at the same moment, each on its own connection."""
    barrier = threading.Barrier(len(requests))
    statuses: list[int] = [0] * len(requests)
    url = f"{tenant.base_url}{API}/ticket/update/CTC-0001"
    headers = [tenant.headers(**extra) for _, extra in requests]

    def run(i: int) -> None:
        with httpx.Client(timeout=30) as client:
            client.get(f"{tenant.base_url}/healthz")  # open the connection first
            barrier.wait()
            statuses[i] = client.patch(
                url, params=QUERY, headers=headers[i], json=requests[i][0]
            ).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.parametrize("via", ["body", "If-Match"])
def test_concurrent_updates_with_the_same_etag_exactly_one_wins(tenant: Tenant, via: str) -> None:
    ticket = created(tenant.create())
    lost = 409 if via == "body" else 412
    for round_ in range(5):
        requests = []
        for side in ("a", "b"):
            body: dict[str, Any] = {"summary": f"{round_}-{side}", "ticketBody": {TITLE: side}}
            extra: dict[str, str] = {}
            if via == "body":
                body["etag"] = ticket["etag"]
            else:
                extra["If-Match"] = f'"{ticket["etag"]}"'
            requests.append((body, extra))
        statuses = _race(tenant, requests)
        assert sorted(statuses) == [200, lost], (round_, statuses)
        winner = "ab"[statuses.index(200)]
        after = get_ticket(tenant, "CTC-0001")
        assert after["version"] == ticket["version"] + 1
        assert after["summary"] == f"{round_}-{winner}"
        assert after["data"][TITLE] == winner
        ticket = after
    # One history entry per successful update, after the creation entry.
    assert history_len(tenant, "CTC-0001") == 1 + 5


def test_many_concurrent_updates_with_the_same_etag(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    requests = [({"etag": ticket["etag"], "summary": f"writer {i}"}, {}) for i in range(6)]
    statuses = _race(tenant, requests)
    assert sorted(statuses) == [200] + [409] * 5, statuses
    after = get_ticket(tenant, "CTC-0001")
    assert after["version"] == ticket["version"] + 1
    assert after["summary"] == f"writer {statuses.index(200)}"


def test_update_racing_a_delete_exactly_one_wins(tenant: Tenant) -> None:
    for round_ in range(4):
        ticket = created(tenant.create())
        oid = ticket["object_id"]
        barrier = threading.Barrier(2)
        statuses: dict[str, int] = {}
        url = f"{tenant.base_url}{API}"

        def update() -> None:
            with httpx.Client(timeout=30) as client:
                client.get(f"{tenant.base_url}/healthz")
                barrier.wait()
                statuses["update"] = client.patch(
                    f"{url}/ticket/update/{oid}",
                    params=QUERY,
                    headers=tenant.headers(),
                    json={"etag": ticket["etag"], "summary": "updated"},
                ).status_code

        def remove() -> None:
            with httpx.Client(timeout=30) as client:
                client.get(f"{tenant.base_url}/healthz")
                barrier.wait()
                statuses["delete"] = client.delete(
                    f"{url}/ticket/{oid}",
                    params=QUERY,
                    headers=tenant.headers(**{"If-Match": f'"{ticket["etag"]}"'}),
                ).status_code

        threads = [threading.Thread(target=update), threading.Thread(target=remove)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert list(statuses.values()).count(200) == 1, (round_, statuses)
        if statuses["delete"] == 200:
            assert statuses["update"] in (404, 409), statuses
            assert_error(tenant.get(f"/ticket/{oid}"), 404)
        else:
            assert statuses["delete"] in (404, 412), statuses
            after = get_ticket(tenant, oid)
            assert (after["summary"], after["version"]) == ("updated", ticket["version"] + 1)
    assert count(tenant) == len(list_ids(tenant))


# --------------------------------------------------------------------------- DELETE


def test_delete_needs_if_match(tenant: Tenant) -> None:
    before = created(tenant.create())
    assert_error(delete(tenant, "CTC-0001", None), 428)
    unchanged(tenant, before)
    assert_error(delete(tenant, "CTC-0001", str(uuid.uuid4())), 412)
    unchanged(tenant, before)
    assert count(tenant) == 1


def test_ticket_user_cannot_delete_even_their_own(tenant: Tenant) -> None:
    alice = user_token(tenant)
    before = created(tenant.create(token=alice))
    response = delete(tenant, before["object_id"], before["etag"], token=alice)
    assert_error(response, 401, "USER_PERMISSION_FAILURE")
    assert get_ticket(tenant, before["object_id"], token=alice) == before


@pytest.mark.parametrize("role", ["ticket_agent", "tenant_admin"])
def test_soft_delete(tenant: Tenant, role: str) -> None:
    token = tenant.token(roles=[role])
    first = created(tenant.create())
    second = created(tenant.create(seed_body(summary="to be deleted")))
    assert second["object_id"] == "CTC-0002"
    assert count(tenant) == 2

    response = delete(tenant, "CTC-0002", second["etag"], token=token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["status"] == 200
    assert body["objectId"] == "CTC-0002"

    assert_error(tenant.get("/ticket/CTC-0002"), 404)
    assert list_ids(tenant) == ["CTC-0001"]
    assert count(tenant) == 1
    assert count(tenant, {"search": "to be deleted"}) == 0
    assert get_ticket(tenant, "CTC-0001") == first

    # Every other ticket endpoint treats it as gone.
    assert_error(patch(tenant, "CTC-0002", {"etag": second["etag"], "summary": "x"}), 404)
    assert_error(delete(tenant, "CTC-0002", second["etag"]), 404)
    assert_error(tenant.get("/ticket/CTC-0002/history"), 404)
    assert_error(tenant.get("/ticket/CTC-0002/comments"), 404)
    assert_error(call(tenant, "POST", "/ticket/CTC-0002/comments", json={"body": "hi"}), 404)

    # The row stays (soft delete) with deleted_seq recorded.
    rows = tenant.db.fetch(
        "SELECT deleted_seq FROM tickets WHERE tenant_id = :t AND object_id = 'CTC-0002'",
        t=uuid.UUID(tenant.id),
    )
    assert len(rows) == 1 and rows[0][0] != -1, rows

    # The display ID is never reused.
    third = created(tenant.create())
    assert third["object_id"] == "CTC-0003"
    assert sorted(list_ids(tenant)) == ["CTC-0001", "CTC-0003"]


# --------------------------------------------------------------------------- who may do what


def test_read_scope_can_read_but_not_change(tenant: Tenant) -> None:
    before = created(tenant.create())
    reader = tenant.token(scope="openid tickets:read")
    assert get_ticket(tenant, "CTC-0001", token=reader) == before
    assert list_ids(tenant, token=reader) == ["CTC-0001"]
    assert count(tenant, token=reader) == 1
    assert tenant.get("/ticket/CTC-0001/history", token=reader).status_code == 200
    assert tenant.get("/ticket/CTC-0001/comments", token=reader).status_code == 200
    assert tenant.get("/tenant/meta", token=reader).status_code == 200

    response = patch(tenant, "CTC-0001", {"etag": before["etag"], "summary": "x"}, token=reader)
    assert_error(response, 401, "USER_PERMISSION_FAILURE")
    response = delete(tenant, "CTC-0001", before["etag"], token=reader)
    assert_error(response, 401, "USER_PERMISSION_FAILURE")
    response = call(tenant, "POST", "/ticket/CTC-0001/comments", token=reader, json={"body": "x"})
    assert_error(response, 401, "USER_PERMISSION_FAILURE")
    unchanged(tenant, before)
    assert tenant.get("/ticket/CTC-0001/comments").json()["data"]["count"] == 0


def test_write_scope_alone_can_read_and_change(tenant: Tenant) -> None:
    before = created(tenant.create())
    writer = tenant.token(scope="openid tickets:write")
    assert get_ticket(tenant, "CTC-0001", token=writer) == before
    assert list_ids(tenant, token=writer) == ["CTC-0001"]
    assert count(tenant, token=writer) == 1
    after = updated(
        patch(tenant, "CTC-0001", {"etag": before["etag"], "summary": "w"}, token=writer)
    )
    assert delete(tenant, "CTC-0001", after["etag"], token=writer).status_code == 200


def test_token_without_ticket_role_cannot_read(tenant: Tenant) -> None:
    created(tenant.create())
    service = tenant.token(roles=["offline_access"])
    for response in (
        tenant.get("/ticket/CTC-0001", token=service),
        call(tenant, "POST", "/ticket/list", token=service, json={}),
        call(tenant, "POST", "/ticket/count", token=service, json={}),
        tenant.get("/ticket/CTC-0001/history", token=service),
    ):
        assert_error(response, 401, "USER_PERMISSION_FAILURE")


def test_ticket_user_works_only_their_own_tickets(tenant: Tenant) -> None:
    alice, bob = user_token(tenant, "alice"), user_token(tenant, "bob")
    mine = created(tenant.create(seed_body(summary="alice's"), token=alice))
    theirs = created(tenant.create(seed_body(summary="bob's"), token=bob))
    agents = created(tenant.create(seed_body(summary="agent's")))
    assert mine["data"]["submittedBy"] == "alice@example.com"

    # Alice reads, lists, updates and comments on her own ticket.
    assert get_ticket(tenant, mine["object_id"], token=alice) == mine
    assert list_ids(tenant, token=alice) == [mine["object_id"]]
    assert count(tenant, token=alice) == 1
    assert count(tenant, {"search": "bob"}, token=alice) == 0
    after = updated(
        patch(tenant, mine["object_id"], {"etag": mine["etag"], "summary": "mine"}, token=alice)
    )
    assert after["data"]["lastUpdatedBy"]["username"] == "alice"
    posted = call(
        tenant, "POST", f"/ticket/{mine['object_id']}/comments", token=alice, json={"body": "hi"}
    )
    assert posted.status_code == 200, posted.text
    assert tenant.get(f"/ticket/{mine['object_id']}/history", token=alice).status_code == 200

    # Everyone else's tickets answer 404 on every endpoint, and nothing is written.
    for other in (theirs, agents):
        oid = other["object_id"]
        assert_error(tenant.get(f"/ticket/{oid}", token=alice), 404)
        assert_error(patch(tenant, oid, {"etag": other["etag"], "summary": "x"}, token=alice), 404)
        assert_error(
            patch(tenant, oid, {"summary": "x"}, token=alice, headers={"If-Match": other["etag"]}),
            404,
        )
        assert_error(tenant.get(f"/ticket/{oid}/history", token=alice), 404)
        assert_error(tenant.get(f"/ticket/{oid}/comments", token=alice), 404)
        response = call(tenant, "POST", f"/ticket/{oid}/comments", token=alice, json={"body": "x"})
        assert_error(response, 404)
        assert get_ticket(tenant, oid) == other
        assert tenant.get(f"/ticket/{oid}/comments").json()["data"]["count"] == 0

    # Agents and admins see and work everything.
    for role in ("ticket_agent", "tenant_admin"):
        token = tenant.token(roles=[role], username=f"{role}@example.com")
        assert sorted(list_ids(tenant, token=token)) == ["CTC-0001", "CTC-0002", "CTC-0003"]
        assert count(tenant, token=token) == 3
        ticket = get_ticket(tenant, theirs["object_id"], token=token)
        ticket = updated(
            patch(
                tenant, theirs["object_id"], {"etag": ticket["etag"], "summary": role}, token=token
            )
        )
        assert ticket["data"]["submittedBy"] == "bob@example.com"


def test_ticket_user_matches_on_email_not_display_name(tenant: Tenant) -> None:
    # Same username, different email: a different submitter.
    one = user_token(tenant, "carol")
    other = tenant.token(roles=["ticket_user"], username="carol", email="carol@elsewhere.example")
    ticket = created(tenant.create(token=one))
    assert_error(tenant.get(f"/ticket/{ticket['object_id']}", token=other), 404)
    assert count(tenant, token=other) == 0


# --------------------------------------------------------------------------- tenants


ENDPOINTS = ["get", "update-body", "update-if-match", "delete", "history", "comments", "comment"]


def _hit(
    tenant: Tenant,
    endpoint: str,
    oid: str,
    etag: str,
    token: str | None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Calls one ticket endpoint on `oid`; `headers` override the standard ones."""
    extra = dict(headers or {})
    if endpoint == "get":
        return call(tenant, "GET", f"/ticket/{oid}", token=token, headers=extra)
    if endpoint == "update-body":
        body = {"etag": etag, "summary": "hijacked"}
        return call(tenant, "PATCH", f"/ticket/update/{oid}", token=token, json=body, headers=extra)
    if endpoint == "update-if-match":
        extra["If-Match"] = f'"{etag}"'
        body = {"summary": "hijacked"}
        return call(tenant, "PATCH", f"/ticket/update/{oid}", token=token, json=body, headers=extra)
    if endpoint == "delete":
        extra["If-Match"] = f'"{etag}"'
        return call(tenant, "DELETE", f"/ticket/{oid}", token=token, headers=extra)
    if endpoint == "history":
        return call(tenant, "GET", f"/ticket/{oid}/history", token=token, headers=extra)
    if endpoint == "comments":
        return call(tenant, "GET", f"/ticket/{oid}/comments", token=token, headers=extra)
    body = {"body": "hijack"}
    return call(tenant, "POST", f"/ticket/{oid}/comments", token=token, json=body, headers=extra)


@pytest.mark.parametrize("role", ["ticket_agent", "tenant_admin"])
def test_nothing_crosses_tenants(make_tenant: Callable[..., Tenant], role: str) -> None:
    mine, other = make_tenant(), make_tenant()
    own = created(mine.create(seed_body(summary="mine")))
    theirs = [created(other.create(seed_body(summary=f"secret {n}"))) for n in range(2)]
    token = mine.token(roles=[role])

    # CTC-0001 exists in both tenants: each sees its own.
    assert get_ticket(mine, "CTC-0001", token=token)["id"] == own["id"]
    # CTC-0002 exists only in the other tenant: every endpoint answers 404.
    target = theirs[1]
    for endpoint in ENDPOINTS:
        response = _hit(mine, endpoint, target["object_id"], target["etag"], token)
        assert_error(response, 404)
    # Even for the shared display ID, the other tenant's etag does not reach its ticket.
    response = patch(mine, "CTC-0001", {"etag": theirs[0]["etag"], "summary": "x"}, token=token)
    assert_error(response, 409)

    # Lists and counts never include the other tenant's tickets.
    assert list_ids(mine, token=token) == ["CTC-0001"]
    assert count(mine, token=token) == 1
    assert count(mine, {"search": "secret"}, token=token) == 0
    filter_ = {"op": "OR", "operand": [{"column": "summary", "op": "LIKE", "operand": "secret"}]}
    assert count(mine, {"filter": filter_}, token=token) == 0
    assert list_ids(mine, {"filter": filter_}, token=token) == []

    # The other tenant's tickets are untouched.
    for ticket in theirs:
        assert get_ticket(other, ticket["object_id"]) == ticket
        assert other.get(f"/ticket/{ticket['object_id']}/comments").json()["data"]["count"] == 0
        assert history_len(other, ticket["object_id"]) == 1
    assert get_ticket(mine, "CTC-0001") == own


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_own_token_with_other_tenants_id_is_tenant_not_found(
    make_tenant: Callable[..., Tenant], endpoint: str
) -> None:
    mine, other = make_tenant(), make_tenant()
    ticket = created(other.create())
    # A valid token of `mine`, sent with x-tenantid naming `other` (SPEC section 2, step 3).
    response = _hit(
        mine, endpoint, ticket["object_id"], ticket["etag"], None, {"x-tenantid": other.id}
    )
    body = assert_error(response, 404)
    assert body["message"] == "Tenant not found"
    assert get_ticket(other, ticket["object_id"]) == ticket
    assert other.get(f"/ticket/{ticket['object_id']}/comments").json()["data"]["count"] == 0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_ticket_endpoint_needs_a_token(tenant: Tenant, endpoint: str) -> None:
    ticket = created(tenant.create())
    bad = "not-a-jwt"
    response = _hit(tenant, endpoint, ticket["object_id"], ticket["etag"], bad)
    assert_error(response, 401, "AUTHENTICATION_FAILURE")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert get_ticket(tenant, ticket["object_id"]) == ticket


@pytest.mark.parametrize("role", ["ticket_agent", "tenant_admin"])
def test_list_count_and_meta_with_other_tenants_id_are_tenant_not_found(
    make_tenant: Callable[..., Tenant], role: str
) -> None:
    mine = make_tenant()
    other = make_tenant(teams=[{"id": "secret-team", "name": "Secret team"}])
    theirs = created(
        other.create(seed_body(summary="secret summary"), team="secret-team", token=None)
    )
    created(mine.create(seed_body(summary="mine")))
    # A valid token of `mine`, sent with x-tenantid naming `other` (SPEC section 2, step 3).
    headers = {"x-tenantid": other.id}
    token = mine.token(roles=[role])
    calls = [
        ("POST", "/ticket/list", {"top": 100}),
        ("POST", "/ticket/list", {"search": "secret"}),
        ("POST", "/ticket/count", {}),
        (
            "POST",
            "/ticket/count",
            {"filter": {"operand": [{"column": "teamId", "op": "EQ", "operand": "secret-team"}]}},
        ),
        ("GET", "/tenant/meta", None),
    ]
    for method, path, body in calls:
        response = call(mine, method, path, token=token, json=body, headers=headers)
        envelope = assert_error(response, 404, "TENANT_NOT_FOUND")
        assert envelope == {
            "error": True,
            "code": "TENANT_NOT_FOUND",
            "message": "Tenant not found",
            "status": 404,
        }, (path, envelope)
        for secret in ("secret", theirs["id"], theirs["etag"], "Secret team"):
            assert secret not in response.text, (path, response.text)
    # Nothing of the other tenant changed, and each still sees only its own.
    assert get_ticket(other, theirs["object_id"]) == theirs
    assert list_ids(other) == [theirs["object_id"]]
    assert count(mine, token=token) == 1
    assert "secret-team" not in {t["id"] for t in mine.get("/tenant/meta").json()["data"]["teams"]}
