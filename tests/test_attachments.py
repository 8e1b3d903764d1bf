"""Attachments over HTTP on each database: upload, bind on create and update, download with
ranges, visibility, hostile files, the hasAttachments filter, and garbage collection."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.attachment_api import (
    F_LOGS,
    F_SCREENSHOTS,
    F_SUMMARY,
    MAX_SIZE,
    PDF,
    PNG,
    TEXT,
    attachment_rows,
    blob_path,
    create_incident,
    download,
    file_tenant_config,
    incident_body,
    run_gc,
    sha,
    upload,
    upload_raw,
    uploaded,
)
from tests.support import Database, Server, Tenant, seed_body
from tests.ticket_api import (
    API,
    QUERY,
    assert_error,
    call,
    count,
    created,
    get_ticket,
    history_len,
    list_ids,
    patch,
    reason_of,
    unchanged,
    updated,
    user_token,
)
from ticketing.attachments import repository as attachment_repository
from ticketing.models import Attachment

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def blobs(data_dir: Path) -> Path:
    return data_dir / "blobs"


def with_files(tenant: Tenant, token: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ticket of item type 40000 with one screenshot; (ticket, the screenshot's metadata)."""
    shot = uploaded(upload(tenant, "screen.png", PNG, token=token))
    ticket = created(create_incident(tenant, {F_SCREENSHOTS: [shot["id"]]}, token=token))
    return ticket, shot


# --- upload ---


def test_an_upload_answers_its_metadata_and_stores_the_exact_bytes(
    files_tenant: Tenant, blobs: Path
) -> None:
    meta = uploaded(upload(files_tenant, "report.pdf", PDF))
    assert set(meta) == {"id", "name", "size", "contentType", "sha256", "createdAt"}
    assert uuid.UUID(meta["id"])
    assert meta["name"] == "report.pdf"
    assert meta["size"] == len(PDF)
    assert meta["contentType"] == "application/pdf"
    assert meta["sha256"] == sha(PDF)
    assert ISO.match(meta["createdAt"])
    assert blob_path(blobs, files_tenant, sha(PDF)).read_bytes() == PDF
    rows = attachment_rows(files_tenant)
    assert [(str(uuid.UUID(str(r[0]))), r[1], r[2], r[3]) for r in rows] == [
        (meta["id"], sha(PDF), len(PDF), None)
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("setup.exe", b"MZ\x90\x00", "File type exe is not allowed"),
        ("noextension", PNG, "File type (none) is not allowed"),
        # A zip bomb named .png: its bytes are a zip archive, not a PNG.
        ("bomb.png", b"PK\x03\x04" + b"\x00" * 300, "does not match its extension"),
        ("fake.pdf", b"<html>%PDF-", "does not match its extension"),
        ("fake.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", "does not match its extension"),
        ("nul.txt", b"abc\x00def", "must not contain NUL"),
        ("latin1.csv", "a;b;é\n".encode("latin-1"), "must be UTF-8"),
        ("cut.txt", "é".encode()[:1], "must be UTF-8"),
        ("empty.png", b"", "The file is empty"),
        ("empty.txt", b"", "The file is empty"),
        ("../..", PNG, "The file name is empty"),
    ],
)
def test_a_file_whose_type_or_content_is_refused_answers_400_on_file(
    files_tenant: Tenant, name: str, content: bytes, message: str
) -> None:
    reason = reason_of(upload(files_tenant, name, content))
    assert list(reason) == ["file"]
    assert message in reason["file"][0], reason
    assert attachment_rows(files_tenant) == []


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("a.png", PNG),
        ("a.jpg", b"\xff\xd8\xff\xe0jfif"),
        ("a.JPEG", b"\xff\xd8\xff\xe1exif"),
        ("a.gif", b"GIF89a..."),
        ("a.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1ole2"),
        ("a.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1ole2"),
        ("a.docx", b"PK\x03\x04zip"),
        ("a.xlsx", b"PK\x03\x04zip"),
        ("a.pdf", PDF),
        ("a.txt", TEXT),
        ("a.csv", b"a,b\n1,2\n"),
    ],
)
def test_each_allowed_type_with_matching_content_is_accepted(
    files_tenant: Tenant, name: str, content: bytes
) -> None:
    assert uploaded(upload(files_tenant, name, content))["size"] == len(content)


