"""Create Ticket input validation, black-box over HTTP (seed + SPEC sections 1, 3, 4).

Every 400 must be the seed's INPUT_VALIDATION_FAILURE envelope, keyed by field UUID or body
key, listing every failure at once, and must leave the database untouched.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.support import (
    DESCRIPTION,
    F_CHECKBOX,
    F_DATE,
    F_DATETIME,
    F_DROPDOWN,
    F_EMAIL,
    F_MULTISELECT,
    F_NUMBER,
    F_RADIO,
    F_RICHTEXT,
    F_TEXT,
    F_TEXTAREA,
    F_USER,
    NEEDED_WITHIN,
    TITLE,
    Tenant,
    everything_body,
    seed_body,
)

VALIDATION_MESSAGE = "There occured an error during ticket data validation"
BODY_KEYS = ("source", "summary", "ticketBody", "attachments", "ticketRelation")


# --------------------------------------------------------------------------- helpers


def reason_of(response: httpx.Response) -> dict[str, list[str]]:
    """Checks the seed's 400 envelope exactly and returns validationResult.reason."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "code", "message", "status", "validationResult"}, body
    assert body["error"] is True
    assert body["code"] == "INPUT_VALIDATION_FAILURE"
    assert body["message"] == VALIDATION_MESSAGE
    assert body["status"] == 400
    result = body["validationResult"]
    assert set(result) == {"result", "reason"}, result
    assert result["result"] is False
    reason = result["reason"]
    assert isinstance(reason, dict) and reason, body
    for key, messages in reason.items():
        assert isinstance(messages, list) and messages, (key, messages)
        assert all(isinstance(m, str) and m.strip() for m in messages), (key, messages)
    return reason  # type: ignore[no-any-return]


def assert_rejected(response: httpx.Response, *keys: str) -> dict[str, list[str]]:
    """A 400 whose reason names at least `keys`."""
    reason = reason_of(response)
    missing = [k for k in keys if k not in reason]
    assert not missing, f"{missing} not in reason {reason}"
    return reason


def ok(response: httpx.Response) -> dict[str, Any]:
    """A 200 create; returns ticket.data."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "ticket created successfully"
    return body["ticket"]["data"]  # type: ignore[no-any-return]


def create_everything(tenant: Tenant, **fields: Any) -> httpx.Response:
    """A create on item type 20000 with offer 23630 (agent catalog)."""
    return tenant.create(everything_body(**fields), item_type="20000", catalog_type="agent")


def stored_data(tenant: Tenant, object_id: str) -> dict[str, Any]:
    """The ticket's `data` as stored in the database."""
    rows = tenant.db.fetch(
        "SELECT data FROM tickets WHERE tenant_id = :t AND object_id = :o",
        t=uuid.UUID(tenant.id),
        o=object_id,
    )
    assert len(rows) == 1, rows
    data = rows[0][0]
    return json.loads(data) if isinstance(data, str | bytes) else data  # type: ignore[no-any-return]


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


# --------------------------------------------------------------------------- envelope, top level


def test_envelope_is_exactly_the_seeds(tenant: Tenant) -> None:
    response = tenant.create(without(seed_body(), "ticketRelation"))
    body = response.json()
    assert response.status_code == 400
    messages = body["validationResult"]["reason"]["ticketRelation"]
    assert body == {
        "error": True,
        "code": "INPUT_VALIDATION_FAILURE",
        "message": VALIDATION_MESSAGE,
        "status": 400,
        "validationResult": {"result": False, "reason": {"ticketRelation": messages}},
    }
    reason_of(response)


@pytest.mark.parametrize("key", BODY_KEYS)
def test_missing_top_level_key(tenant: Tenant, key: str) -> None:
    reason = assert_rejected(tenant.create(without(seed_body(), key)), key)
    if key != "ticketBody":
        # Nothing else is wrong with the body, so nothing else may be reported.
        assert set(reason) == {key}, reason
    assert tenant.ticket_count() == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("attachments", []),
        ("attachments", "none"),
        ("attachments", None),
        ("ticketRelation", "CTC-0001"),
        ("ticketRelation", []),
        ("ticketRelation", 7),
        ("ticketBody", []),
        ("ticketBody", "offerId=23629"),
        ("ticketBody", None),
        ("summary", 42),
        ("summary", None),
        ("summary", ["a"]),
        ("source", ""),
        ("source", "   "),
        ("source", 1),
        ("source", None),
    ],
)
def test_wrong_top_level_type(tenant: Tenant, key: str, value: Any) -> None:
    reason = assert_rejected(tenant.create(seed_body(**{key: value})), key)
    assert set(reason) == {key}, reason
    assert tenant.ticket_count() == 0


