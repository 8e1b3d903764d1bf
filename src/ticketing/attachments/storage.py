"""The blob store behind attachments: one small interface, a folder or S3-compatible storage.

Blobs are content-addressed per tenant (`{tenant}/{sha[:2]}/{sha}`), so the same file uploaded
twice by one tenant is stored once, and tenants never share a blob. An upload is first
spooled to a local temporary file (hashed and counted as it is written) and handed to the
store only once complete and checked: the folder store fsyncs it and renames it into place,
the S3 store uploads it as one object, so no reader and no crash ever sees a partial blob.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

CHUNK = 64 * 1024


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob: whose, which content, and when it was last written."""

    tenant_id: str
    sha256: str
    modified: float  # seconds since the epoch


class BlobMissing(Exception):
    """The blob asked for is not in the store."""


class BlobStore(Protocol):
    """Where attachment contents live."""

    spool_dir: Path

    async def put(self, tenant_id: str, sha256: str, source: Path) -> None:
        """Stores the complete file `source` (which it consumes) as the tenant's blob."""

    def read(self, tenant_id: str, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes `start` to `end` (inclusive) of a blob, in chunks; BlobMissing (before the
        first chunk) when it is not stored."""

    async def exists(self, tenant_id: str, sha256: str) -> bool:
        """Whether the tenant's blob is stored."""

    async def delete(self, tenant_id: str, sha256: str) -> None:
        """Removes a blob (nothing happens when it is already gone)."""

    def list(self) -> AsyncIterator[BlobInfo]:
        """Every stored blob, of every tenant."""


def _key(tenant_id: str, sha256: str) -> str:
    return f"{tenant_id}/{sha256[:2]}/{sha256}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBlobStore:
    """Blobs as files under a folder; writes are a rename of a complete, synced file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Inside the root, so that the rename into place never crosses file systems.
        self.spool_dir = root / ".spool"
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, tenant_id: str, sha256: str) -> Path:
        return self.root / _key(tenant_id, sha256)

    async def put(self, tenant_id: str, sha256: str, source: Path) -> None:
        await asyncio.to_thread(self._put, self._path(tenant_id, sha256), source)

    @staticmethod
    def _put(target: Path, source: Path) -> None:
        with source.open("rb") as handle:
            os.fsync(handle.fileno())
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            # Same content already stored: refresh its time so that a collection running now
            # (which spares recent blobs) does not remove it under the new row.
            try:
                os.utime(target)
            except FileNotFoundError:  # collected a moment ago: store this copy instead
                pass
            else:
                source.unlink()
                return
        os.replace(source, target)
        _fsync_dir(target.parent)

    async def read(self, tenant_id: str, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(self._path(tenant_id, sha256).open, "rb")
        except FileNotFoundError as exc:
            raise BlobMissing(_key(tenant_id, sha256)) from exc
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def exists(self, tenant_id: str, sha256: str) -> bool:
        return await asyncio.to_thread(self._path(tenant_id, sha256).is_file)

    async def delete(self, tenant_id: str, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(tenant_id, sha256).unlink)

    async def list(self) -> AsyncIterator[BlobInfo]:
        for info in await asyncio.to_thread(lambda: list(self._walk())):
            yield info

    def _walk(self) -> Iterator[BlobInfo]:
        for tenant_dir in self.root.iterdir():
            if tenant_dir.name.startswith(".") or not tenant_dir.is_dir():
                continue
            for path in tenant_dir.glob("*/*"):
                with contextlib.suppress(FileNotFoundError):
                    yield BlobInfo(tenant_dir.name, path.name, path.stat().st_mtime)


class S3BlobStore:
    """Blobs as objects of an S3-compatible bucket, through boto3 (its blocking calls run in
    worker threads)."""

    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None, spool: Path) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url)
        self.spool_dir = spool
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    def _object(self, tenant_id: str, sha256: str) -> str:
        key = _key(tenant_id, sha256)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def put(self, tenant_id: str, sha256: str, source: Path) -> None:
        try:
            # A second upload of the same content rewrites the object, which also refreshes
            # its time (see FileBlobStore._put).
            await asyncio.to_thread(
                self.client.upload_file, str(source), self.bucket, self._object(tenant_id, sha256)
            )
        finally:
            await asyncio.to_thread(source.unlink, missing_ok=True)

    async def read(self, tenant_id: str, sha256: str, start: int, end: int) -> AsyncIterator[bytes]:
        from botocore.exceptions import ClientError

        try:
            answer = await asyncio.to_thread(
                self.client.get_object,
                Bucket=self.bucket,
                Key=self._object(tenant_id, sha256),
                Range=f"bytes={start}-{end}",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobMissing(self._object(tenant_id, sha256)) from exc
            raise
        body = answer["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK):
                yield chunk
        finally:
            body.close()

    async def exists(self, tenant_id: str, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(
                self.client.head_object, Bucket=self.bucket, Key=self._object(tenant_id, sha256)
            )
        except ClientError:
            return False
        return True

    async def delete(self, tenant_id: str, sha256: str) -> None:
        await asyncio.to_thread(
            self.client.delete_object, Bucket=self.bucket, Key=self._object(tenant_id, sha256)
        )

    async def list(self) -> AsyncIterator[BlobInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else ""
        )
        iterator = iter(pages)
        while True:
            page = await asyncio.to_thread(next, iterator, None)
            if page is None:
                return
            for item in page.get("Contents", []):
                parts = item["Key"][len(self.prefix) + 1 if self.prefix else 0 :].split("/")
                if len(parts) == 3:
                    yield BlobInfo(parts[0], parts[2], item["LastModified"].timestamp())


def open_store(
    url: str, *, endpoint_url: str | None = None, spool: Path | None = None
) -> BlobStore:
    """The store a blob URL names: `file:///path` or `s3://bucket/prefix`."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FileBlobStore(Path(parsed.netloc + parsed.path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"no bucket in blob URL {url!r}")
        return S3BlobStore(
            parsed.netloc,
            parsed.path,
            endpoint_url=endpoint_url,
            spool=spool or Path(tempfile.gettempdir()) / "ticketing-spool",
        )
    raise ValueError(f"unsupported blob URL {url!r}: use file:///path or s3://bucket/prefix")


def stale_spool_files(spool_dir: Path, older_than: float) -> list[Path]:
    """Spooled uploads left behind by a process that died mid-upload."""
    cutoff = time.time() - older_than
    found = []
    for path in spool_dir.glob("upload-*"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                found.append(path)
    return found