def test_a_type_outside_the_tenants_policy_is_refused(
    make_tenant: Callable[..., Tenant],
) -> None:
    config = file_tenant_config(allowed_types=["pdf"])
    tenant = make_tenant(attachments=config["attachments"])
    assert uploaded(upload(tenant, "a.pdf", PDF))
    reason = reason_of(upload(tenant, "a.png", PNG))
    assert reason == {"file": ["File type png is not allowed; allowed: pdf"]}


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\notes.txt", "notes.txt"),
        ("a\x07b\x1b[31m\u202egnp.txt", "ab[31mgnp.txt"),
        ("  spaced.txt  ", "spaced.txt"),
        ("..\\..\\boot.ini\t.txt", "boot.ini.txt"),
    ],
)
def test_file_names_lose_path_components_and_control_characters(
    files_tenant: Tenant, sent: str, stored: str
) -> None:
    assert uploaded(upload_raw(files_tenant, sent.encode(), TEXT))["name"] == stored


def test_a_300_byte_name_is_cut_to_255_bytes_keeping_its_extension(files_tenant: Tenant) -> None:
    name = "é" * 148 + ".txt"  # 300 bytes of UTF-8
    stored = uploaded(upload(files_tenant, name, TEXT))["name"]
    assert len(stored.encode()) <= 255
    assert stored == "é" * 125 + ".txt"


def test_a_file_of_exactly_max_size_is_stored_and_one_byte_more_is_413(
    files_tenant: Tenant, blobs: Path
) -> None:
    exact = b"a" * MAX_SIZE
    assert uploaded(upload(files_tenant, "exact.txt", exact))["size"] == MAX_SIZE
    over = b"b" * (MAX_SIZE + 1)
    assert_error(upload(files_tenant, "over.txt", over), 413, "PAYLOAD_TOO_LARGE")
    assert [r[2] for r in attachment_rows(files_tenant)] == [MAX_SIZE]
    assert not blob_path(blobs, files_tenant, sha(over)).exists()
    # The partial upload was discarded.
    assert list((blobs / ".spool").iterdir()) == []


def test_a_body_that_is_not_multipart_or_has_no_file_part_answers_400(
    files_tenant: Tenant,
) -> None:
    response = call(files_tenant, "POST", "/attachments", json={"file": "x"})
    assert "multipart/form-data" in reason_of(response)["file"][0]
    headers = files_tenant.headers()
    headers.pop("content-type")
    response = files_tenant.client.post(
        f"{files_tenant.base_url}{API}/attachments",
        params=QUERY,
        headers=headers,
        data={"other": "value"},
        files={"notfile": ("a.txt", b"x")},
    )
    assert reason_of(response) == {"file": ["A part named file is required"]}


def test_uploads_need_the_write_scope_a_write_role_and_the_query(files_tenant: Tenant) -> None:
    assert_error(upload(files_tenant, "a.pdf", PDF, token="nope"), 401, "AUTHENTICATION_FAILURE")
    reader = files_tenant.token(scope="openid tickets:read")
    assert_error(upload(files_tenant, "a.pdf", PDF, token=reader), 401, "USER_PERMISSION_FAILURE")
    roleless = files_tenant.token(roles=["offline_access"])
    assert_error(upload(files_tenant, "a.pdf", PDF, token=roleless), 401, "USER_PERMISSION_FAILURE")
    assert "type" in reason_of(upload(files_tenant, "a.pdf", PDF, params={"module": "ticketing"}))
    assert attachment_rows(files_tenant) == []