# The README's limits: `summary` 1 to 1,000 characters, `source` 1 to 100.
@pytest.mark.parametrize(("key", "limit"), [("summary", 1000), ("source", 100)])
def test_summary_and_source_lengths_at_and_past_their_limits(
    tenant: Tenant, key: str, limit: int
) -> None:
    at_limit = "é" * limit  # characters, not bytes
    response = tenant.create(seed_body(**{key: at_limit}))
    assert response.status_code == 200, response.text
    if key == "summary":  # (the ticket does not show its source)
        assert response.json()["ticket"]["summary"] == at_limit
    reason = assert_rejected(tenant.create(seed_body(**{key: "x" * (limit + 1)})), key)
    assert set(reason) == {key}, reason
    assert reason[key] == [f"{key} must be at most {limit} characters long"]
    assert tenant.ticket_count() == 1


def test_ticket_relation_null_and_empty_attachments_accepted(tenant: Tenant) -> None:
    ok(tenant.create(seed_body(attachments={}, ticketRelation=None)))


@pytest.mark.parametrize("key", ["extra", "ticket_body", "Summary"])
def test_unknown_top_level_key(tenant: Tenant, key: str) -> None:
    reason = assert_rejected(tenant.create(seed_body(**{key: "x"})), key)
    assert set(reason) == {key}, reason
    assert tenant.ticket_count() == 0


@pytest.mark.parametrize("raw", [b"[]", b"null", b'"api"', b"42", b"true"])
def test_body_not_an_object(tenant: Tenant, raw: bytes) -> None:
    reason_of(tenant.create(content=raw))
    assert tenant.ticket_count() == 0


@pytest.mark.parametrize(
    "raw",
    [b'{"source": "api",', b"{...", b"", b"{'source': 'api'}", b"\xff\xfe"],
)
def test_malformed_json(tenant: Tenant, raw: bytes) -> None:
    reason_of(tenant.create(content=raw))
    assert tenant.ticket_count() == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type(tenant: Tenant, content_type: str) -> None:
    headers = tenant.headers(**{"content-type": content_type})
    raw = json.dumps(seed_body()).encode()
    reason_of(tenant.create(content=raw, headers=headers))
    assert tenant.ticket_count() == 0


def test_content_type_with_charset_accepted(tenant: Tenant) -> None:
    headers = tenant.headers(**{"content-type": "application/json; charset=utf-8"})
    ok(tenant.create(content=json.dumps(seed_body()).encode(), headers=headers))


def _create_with_accept(tenant: Tenant, accept: str | None) -> httpx.Response:
    request = tenant.client.build_request(
        "POST",
        f"{tenant.base_url}/api/v2/ticketing/ticket/create/james/16910",
        params={"type": "template", "module": "ticketing"},
        headers=tenant.headers(),
        json=seed_body(),
    )
    del request.headers["accept"]  # the client's own default too
    if accept is not None:
        request.headers["accept"] = accept
    return tenant.client.send(request)


@pytest.mark.parametrize(
    "accept", [None, "", "text/html", "application/xml, text/plain", "application/json;q=0"]
)
def test_accept_is_required_and_must_allow_json(tenant: Tenant, accept: str | None) -> None:
    reason = reason_of(_create_with_accept(tenant, accept))
    assert reason == {"accept": ["Header accept must allow application/json"]}
    assert tenant.ticket_count() == 0


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "APPLICATION/JSON",
        "*/*",
        "application/*",
        "text/html, application/json;q=0.5",
        "text/html;q=0.9, */*;q=0.1",
    ],
)
def test_accept_that_allows_json_is_served(tenant: Tenant, accept: str) -> None:
    ok(_create_with_accept(tenant, accept))


