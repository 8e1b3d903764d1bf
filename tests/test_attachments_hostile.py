"""Attachments under the requests an outside client may send, on each database: multipart
bodies that are wrong in every usual way, bodies sent without Content-Length, several ranges,
the default policy's limits, files named in an update with a stale etag or by concurrent
updates of different tickets, files of merged and deleted tickets, and the collection that
`serve` runs on its own."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.attachment_api import (
    F_LOGS,
    F_SCREENSHOTS,
    MAX_SIZE,
    PDF,
    PNG,
    TEXT,
    attachment_rows,
    blob_path,
    create_incident,
    download,
    file_tenant_config,
    sha,
    upload,
    uploaded,
)
from tests.support import Database, Tenant, seed_body, start_server, stop_server
from tests.ticket_api import (
    API,
    QUERY,
    assert_error,
    call,
    created,
    delete,
    get_ticket,
    patch,
    reason_of,
    unchanged,
    updated,
)

BOUNDARY = b"h0stile-b0undary"
DEFAULT_MAX_SIZE = 10 * 1024 * 1024


@pytest.fixture
def spool(data_dir: Path) -> Path:
    return data_dir / "blobs" / ".spool"


def file_part(filename: bytes | None, content: bytes, name: bytes = b"file") -> bytes:
    disposition = b'Content-Disposition: form-data; name="' + name + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    return disposition + b"\r\nContent-Type: application/octet-stream\r\n\r\n" + content


def multipart(*parts: bytes, end: bool = True) -> bytes:
    body = b"".join(b"--" + BOUNDARY + b"\r\n" + part + b"\r\n" for part in parts)
    return body + (b"--" + BOUNDARY + b"--\r\n" if end else b"")


def post_upload(tenant: Tenant, body: Any, content_type: str | None) -> httpx.Response:
    """POST /attachments with a body as given (bytes, or chunks sent without Content-Length)."""
    headers = tenant.headers()
    headers.pop("content-type")
    if content_type is not None:
        headers["content-type"] = content_type
    return tenant.client.post(
        f"{tenant.base_url}{API}/attachments", params=QUERY, headers=headers, content=body
    )


WITH_BOUNDARY = "multipart/form-data; boundary=" + BOUNDARY.decode()


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        pytest.param(
            "multipart/form-data",
            multipart(file_part(b"a.txt", TEXT)),
            "Send the file as multipart/form-data, in a part named file",
            id="no-boundary",
        ),
        pytest.param(
            None,
            multipart(file_part(b"a.txt", TEXT)),
            "Send the file as multipart/form-data, in a part named file",
            id="no-content-type",
        ),
        pytest.param(
            WITH_BOUNDARY,
            multipart(file_part(b"a.txt", TEXT), file_part(b"b.txt", TEXT)),
            "Send one part named file per upload",
            id="two-file-parts",
        ),
        pytest.param(
            WITH_BOUNDARY,
            multipart(file_part(None, TEXT)),
            "The part named file must be a file, with a file name",
            id="file-part-without-filename",
        ),
        pytest.param(
            WITH_BOUNDARY,
            multipart(file_part(b"", TEXT)),
            "The file name is empty once path and control characters go",
            id="empty-filename",
        ),
        pytest.param(
            WITH_BOUNDARY,
            multipart(file_part(b"a.txt", b"")),
            "The file is empty",
            id="empty-file",
        ),
        pytest.param(
            WITH_BOUNDARY,
            multipart(file_part(b"a.txt", TEXT), end=False),
            "The multipart body ends inside the file",
            id="cut-off",
        ),
        pytest.param(WITH_BOUNDARY, b"", "A part named file is required", id="empty-body"),
        pytest.param(
            "multipart/form-data; boundary=another",
            multipart(file_part(b"a.txt", TEXT)),
            "The multipart body is malformed",
            id="wrong-boundary",
        ),
    ],
)
def test_wrong_multipart_bodies_are_400_on_file_and_keep_nothing(
    files_tenant: Tenant, spool: Path, content_type: str | None, body: bytes, message: str
) -> None:
    reason = reason_of(post_upload(files_tenant, body, content_type))
    assert list(reason) == ["file"], reason
    assert len(reason["file"]) == 1 and reason["file"][0].startswith(message), reason
    assert attachment_rows(files_tenant) == []
    assert list(spool.iterdir()) == []


def chunked(*chunks: bytes) -> Iterator[bytes]:
    """A body httpx sends chunked, without Content-Length."""
    yield from chunks


def test_a_body_without_content_length_is_limited_as_it_streams(
    files_tenant: Tenant, spool: Path
) -> None:
    ok = post_upload(files_tenant, chunked(multipart(file_part(b"a.txt", TEXT))), WITH_BOUNDARY)
    assert uploaded(ok)["size"] == len(TEXT)
    over = b"x" * (MAX_SIZE + 1)
    response = post_upload(
        files_tenant, chunked(multipart(file_part(b"big.txt", over))), WITH_BOUNDARY
    )
    body = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert body["message"] == f"Files must not exceed {MAX_SIZE} bytes"
    # Part headers are held until the part's data begins: they are bounded too (by the
    # multipart parser: a few KiB per header, a few headers per part).
    huge_header = b"X-Padding: " + b"p" * (64 * 1024) + b"\r\n" + file_part(b"a.txt", TEXT)
    many_headers = b"".join(b"X-H%d: v\r\n" % i for i in range(100)) + file_part(b"a.txt", TEXT)
    for part in (huge_header, many_headers):
        reason = reason_of(post_upload(files_tenant, chunked(multipart(part)), WITH_BOUNDARY))
        assert list(reason) == ["file"] and len(reason["file"]) == 1, reason
        assert reason["file"][0].startswith("The multipart body is malformed: "), reason
    assert [r[2] for r in attachment_rows(files_tenant)] == [len(TEXT)]
    assert list(spool.iterdir()) == []


def test_the_default_policy_takes_exactly_ten_mib(
    make_tenant: Callable[..., Tenant], spool: Path
) -> None:
    tenant = make_tenant()  # no `attachments` in its configuration
    exact = b"a" * DEFAULT_MAX_SIZE
    assert uploaded(upload(tenant, "exact.txt", exact))["size"] == DEFAULT_MAX_SIZE
    # One byte over is refused as it streams in; far over, from its Content-Length.
    for size in (DEFAULT_MAX_SIZE + 1, DEFAULT_MAX_SIZE + 1024 * 1024):
        body = assert_error(upload(tenant, "over.txt", b"b" * size), 413, "PAYLOAD_TOO_LARGE")
        assert body["message"] == f"Files must not exceed {DEFAULT_MAX_SIZE} bytes"
    assert [r[2] for r in attachment_rows(tenant)] == [DEFAULT_MAX_SIZE]
    assert list(spool.iterdir()) == []
    # Every default type is allowed.
    assert uploaded(upload(tenant, "a.xlsx", b"PK\x03\x04zip"))
    reason = reason_of(upload(tenant, "a.exe", b"MZ"))
    assert reason == {
        "file": [
            "File type exe is not allowed; allowed: "
            "pdf, doc, docx, xls, xlsx, png, jpg, jpeg, gif, txt, csv"
        ]
    }


def test_an_attachment_field_without_max_files_takes_five(files_tenant: Tenant) -> None:
    shot = uploaded(upload(files_tenant, "s.png", PNG))["id"]
    logs = [uploaded(upload(files_tenant, f"l{i}.txt", b"line %d\n" % i))["id"] for i in range(6)]
    response = create_incident(files_tenant, {F_SCREENSHOTS: [shot], F_LOGS: logs})
    assert reason_of(response) == {f"attachments.{F_LOGS}": ["Field Logs takes at most 5 files"]}
    ticket = created(create_incident(files_tenant, {F_SCREENSHOTS: [shot], F_LOGS: logs[:5]}))
    assert [a["id"] for a in ticket["attachments"][F_LOGS]] == logs[:5]
    response = patch(
        files_tenant,
        ticket["object_id"],
        {"etag": ticket["etag"], "attachments": {F_LOGS: [logs[5]]}},
    )
    assert reason_of(response) == {f"attachments.{F_LOGS}": ["Field Logs takes at most 5 files"]}


def test_several_ranges_or_another_unit_are_answered_with_the_whole_file(
    files_tenant: Tenant,
) -> None:
    shot = uploaded(upload(files_tenant, "s.png", PNG))
    ticket = created(create_incident(files_tenant, {F_SCREENSHOTS: [shot["id"]]}))
    for header in ("bytes=0-1,5-6", "bytes=0-1, 300-400", "items=0-1"):
        response = download(
            files_tenant, ticket["object_id"], shot["id"], headers={"Range": header}
        )
        assert response.status_code == 200, header
        assert response.content == PNG
        assert "content-range" not in response.headers
        assert response.headers["content-length"] == str(len(PNG))


def test_an_update_with_a_stale_etag_binds_no_file(files_tenant: Tenant) -> None:
    shot = uploaded(upload(files_tenant, "s.png", PNG))
    ticket = created(create_incident(files_tenant, {F_SCREENSHOTS: [shot["id"]]}))
    log = uploaded(upload(files_tenant, "log.txt", TEXT))
    stale = str(uuid.uuid4())
    attachments = {"ticket": [log["id"]]}
    response = patch(files_tenant, ticket["object_id"], {"etag": stale, "attachments": attachments})
    assert_error(response, 409, "ETAG_MISMATCH")
    response = patch(
        files_tenant,
        ticket["object_id"],
        {"attachments": attachments},
        headers={"If-Match": f'"{stale}"'},
    )
    assert_error(response, 412, "PRECONDITION_FAILED")
    unchanged(files_tenant, ticket)
    rows = {str(uuid.UUID(str(r[0]))): r[3] for r in attachment_rows(files_tenant)}
    assert rows[log["id"]] is None
    after = updated(
        patch(
            files_tenant, ticket["object_id"], {"etag": ticket["etag"], "attachments": attachments}
        )
    )
    assert after["attachments"] == {F_SCREENSHOTS: [shot], "ticket": [log]}


def test_concurrent_updates_of_different_tickets_bind_one_upload_once(
    files_tenant: Tenant,
) -> None:
    tickets = []
    for i in range(6):
        shot = uploaded(upload(files_tenant, f"s{i}.png", PNG + bytes([i])))
        tickets.append(created(create_incident(files_tenant, {F_SCREENSHOTS: [shot["id"]]})))
    log = uploaded(upload(files_tenant, "log.txt", TEXT))

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.patch(
                        f"{files_tenant.base_url}{API}/ticket/update/{t['object_id']}",
                        params=QUERY,
                        headers=files_tenant.headers(),
                        json={"etag": t["etag"], "attachments": {"ticket": [log["id"]]}},
                    )
                    for t in tickets
                )
            )

    responses = asyncio.run(main())
    winners = [i for i, r in enumerate(responses) if r.status_code == 200]
    assert len(winners) == 1, [r.text for r in responses]
    for i, response in enumerate(responses):
        if i in winners:
            assert updated(response)["attachments"]["ticket"] == [log]
        else:
            assert reason_of(response) == {
                "attachments.ticket": [f"Attachment {log['id']} is already used"]
            }
            unchanged(files_tenant, tickets[i])
    bound = {str(uuid.UUID(str(r[0]))): r[3] for r in attachment_rows(files_tenant)}
    assert str(uuid.UUID(str(bound[log["id"]]))) == tickets[winners[0]]["id"]


def test_a_merged_tickets_files_stay_readable_and_a_deleted_tickets_are_404(
    files_tenant: Tenant,
) -> None:
    shot = uploaded(upload(files_tenant, "s.png", PNG))
    source = created(create_incident(files_tenant, {F_SCREENSHOTS: [shot["id"]]}))
    target = created(files_tenant.create(seed_body()))
    response = call(
        files_tenant,
        "POST",
        f"/ticket/{source['object_id']}/merge",
        json={"into": target["object_id"], "etag": source["etag"]},
    )
    assert response.status_code == 200, response.text
    merged = response.json()["ticket"]
    assert merged["moved_to"] == target["object_id"]
    assert merged["attachments"] == {F_SCREENSHOTS: [shot]}
    assert get_ticket(files_tenant, source["object_id"])["attachments"] == {F_SCREENSHOTS: [shot]}
    answer = download(files_tenant, source["object_id"], shot["id"])
    assert answer.status_code == 200 and answer.content == PNG

    assert delete(files_tenant, source["object_id"], merged["etag"]).status_code == 200
    assert_error(download(files_tenant, source["object_id"], shot["id"]), 404, "NOT_FOUND")


def test_serve_collects_unbound_uploads_on_its_own(
    make_tenant: Callable[..., Tenant], database: Database, data_dir: Path, tmp_path: Path
) -> None:
    own_dir = tmp_path / "data"
    own_dir.mkdir()
    shutil.copy(data_dir / "dev-signing-key.pem", own_dir / "dev-signing-key.pem")
    ttl = 3.0
    server = start_server(
        database_url=database.url,
        data_dir=own_dir,
        env={"TICKETING_GC_INTERVAL": "1", "TICKETING_UPLOAD_TTL": str(ttl)},
    )
    try:
        config = file_tenant_config()
        tenant = dataclasses.replace(
            make_tenant(**{k: v for k, v in config.items() if k not in ("id", "realm")}),
            base_url=server.base_url,
        )
        blobs = own_dir / "blobs"
        started = time.monotonic()
        shot = uploaded(upload(tenant, "s.png", PNG))
        ticket = created(create_incident(tenant, {F_SCREENSHOTS: [shot["id"]]}))
        loose = uploaded(upload(tenant, "loose.pdf", PDF))
        ids = {str(uuid.UUID(str(r[0]))) for r in attachment_rows(tenant)}
        assert time.monotonic() - started < ttl, "too slow to see the upload within its TTL"
        assert ids == {shot["id"], loose["id"]}
        deadline = time.monotonic() + 30
        while blob_path(blobs, tenant, sha(PDF)).exists() or len(attachment_rows(tenant)) > 1:
            assert time.monotonic() < deadline, attachment_rows(tenant)
            time.sleep(0.2)
        assert {str(uuid.UUID(str(r[0]))) for r in attachment_rows(tenant)} == {shot["id"]}
        assert blob_path(blobs, tenant, sha(PNG)).read_bytes() == PNG
        assert download(tenant, ticket["object_id"], shot["id"]).content == PNG
    finally:
        stop_server(server)
