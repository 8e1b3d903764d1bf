"""Attachments: receive an upload as a stream, bind uploads to tickets, serve ranges, collect
garbage."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from starlette.requests import ClientDisconnect, Request

from ticketing.attachments import repository
from ticketing.attachments.content import (
    FILE_TYPES,
    AttachmentPolicy,
    ContentCheck,
    FileType,
    clean_name,
    extension,
)
from ticketing.attachments.storage import BlobMissing, BlobStore, stale_spool_files
from ticketing.attachments.validation import Requested
from ticketing.auth.access import Access
from ticketing.auth.tokens import Principal
from ticketing.kit.errors import InputValidationFailure, PayloadTooLarge, TicketingError
from ticketing.kit.numbers import parse_digits
from ticketing.kit.requests import request_id_var
from ticketing.kit.time import isoformat, utcnow
from ticketing.models import Attachment

log = logging.getLogger("ticketing.attachments")

# Room for the multipart framing around the file (boundaries, part headers, small fields).
MULTIPART_SLACK = 64 * 1024
# Bytes of parts other than `file`, which are read and ignored.
MAX_OTHER_PARTS = 64 * 1024
_GC_LOCK = 7_311_842_006


def uploader(principal: Principal) -> str:
    """Who an upload belongs to: the token's subject (its username when it has none)."""
    return (principal.subject or principal.username)[:320]


def public(row: Any) -> dict[str, Any]:
    """An attachment's metadata as the API shows it (also stored in the ticket's map)."""
    return {
        "id": str(row.id),
        "name": row.name,
        "size": row.size,
        "contentType": row.content_type,
        "sha256": row.sha256,
        "createdAt": isoformat(row.created_at),
    }


def _file_problem(message: str) -> InputValidationFailure:
    return InputValidationFailure({"file": [message]}, "The uploaded file was refused")


@dataclass
class Spooled:
    """An upload received whole into a local temporary file, checked against its type."""

    path: Path
    name: str
    file_type: FileType
    size: int
    sha256: str