def test_every_failure_listed_at_once(tenant: Tenant) -> None:
    body = everything_body(**{F_DATE: "not a date", F_NUMBER: "7", F_DROPDOWN: "urgent"})
    del body["ticketBody"][F_TEXT]  # required
    body["ticketBody"]["offerId"] = "99999"  # unknown offer
    unknown = str(uuid.uuid4())
    body["ticketBody"][unknown] = "x"  # unknown field
    del body["attachments"]
    body["summary"] = 5
    response = tenant.create(body, item_type="20000", catalog_type="agent")
    reason = assert_rejected(
        response,
        F_TEXT,
        F_DATE,
        F_NUMBER,
        F_DROPDOWN,
        "offerId",
        unknown,
        "attachments",
        "summary",
    )
    assert reason[F_TEXT] == ["Field Text is required"]
    assert reason[F_DATE] == [
        "You have entered an invalid date value for Due, expects a proper date string"
    ]
    assert tenant.ticket_count() == 0


def test_query_and_body_failures_listed_together(tenant: Tenant) -> None:
    body = seed_body()
    del body["ticketBody"][TITLE]
    reason = assert_rejected(tenant.create(body, catalog_type="bogus", module=None), TITLE)
    assert {"type", "module"} <= set(reason), reason


# --------------------------------------------------------------------------- query parameters


@pytest.mark.parametrize(
    ("catalog_type", "module", "key"),
    [
        (None, "ticketing", "type"),
        ("", "ticketing", "type"),
        ("admin", "ticketing", "type"),
        ("Template", "ticketing", "type"),
        ("template", None, "module"),
        ("template", "", "module"),
        ("template", "nonsense", "module"),
    ],
)
def test_query_parameters(
    tenant: Tenant, catalog_type: str | None, module: str | None, key: str
) -> None:
    reason = assert_rejected(tenant.create(catalog_type=catalog_type, module=module), key)
    assert set(reason) == {key}, reason
    assert tenant.ticket_count() == 0


@pytest.mark.parametrize("catalog_type", ["template", "agent", "user"])
def test_every_catalog_type_accepted(tenant: Tenant, catalog_type: str) -> None:
    ok(tenant.create(catalog_type=catalog_type))


def test_both_query_parameters_missing_listed_at_once(tenant: Tenant) -> None:
    reason = assert_rejected(tenant.create(catalog_type=None, module=None), "type", "module")
    assert set(reason) == {"type", "module"}, reason


# --------------------------------------------------------------------------- offerId


def _seed_with_offer(offer: Any = ...) -> dict[str, Any]:
    body = seed_body()
    if offer is ...:
        del body["ticketBody"]["offerId"]
    else:
        body["ticketBody"]["offerId"] = offer
    return body


@pytest.mark.parametrize(
    "offer",
    [..., None, "", 23629, 23629.0, ["23629"], {"id": "23629"}, "99999", "23631"],
    ids=["missing", "null", "empty", "int", "float", "list", "object", "unknown", "inactive"],
)
def test_bad_offer(tenant: Tenant, offer: Any) -> None:
    reason = assert_rejected(tenant.create(_seed_with_offer(offer)), "offerId")
    assert set(reason) == {"offerId"}, reason
    assert tenant.ticket_count() == 0


def test_offer_of_another_tenant_is_unknown(make_tenant: Any) -> None:
    other = make_tenant(
        offers=[{"id": "77777", "name": "Only here", "item_type": "16910"}],
    )
    ok(other.create(_seed_with_offer("77777")))
    tenant = make_tenant()
    assert_rejected(tenant.create(_seed_with_offer("77777")), "offerId")


@pytest.mark.parametrize("catalog_type", ["template", "user"])
def test_offer_not_in_requested_catalog(tenant: Tenant, catalog_type: str) -> None:
    response = tenant.create(everything_body(), item_type="20000", catalog_type=catalog_type)
    reason = assert_rejected(response, "offerId")
    assert set(reason) == {"offerId"}, reason
    assert tenant.ticket_count() == 0


def test_offer_in_requested_catalog(tenant: Tenant) -> None:
    response = create_everything(tenant)
    data = ok(response)
    assert data["offerId"] == "23630"
    assert response.json()["objectId"] == "ALL-0001"


