"""HTTP endpoints for queues: list them, the caller's, members and their availability."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel
from starlette.responses import Response

from ticketing.auth.access import Access, Action, admit, admit_before_body, app_state
from ticketing.kit.db import transaction
from ticketing.kit.errors import InputValidationFailure, Reasons
from ticketing.kit.requests import read_body
from ticketing.kit.responses import JsonResponse
from ticketing.kit.schemas import (
    CATALOG_QUERY,
    ERROR_RESPONSES,
    TICKETING_HEADERS,
    ErrorEnvelope,
    body_schema,
)
from ticketing.queues import service
from ticketing.queues.schemas import (
    AvailabilityUpdate,
    CurrentQueuesResponse,
    MemberCreate,
    MemberRemoved,
    MemberResponse,
    MembersResponse,
    QueuesResponse,
)
from ticketing.tickets.validation import NOT_PARSED, parse_body, require_catalog_query

router = APIRouter(prefix="/api/v2/ticketing", tags=["queues"])

# Path parameters are declared in the signatures (FastAPI documents those); naming them in
# openapi_extra too would list each twice, which OpenAPI forbids.
QueueId = Annotated[str, Path(description="The queue's id (GET /queue/list).")]
UserId = Annotated[str, Path(description="A member's username or email address.")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    404: {"model": ErrorEnvelope, "description": "Tenant not found, no such queue or member"},
}


def _openapi(body: type[BaseModel] | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"parameters": [*TICKETING_HEADERS, *CATALOG_QUERY]}
    if body is not None:
        extra["requestBody"] = body_schema(body)
    return extra


async def _caller(request: Request) -> Access:
    """The caller of a change, admitted before its body is read (and the query checked)."""
    access = await admit_before_body(request, Action.UPDATE)
    require_catalog_query(request.query_params)
    return access


async def _json_body(request: Request) -> Any:
    reasons = Reasons()
    body = parse_body(reasons, await read_body(request), request.headers.get("content-type"))
    if body is NOT_PARSED:
        raise InputValidationFailure(reasons.reason)
    return body


def _page(items: list[dict[str, Any]]) -> Response:
    return JsonResponse(
        {"success": True, "status": 200, "data": {"value": items, "count": len(items)}}
    )


@router.get(
    "/queue/list",
    summary="List the tenant's queues",
    response_model=QueuesResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=_openapi(),
)
async def list_queues(request: Request) -> Response:
    """The tenant's queues."""
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.READ)
    # The permission before the query's validation, as on every route.
    service.require_agent(access)
    require_catalog_query(request.query_params)
    return _page(service.list_queues(access))


@router.get(
    "/queue/current",
    summary="The caller's queues",
    response_model=CurrentQueuesResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=_openapi(),
)
async def current_queues(request: Request) -> Response:
    """The queues the caller is a member of, with their availability in each."""
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.READ)
        require_catalog_query(request.query_params)
        queues = await service.current_queues(session, access=access)
    return _page(queues)


@router.get(
    "/queue/{queueId}/users",
    summary="A queue's members",
    response_model=MembersResponse,
    responses=_ERRORS,
    openapi_extra=_openapi(),
)
async def list_members(request: Request, queueId: QueueId) -> Response:
    """A queue's members and their availability."""
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.READ)
        service.require_agent(access)
        require_catalog_query(request.query_params)
        members = await service.list_members(session, access=access, queue_id=queueId)
    return _page(members)


@router.post(
    "/queue/{queueId}/users",
    summary="Add a member to a queue (tenant admins)",
    response_model=MemberResponse,
    responses=_ERRORS,
    openapi_extra=_openapi(body=MemberCreate),
)
async def add_member(request: Request, queueId: QueueId) -> Response:
    """Adds a user to a queue; they start available."""
    # The caller first, then the body, then the transaction: a caller who may not change
    # members is refused without waiting for a body, and no transaction waits for one.
    service.require_admin(await _caller(request))
    user_id = service.member_to_add(await _json_body(request))
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.UPDATE)
        member = await service.add_member(session, access=access, queue_id=queueId, user_id=user_id)
    return JsonResponse(
        {"success": True, "message": "user added to queue", "status": 200, "data": member}
    )


@router.delete(
    "/queue/{queueId}/users/{userId}",
    summary="Remove a member from a queue (tenant admins)",
    response_model=MemberRemoved,
    responses=_ERRORS,
    openapi_extra=_openapi(),
)
async def remove_member(request: Request, queueId: QueueId, userId: UserId) -> Response:
    """Removes a user from a queue; tickets assigned to them stay assigned."""
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.UPDATE)
        require_catalog_query(request.query_params)
        await service.remove_member(session, access=access, queue_id=queueId, user_id=userId)
    return JsonResponse({"success": True, "message": "user removed from queue", "status": 200})


@router.put(
    "/queue/{queueId}/users/{userId}",
    summary="Set a member's availability (admins; agents for themselves)",
    response_model=MemberResponse,
    responses=_ERRORS,
    openapi_extra=_openapi(body=AvailabilityUpdate),
)
async def set_availability(request: Request, queueId: QueueId, userId: UserId) -> Response:
    """Round robin assigns only to members who are `available`."""
    # In the order of add_member, for the same reasons.
    service.may_set_availability(await _caller(request), userId)
    availability = service.availability_wanted(await _json_body(request))
    async with transaction(app_state(request).sessionmaker) as session:
        access = await admit(request, session, Action.UPDATE)
        member = await service.set_availability(
            session,
            access=access,
            queue_id=queueId,
            user_id=userId,
            availability=availability,
        )
    return JsonResponse(
        {"success": True, "message": "availability updated", "status": 200, "data": member}
    )