@dataclass
class _MultipartReceiver:
    """What the streaming multipart parser's callbacks share for uploads and forms: a part's
    headers are gathered, and a file part is spooled to a temporary file, hashed, counted
    and checked against its type as it arrives. Subclasses say what the parts mean."""

    policy: AttachmentPolicy
    spool_dir: Path
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    path: Path | None = None
    handle: IO[bytes] | None = None
    file_type: FileType | None = None
    check: ContentCheck | None = None
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        raise NotImplementedError

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        raise NotImplementedError

    def on_part_end(self) -> None:
        raise NotImplementedError

    def _disposition(self) -> dict[bytes, bytes]:
        """The parameters of the part's Content-Disposition (`name`, `filename`)."""
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        return params

    def _start_file(self, raw_name: bytes) -> str | None:
        """Opens the spool file of a file part named `raw_name`; why it is refused instead
        (a name that is empty once cleaned, a type the policy does not allow)."""
        name = clean_name(raw_name.decode("utf-8", errors="replace"))
        if not name:
            return "The file name is empty once path and control characters go"
        ext = extension(name)
        if ext not in self.policy.allowed_types:
            allowed = ", ".join(self.policy.allowed_types)
            return f"File type {ext or '(none)'} is not allowed; allowed: {allowed}"
        self.name = name
        self.file_type = FILE_TYPES[ext]
        self.check = ContentCheck(self.file_type)
        self.size = 0
        self.digest = hashlib.sha256()
        fd, temp = tempfile.mkstemp(prefix="upload-", dir=self.spool_dir)
        self.path = Path(temp)
        self.handle = os.fdopen(fd, "wb")
        return None

    def _write_file(self, chunk: bytes) -> bool:
        """Adds a chunk to the open file part; False (nothing written) when the file would
        exceed the policy's max_size."""
        assert self.handle is not None and self.check is not None
        self.size += len(chunk)
        if self.size > self.policy.max_size:
            return False
        self.digest.update(chunk)
        self.check.feed(chunk)
        # A plain write: the spool is local disk, and the parser's callbacks are synchronous.
        self.handle.write(chunk)
        return True

    def _drop_file(self) -> None:
        """Closes and removes the spool file of the file part being received, if any."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


@dataclass
class _Receiver(_MultipartReceiver):
    """An upload: the part named `file` goes to the spool; other parts are skipped."""

    in_file: bool = False
    other_bytes: int = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self.in_file = False

    def on_headers_finished(self) -> None:
        params = self._disposition()
        if params.get(b"name") != b"file":
            return
        if self.path is not None:
            raise _file_problem("Send one part named file per upload")
        raw_name = params.get(b"filename")
        if raw_name is None:
            raise _file_problem("The part named file must be a file, with a file name")
        problem = self._start_file(raw_name)
        if problem:
            raise _file_problem(problem)
        self.in_file = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self.in_file:
            self.other_bytes += end - start
            if self.other_bytes > MAX_OTHER_PARTS:
                raise _file_problem(
                    f"Parts other than file must not exceed {MAX_OTHER_PARTS} bytes"
                )
            return
        if not self._write_file(data[start:end]):
            raise PayloadTooLarge(f"Files must not exceed {self.policy.max_size} bytes")

    def on_part_end(self) -> None:
        if self.in_file and self.handle is not None:
            self.handle.close()
        self.in_file = False


async def receive_upload(request: Request, *, policy: AttachmentPolicy, spool_dir: Path) -> Spooled:
    """Reads a multipart/form-data body as it streams in; the part `file` lands in a
    temporary file. Refuses (and removes the partial file) as soon as something is wrong:
    not multipart, no or a second `file` part, a type not allowed, over the size limit."""
    media_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise _file_problem("Send the file as multipart/form-data, in a part named file")
    declared = request.headers.get("content-length")
    if (parse_digits(declared) or 0) > policy.max_size + MULTIPART_SLACK:
        raise PayloadTooLarge(f"Files must not exceed {policy.max_size} bytes")
    receiver = _Receiver(policy, spool_dir)
    try:
        parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if receiver.path is None or receiver.file_type is None or receiver.check is None:
            raise _file_problem("A part named file is required")
        if receiver.handle is not None and not receiver.handle.closed:
            raise _file_problem("The multipart body ends inside the file")
        problem = receiver.check.finish(receiver.size)
        if problem:
            raise _file_problem(problem)
    except MultipartParseError as exc:
        receiver._drop_file()
        raise _file_problem(f"The multipart body is malformed: {exc}") from None
    except ClientDisconnect:
        receiver._drop_file()
        raise _file_problem("The upload was interrupted") from None
    except BaseException:
        receiver._drop_file()
        raise
    return Spooled(
        path=receiver.path,
        name=receiver.name,
        file_type=receiver.file_type,
        size=receiver.size,
        sha256=receiver.digest.hexdigest(),
    )


async def store_upload(
    session: AsyncSession, *, access: Access, store: BlobStore, spooled: Spooled
) -> dict[str, Any]:
    """Stores a received upload's blob, then its row (in the caller's transaction): a row
    never names a blob that is not stored whole, nor one the garbage collector removes
    (the blob is locked until the row is committed: repository.lock_blob)."""
    await repository.lock_blob(session, tenant_id=access.tenant_id, sha256=spooled.sha256)
    await store.put(str(access.tenant_id), spooled.sha256, spooled.path)
    row = Attachment(
        tenant_id=access.tenant_id,
        id=uuid.uuid4(),
        uploader=uploader(access.principal),
        name=spooled.name,
        size=spooled.size,
        content_type=spooled.file_type.content_type,
        sha256=spooled.sha256,
        created_at=utcnow(),
        ticket_id=None,
        field_key=None,
    )
    await repository.insert_attachment(session, attachment=row)
    return public(row)


class FileBinding:
    """Binds the uploads a create or update names to its ticket, in the ticket's own
    transaction: `claim` checks and locks them and gives the metadata to store on the
    ticket; `bind` marks them as the ticket's, and fails (rolling back the write) if
    another request took one meanwhile."""

    def __init__(self, access: Access, requested: Requested) -> None:
        self.tenant_id = access.tenant_id
        self.uploader = uploader(access.principal)
        self.requested = requested

    def _ids(self, key: str) -> list[uuid.UUID]:
        return [uuid.UUID(i) for i in self.requested[key]]

    async def claim(self, db: AsyncSession | AsyncConnection) -> dict[str, list[dict[str, Any]]]:
        """Checks every requested id is an unbound upload of this caller; their metadata."""
        wanted = [i for key in self.requested for i in self._ids(key)]
        rows = {
            row.id: row
            for row in await repository.lock_uploads(db, tenant_id=self.tenant_id, ids=wanted)
        }
        failures: dict[str, list[str]] = {}
        files: dict[str, list[dict[str, Any]]] = {}
        for key in self.requested:
            for upload_id in self._ids(key):
                row = rows.get(upload_id)
                # Another caller's upload is reported like a missing one: ids are not probes.
                if row is None or row.uploader != self.uploader:
                    failures.setdefault(f"attachments.{key}", []).append(
                        f"Attachment {upload_id} not found"
                    )
                elif row.ticket_id is not None:
                    failures.setdefault(f"attachments.{key}", []).append(
                        f"Attachment {upload_id} is already used"
                    )
                else:
                    files.setdefault(key, []).append(public(row))
        if failures:
            raise InputValidationFailure(failures)
        return files

    async def bind(self, db: AsyncSession | AsyncConnection, ticket_id: uuid.UUID) -> None:
        """Marks the claimed uploads as the ticket's."""
        for key in self.requested:
            ids = self._ids(key)
            bound = await repository.bind_uploads(
                db,
                tenant_id=self.tenant_id,
                ids=ids,
                uploader=self.uploader,
                ticket_id=ticket_id,
                field_key=key,
            )
            if bound != len(ids):
                raise InputValidationFailure(
                    {f"attachments.{key}": ["An attachment is already used"]}
                )