def test_offer_item_type_mismatch(tenant: Tenant) -> None:
    body = everything_body()
    body["ticketBody"]["offerId"] = "23629"  # creates 16910, all catalogs
    response = tenant.create(body, item_type="20000", catalog_type="agent")
    reason = assert_rejected(response, "offerId")
    assert set(reason) == {"offerId"}, reason
    # And the other way round: offer 23630 (item type 20000) on path 16910.
    response = tenant.create(_seed_with_offer("23630"), catalog_type="agent")
    reason = assert_rejected(response, "offerId")
    assert set(reason) == {"offerId"}, reason
    assert tenant.ticket_count() == 0


# --------------------------------------------------------------------------- ticketBody keys


@pytest.mark.parametrize(
    "key",
    [str(uuid.uuid4()), "not-a-uuid", "title", F_TEXT],
    ids=["random-uuid", "non-uuid", "field-name", "field-of-other-type"],
)
def test_unknown_ticket_body_key(tenant: Tenant, key: str) -> None:
    body = seed_body()
    body["ticketBody"][key] = "value"
    reason = assert_rejected(tenant.create(body), key)
    assert set(reason) == {key}, reason
    assert tenant.ticket_count() == 0


@pytest.mark.parametrize(
    "key",
    ["{" + TITLE + "}", "urn:uuid:" + TITLE, TITLE.replace("-", "")],
    ids=["braces", "urn", "hex"],
)
def test_ticket_body_key_must_be_the_field_id_as_published(tenant: Tenant, key: str) -> None:
    """Keys are the ticket type's fields[].id values (seed); other spellings are unknown keys."""
    body = seed_body()
    del body["ticketBody"][TITLE]
    body["ticketBody"][key] = "Need a replacement laptop"
    reason = assert_rejected(tenant.create(body), key)
    assert tenant.ticket_count() == 0
    assert set(reason) <= {key, TITLE}, reason


# --------------------------------------------------------------------------- required fields


@pytest.mark.parametrize("value", [..., None, "", "   ", "\t\n"])
def test_required_field(tenant: Tenant, value: Any) -> None:
    body = seed_body()
    if value is ...:
        del body["ticketBody"][TITLE]
    else:
        body["ticketBody"][TITLE] = value
    reason = assert_rejected(tenant.create(body), TITLE)
    assert reason == {TITLE: ["Field Title is required"]}
    assert tenant.ticket_count() == 0


@pytest.mark.parametrize("value", [..., None, "", "  "])
def test_required_field_on_every_type(tenant: Tenant, value: Any) -> None:
    body = everything_body()
    if value is ...:
        del body["ticketBody"][F_TEXT]
    else:
        body["ticketBody"][F_TEXT] = value
    response = tenant.create(body, item_type="20000", catalog_type="agent")
    assert reason_of(response) == {F_TEXT: ["Field Text is required"]}


# --------------------------------------------------------------------------- field types


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        (F_TEXT, "x" * 20, "x" * 20),
        (F_TEXT, "héllo wörld ✓", "héllo wörld ✓"),
        (F_TEXTAREA, "line1\nl2", "line1\nl2"),
        (F_TEXTAREA, "", ""),
        (F_NUMBER, 0, 0),
        (F_NUMBER, 100, 100),
        (F_NUMBER, 42.5, 42.5),
        (F_DATE, "2025-07-10T12:34:56.789Z", "2025-07-10T12:34:56.789Z"),
        (F_DATE, "2025-07-10", "2025-07-10"),
        (F_DATETIME, "2025-07-10T12:34:56.789Z", "2025-07-10T12:34:56.789Z"),
        (F_DATETIME, "2025-07-10T12:34:56+02:00", "2025-07-10T12:34:56+02:00"),
        (F_DROPDOWN, "low", "low"),
        (F_DROPDOWN, "high", "high"),
        (F_RADIO, "medium", "medium"),
        (F_MULTISELECT, ["low", "high"], ["low", "high"]),
        (F_MULTISELECT, ["medium"], ["medium"]),
        (F_CHECKBOX, True, True),
        (F_CHECKBOX, False, False),
        (F_EMAIL, "someone@example.com", "someone@example.com"),
        (F_USER, "jdoe", "jdoe"),
        (F_USER, "jane.doe@example.com", "jane.doe@example.com"),
    ],
)
def test_valid_field_value_is_stored(tenant: Tenant, field: str, value: Any, stored: Any) -> None:
    response = create_everything(tenant, **{field: value})
    data = ok(response)
    assert data[field] == stored
    assert type(data[field]) is type(stored)
    assert stored_data(tenant, response.json()["objectId"])[field] == stored