def test_fifty_parallel_uploads_are_all_stored(files_tenant: Tenant, blobs: Path) -> None:
    contents = [b"line %d\n" % i * (i + 1) for i in range(50)]
    headers = files_tenant.headers()
    headers.pop("content-type")

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{files_tenant.base_url}{API}/attachments",
                        params=QUERY,
                        headers=headers,
                        files={"file": (f"f{i}.txt", content)},
                    )
                    for i, content in enumerate(contents)
                )
            )

    answers = [uploaded(r) for r in asyncio.run(main())]
    assert len({a["id"] for a in answers}) == 50
    assert sorted(a["sha256"] for a in answers) == sorted(sha(c) for c in contents)
    for content in contents:
        assert blob_path(blobs, files_tenant, sha(content)).read_bytes() == content
    assert len(attachment_rows(files_tenant)) == 50


# --- binding on create and update ---


def test_a_create_binds_its_uploads_and_every_answer_shows_their_metadata(
    files_tenant: Tenant,
) -> None:
    shot = uploaded(upload(files_tenant, "screen.png", PNG))
    log = uploaded(upload(files_tenant, "app.txt", TEXT))
    whole = uploaded(upload(files_tenant, "spec.pdf", PDF))
    ticket = created(
        create_incident(
            files_tenant,
            {F_SCREENSHOTS: [shot["id"]], F_LOGS: [log["id"]], "ticket": [whole["id"]]},
        )
    )
    expected = {F_SCREENSHOTS: [shot], F_LOGS: [log], "ticket": [whole]}
    assert ticket["attachments"] == expected
    assert get_ticket(files_tenant, ticket["object_id"])["attachments"] == expected
    response = call(files_tenant, "POST", "/ticket/list", json={"top": 10})
    listed = response.json()["data"]["value"]
    assert [t["attachments"] for t in listed] == [expected]
    ticket_id = uuid.UUID(ticket["id"])
    bound = {
        str(uuid.UUID(str(r[0]))): (uuid.UUID(str(r[3])), r[4])
        for r in attachment_rows(files_tenant)
    }
    assert bound == {
        shot["id"]: (ticket_id, F_SCREENSHOTS),
        log["id"]: (ticket_id, F_LOGS),
        whole["id"]: (ticket_id, "ticket"),
    }


def test_a_create_without_files_stores_an_empty_map(files_tenant: Tenant) -> None:
    ticket = created(files_tenant.create(seed_body()))
    assert ticket["attachments"] == {}


def test_a_required_attachment_field_without_files_is_required_by_its_uuid(
    files_tenant: Tenant,
) -> None:
    before = files_tenant.ticket_count()
    assert reason_of(create_incident(files_tenant, {})) == {
        F_SCREENSHOTS: ["Field Screenshots is required"]
    }
    assert reason_of(create_incident(files_tenant, {F_SCREENSHOTS: []})) == {
        F_SCREENSHOTS: ["Field Screenshots is required"]
    }
    assert files_tenant.ticket_count() == before


def test_malformed_attachment_maps_are_refused_by_key(files_tenant: Tenant) -> None:
    shots = [uploaded(upload(files_tenant, f"s{i}.png", PNG))["id"] for i in range(3)]
    before = files_tenant.ticket_count()
    reason = reason_of(
        create_incident(
            files_tenant,
            {
                F_SCREENSHOTS: shots,
                F_SUMMARY: [shots[0]],
                "nonsense": [],
                F_LOGS: "not-a-list",
            },
        )
    )
    assert reason == {
        f"attachments.{F_SCREENSHOTS}": ["Field Screenshots takes at most 2 files"],
        f"attachments.{F_SUMMARY}": [
            f"Unknown key {F_SUMMARY}: expects ticket or an attachment field's UUID"
        ],
        "attachments.nonsense": [
            "Unknown key nonsense: expects ticket or an attachment field's UUID"
        ],
        f"attachments.{F_LOGS}": [f"attachments.{F_LOGS} must be a list of attachment ids"],
    }
    assert reason_of(create_incident(files_tenant, {F_SCREENSHOTS: [shots[0], shots[0]]})) == {
        f"attachments.{F_SCREENSHOTS}": [f"Attachment {shots[0]} is listed more than once"]
    }
    assert files_tenant.ticket_count() == before
    assert all(r[3] is None for r in attachment_rows(files_tenant))