class RangeNotSatisfiable(TicketingError):
    """A Range header that selects no byte of the file."""

    status = 416
    code = "RANGE_NOT_SATISFIABLE"
    default_message = "The requested range is not satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}"}


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) bytes a Range header asks for; None for the whole file (no header,
    a unit other than bytes, or several ranges, which are answered whole)."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    first_text, last_text = first_text.strip(), last_text.strip()
    first_number, last_number = parse_digits(first_text), parse_digits(last_text)
    if (
        not dash
        or (first_number is None and first_text != "")
        or (last_number is None and last_text != "")
    ):
        return None
    if first_number is None:
        if last_number is None or last_number == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - last_number), size - 1
    first = first_number
    last = min(last_number, size - 1) if last_number is not None else size - 1
    if first >= size or (last_number is not None and last_number < first):
        raise RangeNotSatisfiable(size)
    return first, last


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback name and the exact one as RFC 5987 filename*."""
    from urllib.parse import quote

    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@dataclass
class GcReport:
    """What one garbage collection removed."""

    ran: bool = True
    uploads: int = 0
    blobs: int = 0
    spooled: int = 0

    def as_dict(self) -> Mapping[str, Any]:
        return {
            "ran": self.ran,
            "uploads": self.uploads,
            "blobs": self.blobs,
            "spooled": self.spooled,
        }


async def collect_garbage(engine: AsyncEngine, store: BlobStore, *, ttl: float) -> GcReport:
    """Removes uploads never bound to a ticket older than `ttl` seconds, blobs no upload
    names (older than `ttl`, so that an upload whose row is being written keeps its blob),
    and spooled files of uploads cut off mid-way. One process at a time on PostgreSQL (an
    advisory lock; the others skip); each step is idempotent anyway.

    `engine` works across tenants: connect as the tables' owner (as `migrate` does)."""
    report = GcReport()
    async with engine.connect() as lock_conn:
        if engine.dialect.name == "postgresql":
            locked = await lock_conn.scalar(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": _GC_LOCK}
            )
            await lock_conn.commit()
            if not locked:
                return GcReport(ran=False)
        try:
            now = utcnow()
            async with engine.begin() as conn:
                report.uploads = await repository.delete_unbound(
                    conn, created_before=now - timedelta(seconds=ttl)
                )
            cutoff = time.time() - ttl
            async for blob in store.list():
                if blob.modified >= cutoff:
                    continue
                try:
                    tenant_id = uuid.UUID(blob.tenant_id)
                except ValueError:
                    continue
                # Checked and removed under the blob's lock, which an upload of the same
                # content holds from storing it until its row is committed.
                async with engine.begin() as conn:
                    await repository.lock_blob(conn, tenant_id=tenant_id, sha256=blob.sha256)
                    referenced = await repository.is_referenced(
                        conn, tenant_id=tenant_id, sha256=blob.sha256
                    )
                    if not referenced:
                        await store.delete(blob.tenant_id, blob.sha256)
                        report.blobs += 1
            for path in stale_spool_files(store.spool_dir, ttl):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    report.spooled += 1
        finally:
            if engine.dialect.name == "postgresql":
                await lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _GC_LOCK})
                await lock_conn.commit()
    log.info("garbage collected", extra=dict(report.as_dict()))
    return report


# --- forms with files (the portal) -------------------------------------------------------

# Text of a form with files: its fields' values together.
MAX_FORM_TEXT = 1024 * 1024
# Files one form may carry in all.
MAX_FORM_FILES = 50


@dataclass
class ReceivedForm:
    """A multipart form received whole: its text values, and per file control the files
    that passed the upload checks (spooled) and the refusals of those that did not, in the
    attachments API's words."""

    values: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[Spooled]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def discard(self) -> None:
        """Removes the spooled files (stored ones are in the blob store by then)."""
        for spooled in (s for files in self.files.values() for s in files):
            spooled.path.unlink(missing_ok=True)