LABELS = {
    F_TEXT: "Text",
    F_TEXTAREA: "Textarea",
    F_RICHTEXT: "Rich",
    F_NUMBER: "Number",
    F_DATE: "Due",
    F_DATETIME: "Updated At",
    F_DROPDOWN: "Priority",
    F_RADIO: "Impact",
    F_MULTISELECT: "Tags",
    F_CHECKBOX: "Urgent",
    F_EMAIL: "Contact",
    F_USER: "Assignee",
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (F_TEXT, "x" * 21),
        (F_TEXT, 123),
        (F_TEXT, ["hello"]),
        (F_TEXT, {"v": "hello"}),
        (F_TEXT, True),
        (F_TEXTAREA, "x" * 11),
        (F_TEXTAREA, 5),
        (F_RICHTEXT, 5),
        (F_RICHTEXT, ["<p>x</p>"]),
        (F_NUMBER, "5"),
        (F_NUMBER, "five"),
        (F_NUMBER, True),
        (F_NUMBER, False),
        (F_NUMBER, -1),
        (F_NUMBER, 100.5),
        (F_NUMBER, 101),
        (F_NUMBER, [1]),
        (F_NUMBER, ""),
        (F_DATE, "garbage"),
        (F_DATE, "2025-13-01"),
        (F_DATE, "2025-02-30"),
        (F_DATE, "10/07/2025"),
        (F_DATE, "2025-7-1"),
        (F_DATE, 20250710),
        (F_DATE, True),
        (F_DATETIME, "garbage"),
        (F_DATETIME, "2025-07-10T25:00:00Z"),
        (F_DATETIME, "yesterday"),
        (F_DATETIME, 1752150896),
        (F_DROPDOWN, "urgent"),
        (F_DROPDOWN, "LOW"),
        (F_DROPDOWN, "Low"),  # a label, not a value
        (F_DROPDOWN, ["low"]),
        (F_DROPDOWN, 1),
        (F_RADIO, "nonsense"),  # the field's own (invalid) defaultValue
        (F_RADIO, True),
        (F_MULTISELECT, "low"),
        (F_MULTISELECT, {"low": True}),
        (F_MULTISELECT, ["low", "bogus"]),
        (F_MULTISELECT, ["low", "low"]),
        (F_MULTISELECT, ["low", 1]),
        (F_MULTISELECT, [["low"]]),
        (F_CHECKBOX, "true"),
        (F_CHECKBOX, "false"),
        (F_CHECKBOX, 1),
        (F_CHECKBOX, 0),
        (F_CHECKBOX, ""),
        (F_EMAIL, "not-an-email"),
        (F_EMAIL, "a@"),
        (F_EMAIL, 5),
        (F_USER, "two words"),
        (F_USER, 42),
        (F_USER, ["jdoe"]),
    ],
)
def test_invalid_field_value_rejected(tenant: Tenant, field: str, value: Any) -> None:
    reason = assert_rejected(create_everything(tenant, **{field: value}), field)
    assert set(reason) == {field}, reason
    assert tenant.ticket_count() == 0


@pytest.mark.parametrize("field", [F_DATE, F_DATETIME])
def test_empty_date_rejected_with_seed_message(tenant: Tenant, field: str) -> None:
    reason = reason_of(create_everything(tenant, **{field: ""}))
    label = LABELS[field]
    assert reason == {
        field: [f"You have entered an invalid date value for {label}, expects a proper date string"]
    }


@pytest.mark.parametrize("field", [F_DATE, F_DATETIME])
def test_garbage_date_rejected_with_seed_message(tenant: Tenant, field: str) -> None:
    reason = reason_of(create_everything(tenant, **{field: "31/12/2025"}))
    label = LABELS[field]
    assert reason[field] == [
        f"You have entered an invalid date value for {label}, expects a proper date string"
    ]


