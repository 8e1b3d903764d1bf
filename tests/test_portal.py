"""The portal over real HTTP: sign-in, forms generated from ticket types, the API's validation
messages next to their fields, CSRF, cookies, security headers, escaping, the agent's queue
and etag conflicts. (The same flows in a real browser: tests/test_portal_browser.py.)"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.portal_client import PortalClient, find, parse, persona_token
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
    TITLE,
    Database,
    Tenant,
    everything_body,
    seed_body,
    standard_tenant,
    start_server,
    stop_server,
)
from tests.ticket_api import call, get_ticket

NEW_LAPTOP = "/portal/offers/23629/new"
EVERYTHING = "/portal/offers/23630/new"


@pytest.fixture
def everything_tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    """The standard tenant with its every-field-type offer in the user catalog."""
    offers = standard_tenant(str(uuid.uuid4()), "x")["offers"]
    offers[1]["catalog_types"] = ["agent", "user"]
    return make_tenant(offers=offers)


def _field(name: str) -> str:
    return f"f-{name}"


def _ticket_rows(tenant: Tenant) -> int:
    return tenant.ticket_count()


def test_every_portal_response_carries_the_security_headers(
    portal: Callable[[], PortalClient], tenant: Tenant, demo_tenant: Tenant
) -> None:
    agent = portal()
    agent.sign_in(tenant, "agent")
    object_id = tenant.create(seed_body(), token=persona_token(tenant, "agent")).json()["objectId"]
    responses = [
        agent.get("/portal/sign-in"),
        agent.get("/portal/catalog"),
        agent.get(NEW_LAPTOP),
        agent.get(f"/portal/tickets/{object_id}"),
        agent.get("/portal/my-tickets"),
        agent.get("/portal/queue"),
        agent.get("/portal/no-such-page"),
        agent.get("/portal/tickets/CTC-999999"),
        agent.get("/portal/static/portal.css"),
        agent.get("/portal/static/portal.js"),
        agent.post(f"/portal/tickets/{object_id}/comments", {"body": "x"}, csrf=False),
    ]
    agent.get(NEW_LAPTOP)
    responses.append(agent.post(NEW_LAPTOP, {"summary": "", "team": "james"}))
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 200, 200, 200, 404, 404, 200, 200, 403, 400]
    for response in responses:
        csp = response.headers["content-security-policy"]
        directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
        assert directives["script-src"] == ["'self'"], csp
        assert directives["frame-ancestors"] == ["'none'"], csp
        assert directives["default-src"] == ["'none'"], csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    # Nothing inline: every script is a file of the portal's own origin, no event handlers.
    for response in responses[:6]:
        elements = parse(response.text)
        for script in find(elements, "script"):
            assert script.attrs.get("src", "").startswith("/portal/static/"), script
        assert not [e for e in elements if any(name.startswith("on") for name in e.attrs)]


def test_the_session_cookie_is_httponly_lax_and_secure_behind_https(
    portal: Callable[[], PortalClient], demo_tenant: Tenant
) -> None:
    plain = portal()
    cookie = plain.sign_in_with_one_click().headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/portal" in cookie
    assert "secure" not in cookie.split("; ")
    behind_proxy = portal()
    behind_proxy.client.headers["x-forwarded-proto"] = "https"
    page = behind_proxy.get("/portal/sign-in")
    # Sent back as a browser behind the https proxy would (httpx keeps Secure cookies for
    # https addresses).
    anonymous = page.cookies["ticketing_portal"]
    response = behind_proxy.post(
        "/portal/sign-in",
        {"user": "requester"},
        headers={"cookie": f"ticketing_portal={anonymous}"},
    )
    assert response.status_code == 303, response.text
    cookie = response.headers["set-cookie"].lower()
    assert "secure" in cookie.split("; ") and "httponly" in cookie and "samesite=lax" in cookie


def test_a_post_without_the_session_csrf_token_is_refused_and_changes_nothing(
    portal: Callable[[], PortalClient], tenant: Tenant
) -> None:
    requester = portal()
    requester.sign_in(tenant)
    before = _ticket_rows(tenant)
    form = {"summary": "Forged", "team": "james", _field(TITLE): "x"}
    missing = requester.post(NEW_LAPTOP, form, csrf=False)
    wrong = requester.post(NEW_LAPTOP, {**form, "csrf_token": "guessed-" + "x" * 30})
    assert missing.status_code == wrong.status_code == 403
    assert "did not come from this site" in missing.text
    assert _ticket_rows(tenant) == before
    # A token from another session is no better than a guess.
    other = portal()
    other.sign_in(tenant)
    borrowed = requester.post(NEW_LAPTOP, {**form, "csrf_token": other.csrf()})
    assert borrowed.status_code == 403
    assert _ticket_rows(tenant) == before
    # Signing in is a form too.
    anonymous = portal()
    refused = anonymous.post("/portal/sign-in", {"user": "agent", "tenant": tenant.id}, csrf=False)
    assert refused.status_code == 403
    assert anonymous.get("/portal/catalog").status_code == 303


def test_the_session_ends_when_its_token_expires(
    database: Database, demo_tenant: Tenant, tmp_path: Path
) -> None:
    server = start_server(
        database_url=database.url,
        data_dir=tmp_path,
        env={
            "TICKETING_PORTAL_SESSION_TTL": "2",
            "TICKETING_CLOCK_SKEW": "0",
            "TICKETING_DEV_SIGN_IN": "true",
        },
    )
    try:
        client = PortalClient(server.base_url)
        signed_in = client.sign_in_with_one_click()
        max_age = int(signed_in.headers["set-cookie"].lower().split("max-age=")[1].split(";")[0])
        assert 0 < max_age <= 2
        assert client.get("/portal/catalog").status_code == 200
        cookie = client.client.cookies["ticketing_portal"]
        time.sleep(3.1)
        # The browser drops the cookie at its Max-Age; one replayed after that is no better.
        ended = httpx.get(
            f"{server.base_url}/portal/catalog", headers={"cookie": f"ticketing_portal={cookie}"}
        )
        assert ended.status_code == 303
        assert ended.headers["location"] == "/portal/sign-in"
        assert 'ticketing_portal=""' in ended.headers["set-cookie"]
        client.close()
    finally:
        stop_server(server)


def test_the_catalog_lists_active_offers_of_the_user_catalog_and_searches_them(
    portal: Callable[[], PortalClient], make_tenant: Callable[..., Tenant]
) -> None:
    offers = [
        {"id": "1", "name": "New laptop", "item_type": "16910", "category": "Hardware"},
        {"id": "2", "name": "Monitor", "item_type": "16910", "description": "A second screen"},
        {"id": "3", "name": "Agents only", "item_type": "16910", "catalog_types": ["agent"]},
        {"id": "4", "name": "Retired laptop", "item_type": "16910", "active": False},
    ]
    tenant = make_tenant(offers=offers)
    requester = portal()
    requester.sign_in(tenant)
    names = [e.text for e in find(parse(requester.get("/portal/catalog").text), "a")]
    assert "New laptop" in names and "Monitor" in names
    assert "Agents only" not in names and "Retired laptop" not in names
    names = [e.text for e in find(parse(requester.get("/portal/catalog?q=SCREEN").text), "a")]
    assert "Monitor" in names and "New laptop" not in names
    assert requester.get("/portal/offers/3/new").status_code == 404
    assert requester.get("/portal/offers/4/new").status_code == 404


def test_the_form_has_one_labelled_control_per_field_type_with_defaults_and_limits(
    portal: Callable[[], PortalClient], everything_tenant: Tenant
) -> None:
    requester = portal()
    requester.sign_in(everything_tenant)
    page = requester.get(EVERYTHING)
    assert page.status_code == 200
    elements = parse(page.text)

    def control(field_id: str) -> tuple[str, dict[str, str]]:
        found = [e for e in elements if e.attrs.get("id") == _field(field_id)]
        assert len(found) == 1, field_id
        return found[0].tag, found[0].attrs

    assert control(F_TEXT) == ("input", {**control(F_TEXT)[1], "type": "text"})
    assert "required" in control(F_TEXT)[1] and control(F_TEXT)[1]["maxlength"] == "20"
    assert control(F_TEXTAREA)[0] == "textarea" and control(F_RICHTEXT)[0] == "textarea"
    number = control(F_NUMBER)[1]
    assert (number["type"], number["min"], number["max"]) == ("number", "0", "100")
    assert control(F_DATE)[1]["type"] == "date"
    assert control(F_DATETIME)[1]["type"] == "datetime-local"
    assert control(F_DROPDOWN)[0] == "select"
    assert control(F_EMAIL)[1]["type"] == "email"
    assert control(F_USER)[1]["type"] == "text"
    assert control(F_CHECKBOX)[1]["type"] == "checkbox"
    # Radio and multiselect: a group (fieldset + legend) of one input per option.
    assert control(F_RADIO)[0] == control(F_MULTISELECT)[0] == "fieldset"
    radios = [
        e for e in find(elements, "input", type="radio") if e.attrs["name"] == _field(F_RADIO)
    ]
    boxes = [e for e in elements if e.attrs.get("name") == _field(F_MULTISELECT)]
    assert [e.attrs["value"] for e in radios] == ["low", "medium", "high"]
    assert [e.attrs["type"] for e in boxes] == ["checkbox"] * 3
    # Labels from the field labels; every control has one.
    labels = {e.attrs["for"]: e.text.strip() for e in find(elements, "label")}
    assert labels[_field(F_TEXT)].startswith("Text") and "*" in labels[_field(F_TEXT)]
    assert labels[_field(F_DATE)] == "Due" and labels[_field(F_CHECKBOX)] == "Urgent"
    for e in elements:
        if e.tag in ("input", "select", "textarea") and e.attrs.get("type") != "hidden":
            assert e.attrs["id"] in labels, e
    # Defaults filled: the dropdown's "medium"; the radio's invalid default is not offered.
    selected = [e.attrs["value"] for e in find(elements, "option") if "selected" in e.attrs]
    assert selected == ["medium"]
    assert not any("checked" in e.attrs for e in radios)


def test_failures_appear_next_to_their_fields_in_the_apis_wording_with_the_input_kept(
    portal: Callable[[], PortalClient], everything_tenant: Tenant
) -> None:
    requester = portal()
    requester.sign_in(everything_tenant)
    requester.get(EVERYTHING)
    before = _ticket_rows(everything_tenant)
    response = requester.post(
        EVERYTHING,
        {
            "team": "james",
            "summary": "Keep <me>",
            _field(F_TEXT): "",
            _field(F_NUMBER): "500",
            _field(F_DATE): "31/12/2025",
            _field(F_EMAIL): "not an email",
            _field(F_TEXTAREA): "kept text",
        },
    )
    assert response.status_code == 400
    assert _ticket_rows(everything_tenant) == before
    # The API's own messages for the same values.
    api = call(
        everything_tenant,
        "POST",
        "/ticket/create/james/20000",
        params={"type": "user", "module": "ticketing"},
        token=persona_token(everything_tenant, "requester"),
        json={
            **everything_body(
                **{F_TEXT: None, F_NUMBER: 500, F_DATE: "31/12/2025", F_EMAIL: "not an email"}
            ),
            "ticketBody": {
                "offerId": "23630",
                F_TEXT: None,
                F_NUMBER: 500,
                F_DATE: "31/12/2025",
                F_EMAIL: "not an email",
            },
        },
    )
    reason = api.json()["validationResult"]["reason"]
    assert set(reason) == {F_TEXT, F_NUMBER, F_DATE, F_EMAIL}
    elements = parse(response.text)
    for field_id, messages in reason.items():
        error = [e for e in elements if e.attrs.get("id") == f"{_field(field_id)}-error"]
        assert [e.text for e in error] == [" ".join(messages)]
        control = next(e for e in elements if e.attrs.get("id") == _field(field_id))
        assert control.attrs["aria-describedby"] == f"{_field(field_id)}-error"
        assert control.attrs["aria-invalid"] == "true"
    assert "Field Text is required" in reason[F_TEXT]
    assert reason[F_DATE] == [
        "You have entered an invalid date value for Due, expects a proper date string"
    ]
    # What was typed comes back.
    kept = {e.attrs.get("id"): e for e in elements}
    assert kept[_field(F_NUMBER)].attrs["value"] == "500"
    assert kept[_field(F_DATE)].attrs["value"] == "31/12/2025"
    assert kept[_field(F_EMAIL)].attrs["value"] == "not an email"
    assert kept[_field(F_TEXTAREA)].text == "kept text"
    assert kept["summary"].attrs["value"] == "Keep <me>"


def test_a_filled_form_files_the_ticket_with_typed_values(
    portal: Callable[[], PortalClient], everything_tenant: Tenant
) -> None:
    requester = portal()
    requester.sign_in(everything_tenant)
    requester.get(EVERYTHING)
    response = requester.post(
        EVERYTHING,
        {
            "team": "james",
            "summary": "Every type",
            _field(F_TEXT): "hello",
            _field(F_TEXTAREA): "two\r\nlines",
            _field(F_RICHTEXT): "<p>ok</p><script>x()</script>",
            _field(F_NUMBER): "42",
            _field(F_DATE): "2025-07-10",
            _field(F_DATETIME): "2025-07-10T12:34",
            _field(F_DROPDOWN): "high",
            _field(F_RADIO): "low",
            _field(F_MULTISELECT): ["low", "high"],
            _field(F_CHECKBOX): "true",
            _field(F_EMAIL): "boss@example.com",
            _field(F_USER): "jdoe",
        },
    )
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    object_id = location.split("/portal/tickets/")[1].split("?")[0]
    assert object_id.startswith("ALL-")
    data = get_ticket(everything_tenant, object_id)["data"]
    assert data[F_NUMBER] == 42 and data[F_CHECKBOX] is True
    assert data[F_MULTISELECT] == ["low", "high"] and data[F_TEXTAREA] == "two\nlines"
    assert data[F_RICHTEXT] == "<p>ok</p>" and data[F_DATETIME] == "2025-07-10T12:34"
    assert data["submittedBy"] == "user@example.com"
    page = requester.get(location)
    assert page.status_code == 200
    assert f"Your request was filed as <strong>{object_id}</strong>" in page.text


def test_hostile_summaries_values_and_comments_are_escaped_or_sanitized(
    portal: Callable[[], PortalClient], tenant: Tenant
) -> None:
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    body = seed_body(summary=hostile)
    body["ticketBody"][TITLE] = '"><img src=x onerror=alert(3)><a href="javascript:alert(4)">t</a>'
    body["ticketBody"][DESCRIPTION] = (
        '<p>fine</p><script>alert(5)</script><img src=x onerror="alert(6)">'
        '<a href="javascript:alert(7)">link</a>'
    )
    token = persona_token(tenant, "requester")
    object_id = tenant.create(body, token=token).json()["objectId"]
    # A rich value stored by something other than the API (an import, an older version).
    tenant.db.fetch(
        "UPDATE tickets SET summary = :s WHERE object_id = :o AND tenant_id = :t",
        s=hostile,
        o=object_id,
        t=uuid.UUID(tenant.id),
    )
    call(
        tenant,
        "POST",
        f"/ticket/{object_id}/comments",
        token=token,
        json={"body": '<p>c</p><script>alert(8)</script><a href="javascript:alert(9)">x</a>'},
    )
    requester, agent = portal(), portal()
    requester.sign_in(tenant)
    agent.sign_in(tenant, "agent")
    requester.get(f"/portal/tickets/{object_id}")
    requester.post(f"/portal/tickets/{object_id}/comments", {"body": "<script>alert(10)</script>"})
    pages = [
        requester.get(f"/portal/tickets/{object_id}").text,
        requester.get("/portal/my-tickets").text,
        agent.get("/portal/queue").text,
        agent.get(f"/portal/tickets/{object_id}").text,
        agent.get("/portal/queue?q=" + "%3Cscript%3Ealert(11)%3C%2Fscript%3E").text,
    ]
    for html in pages:
        assert "<script>alert" not in html
        for element in parse(html):
            assert not any(name.startswith("on") for name in element.attrs), element
            for name in ("href", "src", "action", "formaction"):
                assert not element.attrs.get(name, "").strip().lower().startswith("javascript:")
        scripts = [e for e in parse(html) if e.tag == "script"]
        assert [s.attrs["src"] for s in scripts] == ["/portal/static/portal.js"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "&lt;script&gt;alert(10)&lt;/script&gt;" in pages[0]
    assert "&lt;script&gt;alert(11)&lt;/script&gt;" in pages[4]
    assert "<p>fine</p>" in pages[0]
    # Plain-text values show the hostile markup as text.
    assert "&#34;&gt;&lt;img src=x onerror=alert(3)&gt;" in pages[0]


def test_internal_comments_are_for_agents_only(
    portal: Callable[[], PortalClient], tenant: Tenant
) -> None:
    object_id = tenant.create(seed_body(), token=persona_token(tenant, "requester")).json()[
        "objectId"
    ]
    agent, requester = portal(), portal()
    agent.sign_in(tenant, "agent")
    requester.sign_in(tenant)
    agent.get(f"/portal/tickets/{object_id}")
    assert (
        agent.post(
            f"/portal/tickets/{object_id}/comments", {"body": "Secret note", "internal": "true"}
        ).status_code
        == 303
    )
    agent.get(f"/portal/tickets/{object_id}")
    agent.post(f"/portal/tickets/{object_id}/comments", {"body": "Ordered it\n\nETA Monday"})
    assert "Secret note" in agent.get(f"/portal/tickets/{object_id}").text
    page = requester.get(f"/portal/tickets/{object_id}").text
    assert "Secret note" not in page
    assert "<p>Ordered it</p><p>ETA Monday</p>" in page
    # A requester's form has no internal box, and a forged one is refused by the API's rule.
    assert 'name="internal"' not in page
    forged = requester.post(
        f"/portal/tickets/{object_id}/comments", {"body": "sneaky", "internal": "true"}
    )
    assert forged.status_code == 403
    assert "sneaky" not in agent.get(f"/portal/tickets/{object_id}").text


def test_my_tickets_lists_only_the_users_own(
    portal: Callable[[], PortalClient], tenant: Tenant
) -> None:
    mine = tenant.create(seed_body(summary="Mine"), token=persona_token(tenant, "requester"))
    tenant.create(seed_body(summary="Someone else's"), token=persona_token(tenant, "agent"))
    requester = portal()
    requester.sign_in(tenant)
    page = requester.get("/portal/my-tickets").text
    assert mine.json()["objectId"] in page and "Mine" in page
    assert "Someone else" not in page
    assert requester.get("/portal/queue").status_code == 403


def test_the_queue_filters_searches_sorts_and_pages(
    portal: Callable[[], PortalClient], tenant: Tenant
) -> None:
    token = persona_token(tenant, "agent")
    ids = []
    for n in range(30):
        team = "finance" if n % 3 == 0 else "james"
        ids.append(
            tenant.create(seed_body(summary=f"Queue item {n:02d}"), team=team, token=token).json()[
                "objectId"
            ]
        )
    progressed = ids[:4]
    for object_id in progressed:
        etag = get_ticket(tenant, object_id)["etag"]
        call(
            tenant,
            "PATCH",
            f"/ticket/update/{object_id}",
            json={"etag": etag, "status": "In Progress"},
        )
    agent = portal()
    agent.sign_in(tenant, "agent")

    def listed(query: str) -> list[str]:
        response = agent.get(f"/portal/queue{query}")
        assert response.status_code == 200
        rows = [e.text for e in find(parse(response.text), "td")]
        return [t for t in rows if t.startswith("CTC-")]

    assert sorted(listed("?status=In+Progress")) == sorted(progressed)
    assert sorted(listed("?team=finance&sort=objectId&order=ASC")) == [
        ids[n] for n in range(0, 30, 3)
    ]
    assert listed("?q=item+07") == [ids[7]]
    first = listed("?sort=objectId&order=ASC")
    second = listed("?sort=objectId&order=ASC&page=2")
    assert first == ids[:25] and second == ids[25:]
    # Values the page does not offer are ignored, not passed on.
    assert len(listed("?status=%3Cnope%3E&sort=drop+table&order=sideways")) == 25


def test_an_agents_stale_update_shows_the_new_values_and_keeps_the_input(
    portal: Callable[[], PortalClient], tenant: Tenant
) -> None:
    object_id = tenant.create(seed_body(), token=persona_token(tenant, "requester")).json()[
        "objectId"
    ]
    agent = portal()
    agent.sign_in(tenant, "agent")
    page = parse(agent.get(f"/portal/tickets/{object_id}").text)
    etag = find(page, "input", name="etag")[0].attrs["value"]
    version = find(page, "input", name="version")[0].attrs["value"]
    # Someone else moves the ticket on meanwhile.
    call(
        tenant,
        "PATCH",
        f"/ticket/update/{object_id}",
        token=tenant.token(username="rival@example.com", email="rival@example.com"),
        json={"etag": etag, "status": "In Progress", "summary": "Changed by a rival"},
    )
    form = {
        "etag": etag,
        "version": version,
        "status": "Resolved",
        "ccWatchers": "boss@example.com",
        "toWatchers": "",
    }
    conflict = agent.post(f"/portal/tickets/{object_id}/update", form)
    assert conflict.status_code == 409
    assert "Someone else changed this ticket" in conflict.text
    assert "Changed by a rival" in conflict.text and "rival@example.com" in conflict.text
    elements = parse(conflict.text)
    assert find(elements, "textarea", id="ccWatchers")[0].text == "boss@example.com"
    selected = [e.attrs["value"] for e in find(elements, "option") if "selected" in e.attrs]
    assert "Resolved" in selected
    current = get_ticket(tenant, object_id)
    assert current["status_type"] == "In Progress" and current["data"]["ccWatchers"] == []
    # Saving again applies the kept input over the new version.
    new_etag = find(elements, "input", name="etag")[0].attrs["value"]
    assert new_etag == current["etag"]
    again = agent.post(
        f"/portal/tickets/{object_id}/update",
        {
            **form,
            "etag": new_etag,
            "version": find(elements, "input", name="version")[0].attrs["value"],
        },
    )
    assert again.status_code == 303
    current = get_ticket(tenant, object_id)
    assert current["status_type"] == "Resolved"
    assert current["data"]["ccWatchers"] == ["boss@example.com"]
    assert current["summary"] == "Changed by a rival"


def test_a_requester_cannot_open_another_persons_ticket_or_another_tenants(
    portal: Callable[[], PortalClient], make_tenant: Callable[..., Tenant]
) -> None:
    tenant, other = make_tenant(), make_tenant(prefix="OTH")
    theirs = tenant.create(seed_body(), token=persona_token(tenant, "agent")).json()["objectId"]
    elsewhere = other.create(seed_body(), token=persona_token(other, "requester")).json()[
        "objectId"
    ]
    requester = portal()
    requester.sign_in(tenant)
    assert requester.get(f"/portal/tickets/{theirs}").status_code == 404
    agent = portal()
    agent.sign_in(tenant, "agent")
    assert elsewhere.startswith("OTH-")
    assert agent.get(f"/portal/tickets/{elsewhere}").status_code == 404
    assert agent.get(f"/portal/tickets/{theirs}").status_code == 200
