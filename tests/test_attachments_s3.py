"""Attachments kept in S3-compatible object storage: a real S3 server (moto's server mode, a
separate process speaking the S3 protocol) behind a `ticketing serve` with an s3:// blob URL,
on each database."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.attachment_api import (
    F_SCREENSHOTS,
    MAX_SIZE,
    PDF,
    PNG,
    attachment_rows,
    create_incident,
    download,
    file_tenant_config,
    run_gc,
    sha,
    upload,
    uploaded,
)
from tests.support import Database, Server, Tenant, free_port, start_server, stop_server
from tests.ticket_api import assert_error, created, get_ticket

BUCKET = "ticketing-files"
PREFIX = "blobs/v1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server process with an empty bucket."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(endpoint, timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.2)
    s3_client(endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
    )


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        **CREDENTIALS,
        "TICKETING_BLOB_URL": f"s3://{BUCKET}/{PREFIX}",
        "TICKETING_S3_ENDPOINT_URL": endpoint,
    }


@pytest.fixture
def s3_server(database: Database, data_dir: Path, s3_endpoint: str) -> Iterator[Server]:
    server = start_server(database_url=database.url, data_dir=data_dir, env=s3_env(s3_endpoint))
    yield server
    stop_server(server)


@pytest.fixture
def s3_tenant(make_tenant: Callable[..., Tenant], s3_server: Server) -> Tenant:
    config = file_tenant_config()
    tenant = make_tenant(**{k: v for k, v in config.items() if k not in ("id", "realm")})
    return dataclasses.replace(tenant, base_url=s3_server.base_url)


def stored_object(endpoint: str, tenant: Tenant, digest: str) -> bytes | None:
    key = f"{PREFIX}/{tenant.id}/{digest[:2]}/{digest}"
    try:
        answer = s3_client(endpoint).get_object(Bucket=BUCKET, Key=key)
    except s3_client(endpoint).exceptions.NoSuchKey:
        return None
    return answer["Body"].read()  # type: ignore[no-any-return]


def test_uploads_are_stored_as_objects_and_downloaded_with_ranges(
    s3_tenant: Tenant, s3_endpoint: str
) -> None:
    shot = uploaded(upload(s3_tenant, "screen.png", PNG))
    assert stored_object(s3_endpoint, s3_tenant, sha(PNG)) == PNG
    ticket = created(create_incident(s3_tenant, {F_SCREENSHOTS: [shot["id"]]}))
    assert get_ticket(s3_tenant, ticket["object_id"])["attachments"] == {F_SCREENSHOTS: [shot]}
    whole = download(s3_tenant, ticket["object_id"], shot["id"])
    assert whole.status_code == 200 and whole.content == PNG
    assert whole.headers["etag"] == f'"{sha(PNG)}"'
    part = download(s3_tenant, ticket["object_id"], shot["id"], headers={"Range": "bytes=3-9"})
    assert part.status_code == 206 and part.content == PNG[3:10]
    assert part.headers["content-range"] == f"bytes 3-9/{len(PNG)}"


def test_an_upload_over_the_limit_leaves_no_object(s3_tenant: Tenant, s3_endpoint: str) -> None:
    over = b"z" * (MAX_SIZE + 1)
    assert_error(upload(s3_tenant, "over.txt", over), 413, "PAYLOAD_TOO_LARGE")
    assert stored_object(s3_endpoint, s3_tenant, sha(over)) is None
    assert attachment_rows(s3_tenant) == []


def test_gc_removes_unbound_uploads_and_their_objects(
    s3_tenant: Tenant, s3_endpoint: str, database: Database, data_dir: Path
) -> None:
    shot = uploaded(upload(s3_tenant, "screen.png", PNG))
    created(create_incident(s3_tenant, {F_SCREENSHOTS: [shot["id"]]}))
    loose = uploaded(upload(s3_tenant, "loose.pdf", PDF))
    assert stored_object(s3_endpoint, s3_tenant, sha(PDF)) == PDF
    run_gc(database.url, data_dir, "--ttl", "0", env=s3_env(s3_endpoint))
    assert stored_object(s3_endpoint, s3_tenant, sha(PDF)) is None
    assert stored_object(s3_endpoint, s3_tenant, sha(PNG)) == PNG
    ids = [str(r[0]).replace("-", "") for r in attachment_rows(s3_tenant)]
    assert ids == [shot["id"].replace("-", "")]
    assert loose["id"].replace("-", "") not in ids