def test_richtext_sanitized(tenant: Tenant) -> None:
    dirty = (
        "<p>harmless <b>bold</b></p>"
        "<script>alert('x')</script>"
        '<img src="x.png" onerror="alert(1)">'
        '<a href="javascript:alert(2)">click</a>'
        '<p onclick="steal()">para</p>'
    )
    response = create_everything(tenant, **{F_RICHTEXT: dirty})
    data = ok(response)
    cleaned = data[F_RICHTEXT]
    assert isinstance(cleaned, str)
    lowered = cleaned.lower()
    assert "<script" not in lowered
    assert "onerror" not in lowered
    assert "onclick" not in lowered
    assert "javascript:" not in lowered
    assert "<p>harmless <b>bold</b></p>" in cleaned
    assert "click" in cleaned  # the link text survives
    # What is stored is what the response shows.
    assert stored_data(tenant, response.json()["objectId"])[F_RICHTEXT] == cleaned


def test_richtext_harmless_html_kept_verbatim(tenant: Tenant) -> None:
    html = '<p>Battery <em>dead</em>, see <a href="https://example.com/x">ticket</a>.</p>'
    data = ok(create_everything(tenant, **{F_RICHTEXT: html}))
    assert "<p>Battery <em>dead</em>, see " in data[F_RICHTEXT]
    assert 'href="https://example.com/x"' in data[F_RICHTEXT]


def test_seed_description_is_sanitized_too(tenant: Tenant) -> None:
    body = seed_body()
    body["ticketBody"][DESCRIPTION] = "<p>ok</p><script>document.cookie</script>"
    response = tenant.create(body)
    data = ok(response)
    assert data[DESCRIPTION].startswith("<p>ok</p>")
    assert "<script" not in data[DESCRIPTION]
    assert stored_data(tenant, response.json()["objectId"])[DESCRIPTION] == data[DESCRIPTION]


def test_all_field_types_at_once(tenant: Tenant) -> None:
    values = {
        F_TEXT: "hello",
        F_TEXTAREA: "short",
        F_RICHTEXT: "<p>x</p>",
        F_NUMBER: 7,
        F_DATE: "2025-07-10",
        F_DATETIME: "2025-07-10T12:34:56.789Z",
        F_DROPDOWN: "high",
        F_RADIO: "low",
        F_MULTISELECT: ["low", "medium"],
        F_CHECKBOX: True,
        F_EMAIL: "a@example.com",
        F_USER: "jdoe",
    }
    data = ok(create_everything(tenant, **values))
    for field, value in values.items():
        assert data[field] == value, field


# --------------------------------------------------------------------------- defaults


def test_defaults_applied_when_valid(tenant: Tenant) -> None:
    response = create_everything(tenant)
    data = ok(response)
    assert data[F_DROPDOWN] == "medium"
    assert data[F_CHECKBOX] is False
    # radio's default "nonsense" is not one of its options, date's "" is not a date.
    assert data.get(F_RADIO) is None, data
    assert data.get(F_DATE) is None, data
    stored = stored_data(tenant, response.json()["objectId"])
    assert stored[F_DROPDOWN] == "medium"
    assert stored[F_CHECKBOX] is False
    assert stored.get(F_RADIO) is None
    assert stored.get(F_DATE) is None


def test_sent_value_overrides_default(tenant: Tenant) -> None:
    data = ok(create_everything(tenant, **{F_DROPDOWN: "low", F_CHECKBOX: True}))
    assert data[F_DROPDOWN] == "low"
    assert data[F_CHECKBOX] is True


def test_seed_item_type_default(tenant: Tenant) -> None:
    body = seed_body()
    del body["ticketBody"][NEEDED_WITHIN]
    data = ok(tenant.create(body))
    assert data[NEEDED_WITHIN] == "<1month"
    assert data[TITLE] == "Need a replacement laptop"


def test_defaults_visible_in_ticket_type_discovery(tenant: Tenant) -> None:
    response = tenant.get("/ticket-type", params={"type": "agent", "module": "ticketing"})
    assert response.status_code == 200, response.text
    types = {t["id"]: t for t in response.json()["data"]["value"]}
    fields = {f["id"]: f for f in types["20000"]["fields"]}
    assert fields[F_DROPDOWN]["defaultValue"] == "medium"
    assert fields[F_CHECKBOX]["defaultValue"] is False