@dataclass
class _FormReceiver(_MultipartReceiver):
    """A form: a part with a file name whose name is one of `file_parts` is received as an
    upload is (type, size and content checked as it arrives) and refused on its own, the
    others go on; other parts are text."""

    file_parts: frozenset[str] = field(kw_only=True)
    form: ReceivedForm = field(default_factory=ReceivedForm)
    part: str = ""
    kind: str = "skip"  # "text", "file" or "skip"
    text: bytearray = field(default_factory=bytearray)
    text_bytes: int = 0
    file_count: int = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self.kind = "skip"
        self.text.clear()

    def on_headers_finished(self) -> None:
        params = self._disposition()
        self.part = params.get(b"name", b"").decode("utf-8", errors="replace")
        raw_name = params.get(b"filename")
        if raw_name is None:
            self.kind = "text"
            return
        if self.part not in self.file_parts:
            return
        if not raw_name:  # a file control left empty
            return
        self.file_count += 1
        if self.file_count > MAX_FORM_FILES:
            return self._refuse(f"A form may carry at most {MAX_FORM_FILES} files")
        problem = self._start_file(raw_name)
        if problem:
            return self._refuse(problem)
        self.kind = "file"

    def _refuse(self, message: str) -> None:
        self.form.problems.setdefault(self.part, []).append(message)
        self._drop_file()
        self.kind = "skip"

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.kind == "text":
            self.text_bytes += end - start
            if self.text_bytes > MAX_FORM_TEXT:
                raise InputValidationFailure(
                    {"body": [f"The form's text must not exceed {MAX_FORM_TEXT} bytes"]}
                )
            self.text += data[start:end]
        elif self.kind == "file" and not self._write_file(data[start:end]):
            self._refuse(f"Files must not exceed {self.policy.max_size} bytes")

    def on_part_end(self) -> None:
        if self.kind == "text":
            try:
                value = bytes(self.text).decode("utf-8")
            except UnicodeDecodeError:
                raise InputValidationFailure({"body": ["The form could not be read"]}) from None
            self.form.values.setdefault(self.part, []).append(value)
        elif self.kind == "file":
            assert self.handle is not None and self.check is not None
            assert self.path is not None and self.file_type is not None
            self.handle.close()
            self.handle = None
            problem = self.check.finish(self.size)
            if problem:
                return self._refuse(problem)
            spooled = Spooled(
                self.path, self.name, self.file_type, self.size, self.digest.hexdigest()
            )
            self.form.files.setdefault(self.part, []).append(spooled)
            self.path = None
        self.kind = "skip"


async def receive_form(
    request: Request,
    *,
    policy: AttachmentPolicy,
    spool_dir: Path,
    file_parts: frozenset[str],
    max_bytes: int,
) -> ReceivedForm:
    """Reads a multipart/form-data form as it streams in: text values, and the files of the
    parts named in `file_parts`, each checked as `POST /attachments` checks an upload. A
    refused file is reported under its part and the rest of the form is read; a body over
    `max_bytes` is refused whole (413), a malformed one too (400)."""
    media_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise InputValidationFailure({"body": ["Send the form as multipart/form-data"]})
    declared = request.headers.get("content-length")
    too_large = PayloadTooLarge(f"The form must not exceed {max_bytes} bytes")
    if (parse_digits(declared) or 0) > max_bytes:
        raise too_large
    receiver = _FormReceiver(policy, spool_dir, file_parts=file_parts)
    received = 0
    try:
        parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise too_large
            parser.write(chunk)
        parser.finalize()
        if receiver.handle is not None:
            raise InputValidationFailure({"body": ["The multipart body ends inside a file"]})
    except MultipartParseError as exc:
        receiver._drop_file()
        receiver.form.discard()
        malformed = f"The multipart body is malformed: {exc}"
        raise InputValidationFailure({"body": [malformed]}) from None
    except ClientDisconnect:
        receiver._drop_file()
        receiver.form.discard()
        raise InputValidationFailure({"body": ["The form was interrupted"]}) from None
    except BaseException:
        receiver._drop_file()
        receiver.form.discard()
        raise
    return receiver.form


class ContentMissing(TicketingError):
    """An attachment whose bytes are not in the blob store (removed outside the service)."""

    code = "ATTACHMENT_CONTENT_MISSING"
    default_message = "The attachment's content is missing from storage"


async def open_content(
    blobs: BlobStore, tenant_id: str, sha256: str, first: int, last: int
) -> AsyncIterator[bytes]:
    """Bytes `first` to `last` of a blob, its first chunk already read: a blob that is not
    stored fails the request with an error answer (500, logged with the request id) instead
    of a 200 whose body breaks off."""
    chunks = blobs.read(tenant_id, sha256, first, last)
    try:
        head = await anext(chunks, None)
    except BlobMissing as exc:
        log.error("attachment content missing (request %s): %s", request_id_var.get(), exc)
        raise ContentMissing() from exc

    async def rest() -> AsyncIterator[bytes]:
        if head is not None:
            yield head
        async for chunk in chunks:
            yield chunk

    return rest()
