"""HTTP endpoints for ticket relations and merges."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ticketing.auth.access import Action, admit, admit_before_body, app_state
from ticketing.kit.db import transaction
from ticketing.kit.requests import read_body
from ticketing.kit.responses import JsonResponse
from ticketing.kit.schemas import (
    CATALOG_QUERY,
    ERROR_RESPONSES,
    TICKETING_HEADERS,
    ErrorEnvelope,
    body_schema,
)
from ticketing.relations import service
from ticketing.relations.schemas import MergeRequest, RelationCreate, RelationsResponse
from ticketing.tickets.public import etag_header
from ticketing.tickets.schemas import TicketEnvelope
from ticketing.tickets.validation import require_catalog_query

router = APIRouter(prefix="/api/v2/ticketing", tags=["relations"])

_TICKET_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    404: {"model": ErrorEnvelope, "description": "Tenant not found, or no such ticket"},
}
_PLAIN: dict[str, Any] = {"parameters": [*TICKETING_HEADERS, *CATALOG_QUERY]}


def _relations_answer(object_id: str, relations: dict[str, Any], message: str | None) -> Response:
    body: dict[str, Any] = {"success": True}
    if message:
        body["message"] = message
    body.update({"status": 200, "objectId": object_id, "relations": relations})
    return JsonResponse(body)


@router.get(
    "/ticket/{objectId}/relations",
    summary="A ticket's relations",
    response_model=RelationsResponse,
    responses=_TICKET_ERRORS,
    openapi_extra=_PLAIN,
)
async def list_relations(request: Request, objectId: str) -> Response:
    """Parent, children, related, duplicate and blocking tickets, with summary and status."""
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.READ)
        require_catalog_query(request.query_params)
        relations = await service.list_relations(session, access=access, object_id=objectId)
    return _relations_answer(objectId, relations, None)


@router.post(
    "/ticket/{objectId}/relations",
    summary="Relate a ticket to another",
    response_model=RelationsResponse,
    responses={
        **_TICKET_ERRORS,
        409: {"model": ErrorEnvelope, "description": "RELATION_EXISTS: already related so"},
    },
    openapi_extra={
        "parameters": [*TICKETING_HEADERS, *CATALOG_QUERY],
        "requestBody": body_schema(RelationCreate),
    },
)
async def add_relation(request: Request, objectId: str) -> Response:
    """Adds a relation (agents and admins; requesters between their own tickets); both
    tickets record it in their history, and neither etag changes."""
    await admit_before_body(request, Action.RELATE)
    raw_body = await read_body(request)
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.RELATE)
        require_catalog_query(request.query_params)
        relations = await service.add_relation(
            session,
            access=access,
            object_id=objectId,
            raw_body=raw_body,
            content_type=request.headers.get("content-type"),
        )
    return _relations_answer(objectId, relations, "relation added successfully")


@router.delete(
    "/ticket/{objectId}/relations/{relationType}/{otherObjectId}",
    summary="Remove a relation",
    response_model=RelationsResponse,
    responses={
        **_TICKET_ERRORS,
        404: {"model": ErrorEnvelope, "description": "No such ticket or relation"},
    },
    openapi_extra=_PLAIN,
)
async def remove_relation(
    request: Request, objectId: str, relationType: str, otherObjectId: str
) -> Response:
    """Removes a relation, named as GET …/relations shows it (`parent`, `children`,
    `relates_to`, `duplicate_of`, `duplicates`, `blocks`, `blocked_by`)."""
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.RELATE)
        require_catalog_query(request.query_params)
        relations = await service.remove_relation(
            session,
            access=access,
            object_id=objectId,
            name=relationType,
            other_id=otherObjectId,
        )
    return _relations_answer(objectId, relations, "relation removed successfully")


@router.post(
    "/ticket/{objectId}/merge",
    summary="Merge a ticket into another",
    response_model=TicketEnvelope,
    responses={
        **_TICKET_ERRORS,
        409: {"model": ErrorEnvelope, "description": "ETAG_MISMATCH: the body's etag is stale"},
        412: {"model": ErrorEnvelope, "description": "If-Match names a stale etag"},
        428: {"model": ErrorEnvelope, "description": "No etag given"},
    },
    openapi_extra={
        "parameters": [
            *TICKETING_HEADERS,
            *CATALOG_QUERY,
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "The current etag (quoted or bare).",
            },
        ],
        "requestBody": body_schema(MergeRequest),
    },
)
async def merge_ticket(request: Request, objectId: str) -> Response:
    """Merges a ticket into another (agents and admins), if the etag sent is current."""
    await admit_before_body(request, Action.MERGE)
    raw_body = await read_body(request)
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.MERGE)
        require_catalog_query(request.query_params)
        ticket = await service.merge_ticket(
            session, access=access, object_id=objectId, raw_body=raw_body, headers=request.headers
        )
    return JsonResponse(
        {
            "success": True,
            "message": "ticket merged successfully",
            "status": 200,
            "objectId": objectId,
            "ticket": ticket,
        },
        headers={"ETag": etag_header(ticket["etag"])},
    )