def test_a_value_for_an_attachment_field_in_ticket_body_is_refused(files_tenant: Tenant) -> None:
    shot = uploaded(upload(files_tenant, "s.png", PNG))
    body = incident_body({F_SCREENSHOTS: [shot["id"]]}, **{F_LOGS: [shot["id"]]})
    reason = reason_of(files_tenant.create(body, item_type="40000"))
    assert reason == {
        F_LOGS: [
            "Field Logs takes uploaded files: send their ids in attachments, not in ticketBody"
        ]
    }


def test_unknown_foreign_and_used_uploads_are_refused_and_nothing_is_written(
    files_tenant: Tenant, make_tenant: Callable[..., Tenant]
) -> None:
    _, shot = with_files(files_tenant)
    before = files_tenant.ticket_count()
    someone_else = user_token(files_tenant, "bob")
    theirs = uploaded(upload(files_tenant, "b.png", PNG, token=someone_else))
    other_tenant = make_tenant()
    elsewhere = uploaded(upload(other_tenant, "c.png", PNG))
    missing = str(uuid.uuid4())
    for upload_id, message in [
        (shot["id"], f"Attachment {shot['id']} is already used"),
        (theirs["id"], f"Attachment {theirs['id']} not found"),
        (elsewhere["id"], f"Attachment {elsewhere['id']} not found"),
        (missing, f"Attachment {missing} not found"),
        ("not-a-uuid", "Attachment not-a-uuid not found"),
    ]:
        response = create_incident(files_tenant, {F_SCREENSHOTS: [upload_id]})
        assert reason_of(response) == {f"attachments.{F_SCREENSHOTS}": [message]}
    assert files_tenant.ticket_count() == before
    rows = {str(uuid.UUID(str(r[0]))): r[3] for r in attachment_rows(files_tenant)}
    assert rows[theirs["id"]] is None


