"""The portal's file controls (attachment fields), over HTTP: the multipart form goes through
the attachments API's checks, refusals come back next to their field in the API's words
with the accepted files kept, the ticket binds its files as the create API does, the ticket
page links to each file, and the multipart form needs the session's CSRF token too."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.attachment_api import (
    F_LOGS,
    F_SCREENSHOTS,
    F_SUMMARY,
    MAX_SIZE,
    PDF,
    PNG,
    TEXT,
    attachment_rows,
    create_incident,
    file_tenant_config,
    upload,
)
from tests.portal_client import PortalClient, parse, persona_token
from tests.support import Tenant
from tests.ticket_api import get_ticket, user_token

INCIDENT = "/portal/offers/23640/new"


@pytest.fixture
def files_tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    """Item type 40000 (Screenshots: required, at most 2 files; Logs) offered to requesters."""
    config = file_tenant_config()
    config["offers"][-1]["catalog_types"] = ["template", "user"]
    return make_tenant(**{k: v for k, v in config.items() if k not in ("id", "realm")})


def _name(field_id: str) -> str:
    return f"f-{field_id}"


def _text(elements: list[Any], element_id: str) -> str:
    return " ".join(e.text for e in elements if e.attrs.get("id") == element_id)


def _submit(
    client: PortalClient, files: list[tuple[str, tuple[str, bytes, str]]], **data: Any
) -> Any:
    form = {"team": "james", "summary": "Printer on fire", _name(F_SUMMARY): "Jammed", **data}
    return client.post(INCIDENT, form, files=files)


def test_the_form_of_a_type_with_attachment_fields_is_multipart_with_labelled_file_controls(
    portal: Callable[[], PortalClient], files_tenant: Tenant
) -> None:
    requester = portal()
    requester.sign_in(files_tenant)
    page = requester.get(INCIDENT)
    assert page.status_code == 200
    elements = parse(page.text)
    form = next(e for e in elements if e.tag == "form" and e.attrs.get("action") == INCIDENT)
    assert form.attrs["enctype"] == "multipart/form-data"
    for field_id, label, multiple in ((F_SCREENSHOTS, "Screenshots", True), (F_LOGS, "Logs", True)):
        control = next(e for e in elements if e.attrs.get("id") == _name(field_id))
        assert control.tag == "input" and control.attrs["type"] == "file"
        assert control.attrs["name"] == _name(field_id)
        assert ("multiple" in control.attrs) is multiple
        assert control.attrs["accept"].split(",")[0] == ".pdf"
        labels = [e for e in elements if e.tag == "label" and e.attrs.get("for") == _name(field_id)]
        assert [lab.text.strip().rstrip("*").strip() for lab in labels] == [label]
        hint = _text(elements, f"{_name(field_id)}-hint")
        assert "4 KB" in hint and "pdf" in hint
    shots = next(e for e in elements if e.attrs.get("id") == _name(F_SCREENSHOTS))
    assert "required" in shots.attrs and "Up to 2 files" in _text(
        elements, f"{_name(F_SCREENSHOTS)}-hint"
    )


def test_files_are_bound_to_the_ticket_and_linked_from_its_page(
    portal: Callable[[], PortalClient], files_tenant: Tenant
) -> None:
    requester = portal()
    requester.sign_in(files_tenant)
    requester.get(INCIDENT)
    response = _submit(
        requester,
        [
            (_name(F_SCREENSHOTS), ("screen one.png", PNG, "image/png")),
            (_name(F_SCREENSHOTS), ("report.pdf", PDF, "application/pdf")),
            (_name(F_LOGS), ("log.txt", TEXT, "text/plain")),
        ],
    )
    assert response.status_code == 303, response.text
    object_id = response.headers["location"].split("/portal/tickets/")[1].split("?")[0]
    # As the create API stores them: per field, the files' metadata, bound to the ticket.
    ticket = get_ticket(files_tenant, object_id, token=persona_token(files_tenant, "requester"))
    shots = ticket["attachments"][F_SCREENSHOTS]
    assert [(f["name"], f["size"], f["contentType"]) for f in shots] == [
        ("screen one.png", len(PNG), "image/png"),
        ("report.pdf", len(PDF), "application/pdf"),
    ]
    assert [f["name"] for f in ticket["attachments"][F_LOGS]] == ["log.txt"]
    rows = attachment_rows(files_tenant)
    assert len(rows) == 3 and all(r[3] is not None for r in rows)

    page = requester.get(f"/portal/tickets/{object_id}")
    links = [e for e in parse(page.text) if e.tag == "a" and "/files/" in e.attrs.get("href", "")]
    assert [link.text for link in links] == ["screen one.png", "report.pdf", "log.txt"]
    for link, content, media in zip(
        links, (PNG, PDF, TEXT), ("image/png", "application/pdf", "text/plain"), strict=True
    ):
        download = requester.get(link.attrs["href"])
        assert download.status_code == 200
        assert download.content == content
        assert download.headers["content-type"].startswith(media)
        assert download.headers["content-disposition"].startswith("attachment;")
        assert download.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in download.headers["content-security-policy"]

    # Agents read every ticket's files; without a session, the sign-in; an unknown file 404.
    agent = portal()
    agent.sign_in(files_tenant, "agent")
    assert agent.get(links[0].attrs["href"]).content == PNG
    anonymous = portal()
    assert anonymous.get(links[0].attrs["href"]).status_code == 303
    # Someone else's ticket's file is not found for the requester (as the API answers).
    alice = user_token(files_tenant, "alice")
    theirs = upload(files_tenant, "theirs.png", PNG, token=alice).json()["attachment"]["id"]
    their_ticket = create_incident(files_tenant, {F_SCREENSHOTS: [theirs]}, token=alice)
    assert their_ticket.status_code == 200, their_ticket.text
    their_id = their_ticket.json()["ticket"]["object_id"]
    assert requester.get(f"/portal/tickets/{their_id}/files/{theirs}").status_code == 404
    assert agent.get(f"/portal/tickets/{their_id}/files/{theirs}").content == PNG
    missing = f"/portal/tickets/{object_id}/files/{uuid.uuid4()}"
    assert requester.get(missing).status_code == 404
    assert requester.get(f"/portal/tickets/{object_id}/files/nonsense").status_code == 404


def test_refused_files_come_back_next_to_their_field_in_the_apis_words_the_rest_kept(
    portal: Callable[[], PortalClient], files_tenant: Tenant
) -> None:
    requester = portal()
    requester.sign_in(files_tenant)
    requester.get(INCIDENT)
    token = persona_token(files_tenant, "requester")
    refused = {
        "tool.exe": b"MZ" + b"\x00" * 10,  # a type the tenant does not take
        "fake.png": b"just text, not a picture",  # content that is not its type
        "big.pdf": b"%PDF-1.7\n" + b"x" * MAX_SIZE,  # over max_size
    }
    # The API's words for the same files.
    expected = []
    for name, content in refused.items():
        answer = upload(files_tenant, name, content, token=token)
        assert answer.status_code in (400, 413)
        body = answer.json()
        expected += (
            body["validationResult"]["reason"]["file"]
            if "validationResult" in body
            else [body["message"]]
        )
    rows_before = len(attachment_rows(files_tenant))
    response = _submit(
        requester,
        [(_name(F_SCREENSHOTS), ("good.png", PNG, "image/png"))]
        + [
            (_name(F_LOGS), (name, content, "application/octet-stream"))
            for name, content in refused.items()
        ],
        summary="Keep <this>",
    )
    assert response.status_code == 400
    assert files_tenant.ticket_count() == 0
    elements = parse(response.text)
    assert _text(elements, f"{_name(F_LOGS)}-error") == " ".join(expected)
    logs = next(e for e in elements if e.attrs.get("id") == _name(F_LOGS))
    assert logs.attrs["aria-invalid"] == "true"
    assert f"{_name(F_LOGS)}-error" in logs.attrs["aria-describedby"].split()
    # What was typed and the accepted file are kept: the file as an upload, offered ticked.
    assert next(e for e in elements if e.attrs.get("id") == "summary").attrs["value"] == (
        "Keep <this>"
    )
    kept = [e for e in elements if e.attrs.get("name") == f"k-{F_SCREENSHOTS}"]
    assert len(kept) == 1 and "checked" in kept[0].attrs
    label = next(
        e for e in elements if e.tag == "label" and e.attrs.get("for") == kept[0].attrs["id"]
    )
    assert label.text == "good.png"
    assert len(attachment_rows(files_tenant)) == rows_before + 1  # only the good file
    # The required field is satisfied by the kept upload: the resubmission files the ticket.
    again = _submit(requester, [], **{f"k-{F_SCREENSHOTS}": kept[0].attrs["value"]})
    assert again.status_code == 303, again.text
    object_id = again.headers["location"].split("/portal/tickets/")[1].split("?")[0]
    ticket = get_ticket(files_tenant, object_id, token=token)
    assert [f["name"] for f in ticket["attachments"][F_SCREENSHOTS]] == ["good.png"]


def test_a_required_file_field_and_foreign_uploads_are_refused_in_the_apis_words(
    portal: Callable[[], PortalClient], files_tenant: Tenant
) -> None:
    requester = portal()
    requester.sign_in(files_tenant)
    requester.get(INCIDENT)
    response = _submit(requester, [])
    assert response.status_code == 400
    elements = parse(response.text)
    assert _text(elements, f"{_name(F_SCREENSHOTS)}-error") == "Field Screenshots is required"
    # Someone else's upload cannot be taken by naming its id: the API's "not found".
    foreign = upload(files_tenant, "theirs.png", PNG, token=persona_token(files_tenant, "agent"))
    foreign_id = foreign.json()["attachment"]["id"]
    response = _submit(requester, [], **{f"k-{F_SCREENSHOTS}": foreign_id})
    assert response.status_code == 400
    assert _text(parse(response.text), f"{_name(F_SCREENSHOTS)}-error") == (
        f"Attachment {foreign_id} not found"
    )
    # Three files for a field of at most two: the API's limit message.
    response = _submit(
        requester,
        [(_name(F_SCREENSHOTS), (f"s{i}.png", PNG, "image/png")) for i in range(3)],
    )
    assert response.status_code == 400
    assert _text(parse(response.text), f"{_name(F_SCREENSHOTS)}-error") == (
        "Field Screenshots takes at most 2 files"
    )
    assert files_tenant.ticket_count() == 0


def test_the_multipart_form_needs_the_session_csrf_token_and_keeps_nothing_without_it(
    portal: Callable[[], PortalClient], files_tenant: Tenant
) -> None:
    requester = portal()
    requester.sign_in(files_tenant)
    requester.get(INCIDENT)
    shots = [(_name(F_SCREENSHOTS), ("good.png", PNG, "image/png"))]
    for token in ("", "forged-token"):
        response = requester.post(
            INCIDENT,
            {"csrf_token": token, "team": "james", "summary": "x"},
            files=shots,
        )
        assert response.status_code == 403
    assert files_tenant.ticket_count() == 0
    assert attachment_rows(files_tenant) == []
    # Other forms stay URL-encoded only: a multipart comment is refused.
    response = requester.client.post(
        f"{requester.base_url}/portal/tickets/INC-0001/comments",
        data={"csrf_token": requester.csrf(), "body": "hi"},
        files=shots,
    )
    assert response.status_code == 400


def test_a_form_larger_than_its_files_may_be_is_refused_whole_and_keeps_nothing(
    portal: Callable[[], PortalClient], files_tenant: Tenant
) -> None:
    requester = portal()
    requester.sign_in(files_tenant)
    requester.get(INCIDENT)
    # 7 files of at most 4 KiB, plus the text: far below 2 MB.
    huge = b"%PDF-1.7\n" + b"x" * 2_000_000
    response = _submit(requester, [(_name(F_LOGS), ("huge.pdf", huge, "application/pdf"))])
    assert response.status_code == 413
    assert "must not exceed" in response.text
    assert files_tenant.ticket_count() == 0
    assert attachment_rows(files_tenant) == []