@pytest.mark.parametrize("number", ["1e309", "-1e309", "1" + "0" * 310])
def test_a_number_past_a_doubles_range_is_named_as_such(tenant: Tenant, number: str) -> None:
    content = json.dumps(seed_body()).replace('"source"', f'"n": {number}, "source"', 1)
    response = tenant.create(content=content.encode())
    assert reason_of(response) == {"body": ["Request body holds a number too large to store"]}
    assert reason_of(tenant.create(content=b"{...")) == {
        "body": ["Request body must be valid JSON"]
    }
    assert tenant.ticket_count() == 0


# --------------------------------------------------------------------------- no side effects


def test_rejected_creates_change_nothing(tenant: Tenant) -> None:
    bad_requests = [
        lambda: tenant.create(without(seed_body(), "attachments")),
        lambda: tenant.create(_seed_with_offer("23631")),
        lambda: tenant.create(_seed_with_offer(23629)),
        lambda: tenant.create(seed_body(), catalog_type="bogus"),
        lambda: tenant.create(content=b"{..."),
        lambda: create_everything(tenant, **{F_DATE: ""}),
        lambda: create_everything(tenant, **{F_NUMBER: "1"}),
    ]
    for send in bad_requests:
        reason_of(send())
    assert tenant.ticket_count() == 0
    # No display number was consumed: the next successes start at 0001 for both prefixes.
    first = tenant.create()
    ok(first)
    assert first.json()["objectId"] == "CTC-0001"
    everything = create_everything(tenant)
    ok(everything)
    assert everything.json()["objectId"] == "ALL-0001"
    reason_of(tenant.create(without(seed_body(), "source")))
    second = tenant.create()
    ok(second)
    assert second.json()["objectId"] == "CTC-0002"
    assert tenant.ticket_count() == 3


# --------------------------------------------------------------------------- watchers


def test_watchers_echoed(tenant: Tenant) -> None:
    body = seed_body()
    body["ticketBody"]["ccWatchers"] = ["alice@example.com", "bob"]
    body["ticketBody"]["toWatchers"] = ["carol@example.com"]
    response = tenant.create(body)
    data = ok(response)
    assert data["ccWatchers"] == ["alice@example.com", "bob"]
    assert data["toWatchers"] == ["carol@example.com"]
    stored = stored_data(tenant, response.json()["objectId"])
    assert stored["ccWatchers"] == ["alice@example.com", "bob"]
    assert stored["toWatchers"] == ["carol@example.com"]


def test_watchers_default_to_empty_lists(tenant: Tenant) -> None:
    data = ok(tenant.create())
    assert data["ccWatchers"] == []
    assert data["toWatchers"] == []


@pytest.mark.parametrize("key", ["ccWatchers", "toWatchers"])
@pytest.mark.parametrize("value", ["alice@example.com", {"a": 1}, [1], [None], 5], ids=str)
def test_watchers_not_a_list_of_strings(tenant: Tenant, key: str, value: Any) -> None:
    body = seed_body()
    body["ticketBody"][key] = value
    reason = assert_rejected(tenant.create(body), key)
    assert set(reason) == {key}, reason
    assert tenant.ticket_count() == 0


# --------------------------------------------------------------------------- issupportrequest


def _support_flag(tenant: Tenant, object_id: str) -> bool:
    rows = tenant.db.fetch(
        "SELECT is_support_request FROM tickets WHERE tenant_id = :t AND object_id = :o",
        t=uuid.UUID(tenant.id),
        o=object_id,
    )
    return bool(rows[0][0])


@pytest.mark.parametrize(("flag", "expected"), [("true", True), ("false", False)])
def test_issupportrequest_accepted(tenant: Tenant, flag: str, expected: bool) -> None:
    response = tenant.create(headers=tenant.headers(issupportrequest=flag))
    ok(response)
    assert _support_flag(tenant, response.json()["objectId"]) is expected


def test_issupportrequest_absent_is_false(tenant: Tenant) -> None:
    response = tenant.create()
    ok(response)
    assert _support_flag(tenant, response.json()["objectId"]) is False


@pytest.mark.parametrize("flag", ["maybe", "yes", "2"])
def test_issupportrequest_invalid(tenant: Tenant, flag: str) -> None:
    reason_of(tenant.create(headers=tenant.headers(issupportrequest=flag)))
    assert tenant.ticket_count() == 0