def test_concurrent_creates_with_the_same_upload_bind_it_once(files_tenant: Tenant) -> None:
    shot = uploaded(upload(files_tenant, "s.png", PNG))
    before = files_tenant.ticket_count()
    body = incident_body({F_SCREENSHOTS: [shot["id"]]})

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{files_tenant.base_url}{API}/ticket/create/james/40000",
                        params=QUERY,
                        headers=files_tenant.headers(),
                        json=body,
                    )
                    for _ in range(8)
                )
            )

    responses = asyncio.run(main())
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1, [r.text for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert reason_of(response) == {
                f"attachments.{F_SCREENSHOTS}": [f"Attachment {shot['id']} is already used"]
            }
    assert files_tenant.ticket_count() == before + 1
    [row] = attachment_rows(files_tenant)
    assert str(uuid.UUID(str(row[3]))) == winners[0].json()["ticket"]["id"]


def test_an_update_adds_files_with_one_history_entry(files_tenant: Tenant) -> None:
    ticket, shot = with_files(files_tenant)
    second = uploaded(upload(files_tenant, "second.png", PNG + b"2"))
    log = uploaded(upload(files_tenant, "log.txt", TEXT))
    entries = history_len(files_tenant, ticket["object_id"])
    after = updated(
        patch(
            files_tenant,
            ticket["object_id"],
            {
                "etag": ticket["etag"],
                "attachments": {F_SCREENSHOTS: [second["id"]], "ticket": [log["id"]]},
            },
        )
    )
    assert after["attachments"] == {F_SCREENSHOTS: [shot, second], "ticket": [log]}
    assert after["version"] == ticket["version"] + 1
    assert after["etag"] != ticket["etag"]
    assert history_len(files_tenant, ticket["object_id"]) == entries + 1
    assert download(files_tenant, ticket["object_id"], log["id"]).content == TEXT


def test_an_update_with_unusable_uploads_changes_nothing(files_tenant: Tenant) -> None:
    ticket, shot = with_files(files_tenant)
    before = get_ticket(files_tenant, ticket["object_id"])
    extra = [uploaded(upload(files_tenant, f"x{i}.png", PNG))["id"] for i in range(2)]
    for attachments, key, message in [
        ({F_SCREENSHOTS: [shot["id"]]}, F_SCREENSHOTS, f"Attachment {shot['id']} is already used"),
        # One file is there already; two more would make three of at most 2.
        ({F_SCREENSHOTS: extra}, F_SCREENSHOTS, "Field Screenshots takes at most 2 files"),
    ]:
        response = patch(
            files_tenant, ticket["object_id"], {"etag": before["etag"], "attachments": attachments}
        )
        assert reason_of(response) == {f"attachments.{key}": [message]}
    response = patch(files_tenant, ticket["object_id"], {"etag": before["etag"], "attachments": []})
    assert reason_of(response) == {"attachments": ["attachments must be an object"]}
    unchanged(files_tenant, before)
    assert sum(1 for r in attachment_rows(files_tenant) if r[3] is not None) == 1


# --- download ---


def test_a_download_answers_the_exact_bytes_with_safe_headers(files_tenant: Tenant) -> None:
    shot = uploaded(upload_raw(files_tenant, "../Bildschirm ä 1.png".encode(), PNG))
    ticket = created(create_incident(files_tenant, {F_SCREENSHOTS: [shot["id"]]}))
    response = download(files_tenant, ticket["object_id"], shot["id"])
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(PNG))
    assert response.headers["etag"] == f'"{sha(PNG)}"'
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"Bildschirm _ 1.png\"; filename*=UTF-8''Bildschirm%20%C3%A4%201.png"
    )
    assert response.headers["accept-ranges"] == "bytes"
    again = download(
        files_tenant, ticket["object_id"], shot["id"], headers={"If-None-Match": f'"{sha(PNG)}"'}
    )
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    ("range_header", "first", "last"),
    [
        ("bytes=2-5", 2, 5),
        ("bytes=10-", 10, None),
        ("bytes=-7", -7, None),
        ("bytes=0-99999", 0, None),
    ],
)
def test_a_range_answers_206_with_exactly_those_bytes(
    files_tenant: Tenant, range_header: str, first: int, last: int | None
) -> None:
    ticket, shot = with_files(files_tenant)
    response = download(
        files_tenant, ticket["object_id"], shot["id"], headers={"Range": range_header}
    )
    expected = PNG[first : None if last is None else last + 1]
    assert response.status_code == 206
    assert response.content == expected
    start = first % len(PNG)
    assert (
        response.headers["content-range"] == f"bytes {start}-{start + len(expected) - 1}/{len(PNG)}"
    )
    assert response.headers["content-length"] == str(len(expected))


@pytest.mark.parametrize("range_header", ["bytes=100000-", "bytes=-0", "bytes=9-3"])
def test_an_unsatisfiable_range_answers_416(files_tenant: Tenant, range_header: str) -> None:
    ticket, shot = with_files(files_tenant)
    response = download(
        files_tenant, ticket["object_id"], shot["id"], headers={"Range": range_header}
    )
    assert_error(response, 416, "RANGE_NOT_SATISFIABLE")
    assert response.headers["content-range"] == f"bytes */{len(PNG)}"


