"""HTTP endpoints for attachments: upload, and download of a ticket's files."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from ticketing.attachments import repository, service
from ticketing.attachments.schemas import UPLOAD_BODY, AttachmentUploaded
from ticketing.auth.access import Action, admit, app_state
from ticketing.kit.db import transaction
from ticketing.kit.errors import NotFound
from ticketing.kit.responses import JsonResponse
from ticketing.kit.schemas import CATALOG_QUERY, ERROR_RESPONSES, TICKETING_HEADERS, ErrorEnvelope
from ticketing.tickets import lifecycle
from ticketing.tickets.validation import require_catalog_query

router = APIRouter(prefix="/api/v2/ticketing", tags=["attachments"])


@router.post(
    "/attachments",
    summary="Upload a file",
    response_model=AttachmentUploaded,
    responses={
        **ERROR_RESPONSES,
        413: {"model": ErrorEnvelope, "description": "The file exceeds the tenant's max_size"},
    },
    openapi_extra={"parameters": [*TICKETING_HEADERS, *CATALOG_QUERY], "requestBody": UPLOAD_BODY},
)
async def upload_attachment(request: Request) -> Response:
    """Receives one file (multipart part `file`) as a stream; its id goes in a create's or
    update's `attachments`."""
    state = app_state(request)
    async with transaction(state.sessionmaker) as session:
        access = await admit(request, session, Action.UPLOAD)
    require_catalog_query(request.query_params)
    spooled = await service.receive_upload(
        request, policy=access.catalog.attachments, spool_dir=state.blobs.spool_dir
    )
    try:
        async with transaction(state.sessionmaker) as session:
            attachment = await service.store_upload(
                session, access=access, store=state.blobs, spooled=spooled
            )
    finally:
        spooled.path.unlink(missing_ok=True)
    return JsonResponse({"success": True, "attachment": attachment})


_FILE_HEADERS = {
    name: {"schema": {"type": "string"}}
    for name in ("ETag", "Content-Disposition", "X-Content-Type-Options", "Accept-Ranges")
}
# A file is answered with the Content-Type it was stored with, which can be any: `*/*` says
# so, and application/octet-stream (listed first) is the concrete type that client
# generators know to read as bytes (with `*/*` alone they drop the answer).
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_FILE_CONTENT = {"application/octet-stream": _BINARY, "*/*": _BINARY}


@router.get(
    "/ticket/{objectId}/attachments/{attachmentId}",
    summary="Download a file of a ticket",
    # Not JSON: without this the framework adds an application/json body to the 200.
    response_class=Response,
    responses={
        **ERROR_RESPONSES,
        200: {
            "description": "The file's exact bytes, with its stored Content-Type",
            "content": _FILE_CONTENT,
            "headers": _FILE_HEADERS,
        },
        206: {
            "description": "The part of the file the Range header asks for, with the file's "
            "stored Content-Type",
            "content": _FILE_CONTENT,
            "headers": {**_FILE_HEADERS, "Content-Range": {"schema": {"type": "string"}}},
        },
        304: {"description": "If-None-Match names the file's ETag"},
        404: {"model": ErrorEnvelope, "description": "Tenant, ticket or file not found"},
        416: {"model": ErrorEnvelope, "description": "The Range selects no byte of the file"},
    },
    openapi_extra={
        "parameters": [
            *TICKETING_HEADERS,
            *CATALOG_QUERY,
            {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}},
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            },
        ]
    },
)
async def download_attachment(request: Request, objectId: str, attachmentId: str) -> Response:
    """The file's bytes (a Range of them: 206); visible to whoever may read the ticket."""
    state = app_state(request)
    async with transaction(state.sessionmaker) as session:
        access = await admit(request, session, Action.READ)
        ticket = await lifecycle.find_ticket(session, access=access, object_id=objectId)
        row = None
        attachment_id = _uuid_or_none(attachmentId)
        if attachment_id is not None:
            row = await repository.get_bound(
                session,
                tenant_id=access.tenant_id,
                ticket_id=ticket["id"],
                attachment_id=attachment_id,
            )
    if row is None:
        raise NotFound(f"Attachment {attachmentId[:100]} not found on ticket {objectId}")
    require_catalog_query(request.query_params)
    etag = f'"{row.sha256}"'
    headers: dict[str, Any] = {
        "ETag": etag,
        "Content-Disposition": service.content_disposition(row.name),
        "X-Content-Type-Options": "nosniff",
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
    }
    if _names_etag(request.headers.get("if-none-match"), row.sha256):
        return Response(status_code=304, headers=headers)
    selected = service.byte_range(request.headers.get("range"), row.size)
    first, last = selected or (0, row.size - 1)
    headers["Content-Length"] = str(last - first + 1)
    if selected is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{row.size}"
    return StreamingResponse(
        await service.open_content(state.blobs, str(access.tenant_id), row.sha256, first, last),
        status_code=206 if selected is not None else 200,
        headers=headers,
        media_type=row.content_type,
    )


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _names_etag(header: str | None, sha256: str) -> bool:
    """Whether an If-None-Match header names the file's ETag (or is `*`)."""
    if header is None:
        return False
    values = [part.strip().removeprefix("W/").strip('"') for part in header.split(",")]
    return "*" in values or sha256 in values
