"""HTTP helpers and a tenant configuration for the attachment tests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support import Tenant, new_tenant_config
from tests.ticket_api import API, QUERY

# Item type 40000: files.
F_SUMMARY = "00000000-0000-4000-8000-000000000101"
F_SCREENSHOTS = "00000000-0000-4000-8000-000000000102"
F_LOGS = "00000000-0000-4000-8000-000000000103"
MAX_SIZE = 4096

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(200))
PDF = b"%PDF-1.7\n" + b"x" * 100
TEXT = "Grüße, log line 1\nline 2\n".encode()


def file_tenant_config(**policy: Any) -> dict[str, Any]:
    """The standard tenant plus item type 40000 (a required attachment field of at most 2
    files, an optional one) and offer 23640, with a 4 KiB upload limit."""
    config = new_tenant_config()
    config["ticket_types"].append(
        {
            "id": "40000",
            "name": "Incident with files",
            "prefix": "INC",
            "fields": [
                {"id": F_SUMMARY, "name": "details", "label": "Details", "type": "text"},
                {
                    "id": F_SCREENSHOTS,
                    "name": "screenshots",
                    "label": "Screenshots",
                    "type": "attachment",
                    "required": True,
                    "maxFiles": 2,
                },
                {"id": F_LOGS, "name": "logs", "label": "Logs", "type": "attachment"},
            ],
        }
    )
    config["offers"].append({"id": "23640", "name": "Incident", "item_type": "40000"})
    config["attachments"] = {"max_size": MAX_SIZE, **policy}
    return config


def upload(
    tenant: Tenant,
    name: str,
    content: bytes,
    *,
    token: str | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /attachments with one part `file`."""
    headers = tenant.headers(token)
    headers.pop("content-type")
    return tenant.client.post(
        f"{tenant.base_url}{API}/attachments",
        params=QUERY if params is None else params,
        headers=headers,
        files={"file": (name, content, "application/octet-stream")},
    )


def upload_raw(tenant: Tenant, filename: bytes, content: bytes) -> httpx.Response:
    """POST /attachments with a hand-built multipart body: the file name's bytes go out as
    given (clients percent-encode control characters; hostile ones do not)."""
    boundary = b"b0undary"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )
    headers = tenant.headers()
    headers["content-type"] = "multipart/form-data; boundary=" + boundary.decode()
    return tenant.client.post(
        f"{tenant.base_url}{API}/attachments", params=QUERY, headers=headers, content=body
    )


def uploaded(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    return body["attachment"]  # type: ignore[no-any-return]


def incident_body(attachments: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "source": "api",
        "summary": "Printer on fire",
        "ticketBody": {"offerId": "23640", **fields},
        "attachments": attachments,
        "ticketRelation": None,
    }


def create_incident(
    tenant: Tenant, attachments: dict[str, Any], token: str | None = None
) -> httpx.Response:
    return tenant.create(incident_body(attachments), item_type="40000", token=token)


def download(
    tenant: Tenant,
    object_id: str,
    attachment_id: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    all_headers = tenant.headers(token)
    all_headers.update(headers or {})
    return tenant.client.get(
        f"{tenant.base_url}{API}/ticket/{object_id}/attachments/{attachment_id}",
        params=QUERY,
        headers=all_headers,
    )


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def blob_path(blobs: Path, tenant: Tenant, digest: str) -> Path:
    return blobs / tenant.id / digest[:2] / digest


def visible_blobs(blobs: Path) -> dict[Path, bytes]:
    """Every stored blob file (the spool folder is not part of the store's namespace)."""
    return {
        path: path.read_bytes()
        for path in blobs.glob("*/*/*")
        if path.is_file() and not path.relative_to(blobs).parts[0].startswith(".")
    }


def attachment_rows(tenant: Tenant) -> list[tuple[Any, ...]]:
    return tenant.db.fetch(
        "SELECT id, sha256, size, ticket_id, field_key, uploader FROM attachments "
        "WHERE tenant_id = :t ORDER BY created_at",
        t=uuid.UUID(tenant.id),
    )


def run_gc(database_url: str, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """`ticketing gc` as a real subprocess; its output."""
    result = subprocess.run(
        [sys.executable, "-m", "ticketing", "gc", *args],
        env={
            **os.environ,
            "TICKETING_DATABASE_URL": database_url,
            "TICKETING_DATA_DIR": str(data_dir),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
