"""HTTP endpoints for tickets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ticketing.auth.access import (
    Access,
    Action,
    admit,
    admit_before_body,
    app_state,
    authenticate,
    authorize,
    requested_tenant,
)
from ticketing.auth.reads import run_read
from ticketing.catalog.service import StaleCatalog
from ticketing.kit.db import transaction
from ticketing.kit.errors import ServiceUnavailable
from ticketing.kit.requests import query_params, read_body
from ticketing.kit.responses import JsonResponse
from ticketing.kit.schemas import (
    CATALOG_QUERY,
    ERROR_RESPONSES,
    REF_TEMPLATE,
    TICKETING_HEADERS,
    ErrorEnvelope,
    body_schema,
)
from ticketing.tickets import comments, idempotency, lifecycle, listing, service
from ticketing.tickets.public import etag_header, ticket_public
from ticketing.tickets.schemas import (
    CommentCreate,
    CommentResponse,
    CommentsResponse,
    DeleteResponse,
    TicketCountResponse,
    TicketCreate,
    TicketCreated,
    TicketEnvelope,
    TicketHistoryResponse,
    TicketListRequest,
    TicketListResponse,
    TicketUpdate,
)
from ticketing.tickets.validation import require_catalog_query

_T = TypeVar("_T")

router = APIRouter(prefix="/api/v2/ticketing", tags=["tickets"])

_CREATE_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "teamId",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": "The team slug that owns the ticket, e.g. james.",
        },
        {
            "name": "itemTypeId",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": "The id of the ticket type (GET /ticket-type), e.g. 16910.",
        },
        *TICKETING_HEADERS,
        {
            "name": "issupportrequest",
            "in": "header",
            "required": False,
            "schema": {"type": "boolean"},
            "description": "Whether this is a support-related request.",
        },
        *CATALOG_QUERY,
    ],
    "requestBody": body_schema(TicketCreate),
}


@router.post(
    "/ticket/create/{teamId}/{itemTypeId}",
    summary="Create Ticket",
    response_model=TicketCreated,
    responses={
        **ERROR_RESPONSES,
        403: {"model": ErrorEnvelope, "description": "Roles may not use the team or item type"},
        404: {
            "description": "Tenant not found (JSON), or unknown teamId / itemTypeId (HTML)",
            "content": {
                "application/json": {
                    "schema": {"$ref": REF_TEMPLATE.format(model="ErrorEnvelope")}
                },
                "text/html": {"schema": {"type": "string"}},
            },
        },
    },
    openapi_extra=_CREATE_OPENAPI,
)
async def create_ticket(request: Request) -> Response:
    """Creates a ticket from a service catalog offer."""
    # Path parameters are read here rather than declared: this is the hot path, and they
    # need no conversion (they are documented in _CREATE_OPENAPI).
    team_id = request.path_params["teamId"]
    item_type_id = request.path_params["itemTypeId"]
    state = app_state(request)
    principal = await authenticate(request)
    # The seed's one message for a 400 of create, whichever header or field failed.
    tenant_id = requested_tenant(request, principal, message=None)

    async def load_access() -> Access:
        async with transaction(state.sessionmaker) as session:
            catalog = await state.catalogs.get(session, tenant_id=tenant_id)
        return authorize(principal, tenant_id, catalog, Action.CREATE)

    # The cached catalog is used as it is; the insert checks that it is still current, and
    # when it is not, the request is validated again against the tenant's new configuration.
    cached = state.catalogs.peek(tenant_id)
    access = authorize(principal, tenant_id, cached, Action.CREATE) if cached else None
    access = access or await load_access()
    # Read once the caller may create, and with no transaction open while it comes.
    raw_body = await read_body(request)

    async def create(claim: idempotency.Claim | None) -> idempotency.Answer:
        current = access
        for _attempt in range(3):
            try:
                ticket = await service.create_ticket(
                    state.engine,
                    statements=state.statements,
                    access=current,
                    team_id=team_id,
                    item_type_id=item_type_id,
                    headers=request.headers,
                    query=query_params(request),
                    raw_body=raw_body,
                    idempotency=(claim.caller, claim.key) if claim else None,
                )
            except StaleCatalog:
                state.catalogs.forget(tenant_id)
                current = await load_access()
                continue
            body = idempotency.created_body(ticket)
            return idempotency.Answer(200, body, etag_header(ticket["etag"]))
        raise ServiceUnavailable("The tenant's configuration is being changed; retry", 1)

    return await _answer_once(request, access, raw_body, create)


async def _answer_once(
    request: Request,
    access: Access,
    raw_body: bytes,
    action: Callable[[idempotency.Claim | None], Awaitable[idempotency.Answer]],
) -> Response:
    """Runs `action` once per Idempotency-Key (every time when the request has none) and
    answers with its result."""
    key = idempotency.requested_key(request)
    if key is None:
        return _answer(await action(None))
    answer, replayed = await idempotency.run_once(
        app_state(request).sessionmaker,
        access=access,
        key=key,
        request_hash=idempotency.fingerprint(request, raw_body),
        action=action,
    )
    return _answer(answer, replayed=replayed)


def _answer(answer: idempotency.Answer, *, replayed: bool = False) -> Response:
    headers = {"ETag": answer.etag} if answer.etag else {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JsonResponse(answer.body, status_code=answer.status_code, headers=headers)


def _check_query(request: Request) -> None:
    require_catalog_query(request.query_params)


def _body_openapi(
    model: type[BaseModel], *extra: dict[str, Any], required: bool = True
) -> dict[str, Any]:
    return {
        "parameters": [*TICKETING_HEADERS, *CATALOG_QUERY, *extra],
        "requestBody": {**body_schema(model), "required": required},
    }


_PLAIN_OPENAPI: dict[str, Any] = {"parameters": [*TICKETING_HEADERS, *CATALOG_QUERY]}
_TICKET_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    404: {"model": ErrorEnvelope, "description": "Tenant not found, or no such ticket"},
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": 'The current etag (quoted or bare). A weak etag (W/"…") never '
    "satisfies a change; `*` matches whatever version is current.",
}


@router.get(
    "/ticket/{objectId}",
    summary="Get a ticket",
    response_model=TicketEnvelope,
    responses={
        **_TICKET_ERRORS,
        304: {"description": "If-None-Match names the current etag"},
    },
    openapi_extra={
        "parameters": [
            *TICKETING_HEADERS,
            *CATALOG_QUERY,
            {
                **_IF_MATCH,
                "name": "If-None-Match",
                "description": "An etag (quoted, bare or weak) or `*`: 304 while it is current.",
            },
        ]
    },
)
async def get_ticket(request: Request, objectId: str) -> Response:
    """Gets one ticket by its display ID, with its etag in the ETag header."""

    async def read(session: AsyncSession) -> dict[str, Any]:
        access = await admit(request, session, Action.READ)
        return await lifecycle.find_ticket(session, access=access, object_id=objectId)

    ticket = await run_read(request, read)
    _check_query(request)
    etag = etag_header(ticket["etag"])
    if lifecycle.not_modified(request.headers.get("if-none-match"), ticket):
        return Response(status_code=304, headers={"ETag": etag})
    public = ticket_public(ticket)
    return JsonResponse(
        {"success": True, "status": 200, "objectId": objectId, "ticket": public},
        headers={"ETag": etag},
    )


@router.patch(
    "/ticket/update/{objectId}",
    summary="Update a ticket",
    response_model=TicketEnvelope,
    responses={
        **_TICKET_ERRORS,
        409: {"model": ErrorEnvelope, "description": "ETAG_MISMATCH: the body's etag is stale"},
        412: {"model": ErrorEnvelope, "description": "If-Match names a stale etag"},
        428: {"model": ErrorEnvelope, "description": "No etag given"},
    },
    openapi_extra=_body_openapi(TicketUpdate, _IF_MATCH),
)
async def update_ticket(request: Request, objectId: str) -> Response:
    """Changes summary, field values, status or watchers, if the etag sent is current."""
    state = app_state(request)
    async with transaction(state.sessionmaker) as session:
        access = await admit(request, session, Action.UPDATE)
    _check_query(request)
    raw_body = await read_body(request)

    async def apply(_claim: idempotency.Claim | None) -> idempotency.Answer:
        async with transaction(state.sessionmaker) as session:
            ticket = await lifecycle.update_ticket(
                session,
                access=access,
                object_id=objectId,
                raw_body=raw_body,
                headers=request.headers,
            )
        body = {
            "success": True,
            "message": "ticket updated successfully",
            "status": 200,
            "objectId": objectId,
            "ticket": ticket,
        }
        return idempotency.Answer(200, body, etag_header(ticket["etag"]))

    return await _answer_once(request, access, raw_body, apply)


@router.delete(
    "/ticket/{objectId}",
    summary="Delete a ticket (soft)",
    response_model=DeleteResponse,
    responses={
        **_TICKET_ERRORS,
        412: {"model": ErrorEnvelope, "description": "If-Match names a stale etag"},
        428: {"model": ErrorEnvelope, "description": "No If-Match header"},
    },
    openapi_extra={
        "parameters": [*TICKETING_HEADERS, *CATALOG_QUERY, {**_IF_MATCH, "required": True}]
    },
)
async def delete_ticket(request: Request, objectId: str) -> Response:
    """Soft-deletes a ticket (agents and admins); its display ID is never reused."""
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.DELETE)
        _check_query(request)
        await lifecycle.delete_ticket(
            session, access=access, object_id=objectId, if_match=request.headers.get("if-match")
        )
    return JsonResponse(
        {
            "success": True,
            "message": "ticket deleted successfully",
            "status": 200,
            "objectId": objectId,
        }
    )


@router.post(
    "/ticket/list",
    summary="List tickets",
    response_model=TicketListResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=_body_openapi(TicketListRequest, required=False),
)
async def list_tickets(request: Request) -> Response:
    """A page of tickets matching search and filter, and the total that match."""
    page = await _read_listing(request, listing.list_tickets)
    return JsonResponse({"success": True, "status": 200, "data": page})


@router.post(
    "/ticket/count",
    summary="Count tickets",
    response_model=TicketCountResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=_body_openapi(TicketListRequest, required=False),
)
async def count_tickets(request: Request) -> Response:
    """How many tickets match the filter."""
    count = await _read_listing(request, listing.count_tickets)
    return JsonResponse({"success": True, "status": 200, "data": {"count": count}})


async def _read_listing(request: Request, query: Callable[..., Awaitable[_T]]) -> _T:
    """Runs a list or count query for the admitted caller on the request's body."""
    await admit_before_body(request, Action.READ)
    raw_body = await read_body(request)

    async def read(session: AsyncSession) -> _T:
        access = await admit(request, session, Action.READ)
        _check_query(request)
        return await query(
            session,
            access=access,
            raw_body=raw_body,
            content_type=request.headers.get("content-type"),
        )

    return await run_read(request, read)