def test_downloads_are_visible_as_the_ticket_is(
    files_tenant: Tenant, make_tenant: Callable[..., Tenant]
) -> None:
    alice = user_token(files_tenant, "alice")
    ticket, shot = with_files(files_tenant, token=alice)
    assert download(files_tenant, ticket["object_id"], shot["id"], token=alice).content == PNG
    assert download(files_tenant, ticket["object_id"], shot["id"]).content == PNG  # an agent
    bob = user_token(files_tenant, "bob")
    assert_error(download(files_tenant, ticket["object_id"], shot["id"], token=bob), 404)
    other = make_tenant()
    assert_error(download(other, ticket["object_id"], shot["id"]), 404)
    # A file of one ticket is not reachable through another, nor an unbound upload at all.
    second, _ = with_files(files_tenant)
    assert_error(download(files_tenant, second["object_id"], shot["id"]), 404)
    loose = uploaded(upload(files_tenant, "loose.png", PNG))
    assert_error(download(files_tenant, ticket["object_id"], loose["id"]), 404)
    assert_error(download(files_tenant, ticket["object_id"], "not-a-uuid"), 404)


# --- list filter ---


def test_has_attachments_filters_lists_and_counts(files_tenant: Tenant) -> None:
    plain = created(files_tenant.create(seed_body()))["object_id"]
    with_file = with_files(files_tenant)[0]["object_id"]

    def flt(op: str, operand: Any) -> dict[str, Any]:
        return {"top": 100, "filter": {"column": "hasAttachments", "op": op, "operand": operand}}

    assert list_ids(files_tenant, flt("EQ", True)) == [with_file]
    assert list_ids(files_tenant, flt("EQ", False)) == [plain]
    assert list_ids(files_tenant, flt("NE", True)) == [plain]
    assert count(files_tenant, flt("EQ", True)) == 1
    response = call(files_tenant, "POST", "/ticket/list", json=flt("GT", True))
    assert reason_of(response) == {
        "filter.operand": ["hasAttachments takes EQ or NE with true or false"]
    }
    response = call(files_tenant, "POST", "/ticket/count", json=flt("EQ", "yes"))
    assert reason_of(response) == {
        "filter.operand": ["hasAttachments takes EQ or NE with true or false"]
    }


def test_has_attachments_true_is_answered_from_its_partial_index(
    files_tenant: Tenant, database: Database
) -> None:
    with_files(files_tenant)
    created(files_tenant.create(seed_body()))
    query = (
        "SELECT id FROM tickets WHERE tenant_id = :t AND deleted_seq = -1 "
        "AND CAST(attachments AS TEXT) <> '{}' ORDER BY created_at DESC, id_serial DESC LIMIT 30"
    )
    tenant_id: Any = uuid.UUID(files_tenant.id)
    if database.name == "sqlite":
        tenant_id = tenant_id.hex

    async def plan(engine: Any) -> str:
        async with engine.begin() as conn:
            if database.name == "postgresql":
                # The test tables are tiny; the question is whether the index can answer.
                await conn.execute(text("SET LOCAL enable_seqscan = off"))
                rows = await conn.execute(text(f"EXPLAIN {query}"), {"t": tenant_id})
            else:
                rows = await conn.execute(text(f"EXPLAIN QUERY PLAN {query}"), {"t": tenant_id})
            return " ".join(str(r) for r in rows.fetchall())

    assert "ix_tickets_tenant_has_attachments" in database.run(plan)


# --- garbage collection ---


