"""kill -9 of a server in the middle of uploads, on each database: no partial blob becomes
visible, no row names a blob that is missing or not whole, every acknowledged upload is
kept, and `ticketing gc` clears what the cut-off uploads left in the spool."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx

from tests.attachment_api import attachment_rows, file_tenant_config, run_gc, visible_blobs
from tests.support import Database, Tenant, start_server, stop_server
from tests.test_resilience import alive, kill_hard
from tests.ticket_api import API, QUERY

UPLOADS = 16
SIZE = 2 * 1024 * 1024
CHUNK = 64 * 1024
BOUNDARY = b"k1ll-b0undary"


def contents(i: int) -> bytes:
    """A distinct PNG-looking file of SIZE bytes."""
    head = b"\x89PNG\r\n\x1a\n" + i.to_bytes(4, "big")
    return head + bytes([i]) * (SIZE - len(head))


async def slow_body(i: int, pause: float) -> AsyncIterator[bytes]:
    """A multipart body sent chunk by chunk, so that the kill finds uploads mid-way."""
    yield (
        b"--" + BOUNDARY + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="shot' + str(i).encode() + b'.png"'
        b"\r\nContent-Type: image/png\r\n\r\n"
    )
    data = contents(i)
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]
        await asyncio.sleep(pause)
    yield b"\r\n--" + BOUNDARY + b"--\r\n"


def test_kill_9_during_uploads_leaves_no_partial_blob_and_no_dangling_row(
    make_tenant: Callable[..., Tenant], database: Database, data_dir: Path, tmp_path: Path
) -> None:
    config = file_tenant_config(max_size=SIZE)
    tenant = make_tenant(attachments=config["attachments"])
    # A data folder of its own (its blobs and spool), with the suite's signing key.
    own_dir = tmp_path / "data"
    own_dir.mkdir()
    shutil.copy(data_dir / "dev-signing-key.pem", own_dir / "dev-signing-key.pem")
    victim = start_server(database_url=database.url, data_dir=own_dir)
    blobs = own_dir / "blobs"
    headers = tenant.headers()
    headers["content-type"] = "multipart/form-data; boundary=" + BOUNDARY.decode()
    answers: dict[int, httpx.Response] = {}
    killed: list[int] = []

    async def one(client: httpx.AsyncClient, i: int) -> None:
        # Uploads of different speeds: some finish before the kill, the others are cut off.
        pause = 0.0 if i % 4 == 0 else 0.05
        with contextlib.suppress(httpx.HTTPError):
            answers[i] = await client.post(
                f"{victim.base_url}{API}/attachments",
                params=QUERY,
                headers=headers,
                content=slow_body(i, pause),
            )

    async def main() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            tasks = [asyncio.create_task(one(client, i)) for i in range(UPLOADS)]
            deadline = time.monotonic() + 60
            while sum(1 for r in answers.values() if r.status_code == 200) < 2:
                assert time.monotonic() < deadline, answers
                await asyncio.sleep(0.05)
            killed.extend(kill_hard(victim))
            await asyncio.gather(*tasks)

    try:
        asyncio.run(main())
    finally:
        stop_server(victim)
    assert victim.process.returncode == -signal.SIGKILL
    assert not any(alive(pid) for pid in killed)
    acknowledged = {
        uuid.UUID(r.json()["attachment"]["id"]) for r in answers.values() if r.status_code == 200
    }
    assert 2 <= len(acknowledged) < UPLOADS, "the kill came too late to cut anything off"

    # Every visible blob is whole: its content hashes to its name.
    stored = visible_blobs(blobs)
    for path, data in stored.items():
        assert hashlib.sha256(data).hexdigest() == path.name, path
        assert len(data) == SIZE
    # Every row names a stored, whole blob; every acknowledged upload has its row.
    rows = attachment_rows(tenant)
    by_id = {uuid.UUID(str(r[0])): r for r in rows}
    assert acknowledged <= set(by_id)
    for _id, digest, size, *_ in rows:
        path = blobs / tenant.id / digest[:2] / digest
        assert path in stored, f"row {_id} names a missing blob"
        assert len(stored[path]) == size

    # What the cut-off uploads left behind is only in the spool, and gc clears it.
    run_gc(database.url, own_dir, "--ttl", "0")
    assert list((blobs / ".spool").iterdir()) == []