@router.get(
    "/ticket/{objectId}/history",
    summary="A ticket's change history",
    response_model=TicketHistoryResponse,
    responses=_TICKET_ERRORS,
    openapi_extra=_PLAIN_OPENAPI,
)
async def ticket_history(request: Request, objectId: str) -> Response:
    """Every change in order: version, when, who, and each field's old and new value."""

    async def read(session: AsyncSession) -> list[dict[str, Any]]:
        access = await admit(request, session, Action.READ)
        _check_query(request)
        return await lifecycle.ticket_history(session, access=access, object_id=objectId)

    entries = await run_read(request, read)
    return JsonResponse(
        {"success": True, "status": 200, "objectId": objectId, "data": {"value": entries}}
    )


@router.post(
    "/ticket/{objectId}/comments",
    summary="Comment on a ticket",
    response_model=CommentResponse,
    responses=_TICKET_ERRORS,
    openapi_extra=_body_openapi(CommentCreate),
)
async def add_comment(request: Request, objectId: str) -> Response:
    """Adds a comment (sanitized HTML); the ticket's etag does not change."""
    await admit_before_body(request, Action.COMMENT)
    raw_body = await read_body(request)
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.COMMENT)
        _check_query(request)
        comment = await comments.add_comment(
            session,
            access=access,
            object_id=objectId,
            raw_body=raw_body,
            content_type=request.headers.get("content-type"),
        )
    return JsonResponse(
        {
            "success": True,
            "message": "comment added successfully",
            "status": 200,
            "comment": comment,
        }
    )


@router.get(
    "/ticket/{objectId}/comments",
    summary="A ticket's comments",
    response_model=CommentsResponse,
    responses=_TICKET_ERRORS,
    openapi_extra=_PLAIN_OPENAPI,
)
async def list_comments(request: Request, objectId: str) -> Response:
    """The ticket's comments, oldest first; internal ones for agents and admins only."""

    async def read(session: AsyncSession) -> list[dict[str, Any]]:
        access = await admit(request, session, Action.READ)
        _check_query(request)
        return await comments.list_comments(session, access=access, object_id=objectId)

    found = await run_read(request, read)
    return JsonResponse(
        {"success": True, "status": 200, "data": {"value": found, "count": len(found)}}
    )