def test_a_file_whose_content_left_storage_answers_an_error_not_a_broken_200(
    files_tenant: Tenant, server: Server, blobs: Path
) -> None:
    ticket, shot = with_files(files_tenant)
    blob_path(blobs, files_tenant, sha(PNG)).unlink()
    for headers in ({}, {"Range": "bytes=2-5"}):
        response = download(files_tenant, ticket["object_id"], shot["id"], headers=headers)
        assert response.status_code == 500, (headers, response.status_code, response.content)
        request_id = response.headers["x-request-id"]
        assert response.json() == {
            "error": True,
            "code": "ATTACHMENT_CONTENT_MISSING",
            "message": "The attachment's content is missing from storage",
            "status": 500,
            "requestId": request_id,
        }
        assert f"attachment content missing (request {request_id})" in server.log()
    # The ticket and the file's metadata are untouched; the content can be stored again.
    again = uploaded(upload(files_tenant, "screen.png", PNG))
    assert again["sha256"] == shot["sha256"]
    assert download(files_tenant, ticket["object_id"], shot["id"]).content == PNG


def test_gc_keeps_a_blob_whose_upload_is_being_recorded(
    files_tenant: Tenant, database: Database, data_dir: Path, blobs: Path
) -> None:
    # An unreferenced, old blob: gc would remove it...
    meta = uploaded(upload(files_tenant, "old.pdf", PDF))
    database.fetch("DELETE FROM attachments WHERE id = :i", i=uuid.UUID(meta["id"]))
    path = blob_path(blobs, files_tenant, sha(PDF))
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    tenant_id = uuid.UUID(files_tenant.id)

    async def upload_in_flight(engine: Any) -> tuple[int | None, str]:
        # ...but an upload of the same content has stored it and written its row, not yet
        # committed, when gc looks (what store_upload does between its two steps).
        async with engine.begin() as conn:
            await attachment_repository.lock_blob(conn, tenant_id=tenant_id, sha256=sha(PDF))
            row = Attachment(
                tenant_id=tenant_id, id=uuid.uuid4(), uploader="user@example.com",
                name="again.pdf", size=len(PDF), content_type="application/pdf",
                sha256=sha(PDF), created_at=datetime.now(UTC), ticket_id=None, field_key=None,
            )  # fmt: skip
            await attachment_repository.insert_attachment(conn, attachment=row)
            gc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "ticketing", "gc", "--ttl", "3600"),
                env={
                    **os.environ,
                    "TICKETING_DATABASE_URL": database.url,
                    "TICKETING_DATA_DIR": str(data_dir),
                },
                stdout=asyncio.subprocess.PIPE,
            )
            await asyncio.sleep(3)
            waiting = gc.returncode
        out, _ = await asyncio.wait_for(gc.communicate(), 60)
        return waiting, out.decode()

    waiting, out = database.run(upload_in_flight)
    assert waiting is None, f"gc did not wait for the upload: {out}"
    assert out.startswith("removed "), out
    assert path.read_bytes() == PDF


def test_gc_removes_unbound_uploads_and_unreferenced_blobs_only(
    files_tenant: Tenant, server: Server, database: Database, data_dir: Path, blobs: Path
) -> None:
    ticket, shot = with_files(files_tenant)
    loose = uploaded(upload(files_tenant, "loose.pdf", PDF))
    # Same content as the bound screenshot: its blob is still referenced by the bound row.
    twin = uploaded(upload(files_tenant, "twin.png", PNG))
    output = run_gc(database.url, data_dir, "--ttl", "0")
    assert output.startswith("removed "), output
    ids = {str(uuid.UUID(str(r[0]))) for r in attachment_rows(files_tenant)}
    assert ids == {shot["id"]}
    assert loose["id"] not in ids and twin["id"] not in ids
    assert not blob_path(blobs, files_tenant, sha(PDF)).exists()
    assert blob_path(blobs, files_tenant, sha(PNG)).read_bytes() == PNG
    assert download(files_tenant, ticket["object_id"], shot["id"]).content == PNG
    # Within the TTL nothing is touched.
    fresh = uploaded(upload(files_tenant, "fresh.pdf", PDF))
    run_gc(database.url, data_dir)
    assert fresh["id"] in {str(uuid.UUID(str(r[0]))) for r in attachment_rows(files_tenant)}
    assert blob_path(blobs, files_tenant, sha(PDF)).exists()
