"""GET /tenant/meta: the tenant's statuses with their categories, ticket types and teams."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

from ticketing.auth.access import Action, admit
from ticketing.auth.reads import run_read
from ticketing.catalog.service import TenantCatalog
from ticketing.kit.responses import JsonResponse
from ticketing.kit.schemas import CATALOG_QUERY, ERROR_RESPONSES, TICKETING_HEADERS
from ticketing.tickets.validation import require_catalog_query

router = APIRouter(prefix="/api/v2/ticketing", tags=["tenant"])


class StatusPublic(BaseModel):
    name: str
    category: str


class NamedPublic(BaseModel):
    id: str
    name: str


class TenantMetaData(BaseModel):
    tenantId: str
    name: str
    statuses: list[StatusPublic]
    statusCategories: list[str]
    ticketTypes: list[NamedPublic]
    teams: list[NamedPublic]
    catalogTypes: list[str]


class TenantMetaResponse(BaseModel):
    success: bool = True
    status: int = 200
    data: TenantMetaData


def tenant_meta(catalog: TenantCatalog) -> dict[str, Any]:
    """The tenant's vocabularies, statuses de-duplicated across ticket types."""
    statuses: dict[str, str] = {}
    for ticket_type in catalog.ticket_types.values():
        for status in ticket_type.workflow.get("statuses", []):
            statuses.setdefault(status["name"], status["category"])
    return {
        "tenantId": str(catalog.tenant_id),
        "name": catalog.name,
        "statuses": [{"name": n, "category": c} for n, c in statuses.items()],
        "statusCategories": list(dict.fromkeys(statuses.values())),
        "ticketTypes": [{"id": t.id, "name": t.name} for t in catalog.ticket_types.values()],
        "teams": [{"id": t.id, "name": t.name} for t in catalog.teams.values()],
        "catalogTypes": ["template", "agent", "user"],
    }


@router.get(
    "/tenant/meta",
    summary="The tenant's statuses, ticket types and teams",
    response_model=TenantMetaResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={"parameters": [*TICKETING_HEADERS, *CATALOG_QUERY]},
)
async def get_tenant_meta(request: Request) -> Response:
    """Statuses (with categories) and the other vocabularies of the tenant."""
    access = await run_read(request, lambda session: admit(request, session, Action.READ))
    require_catalog_query(request.query_params)
    return JsonResponse({"success": True, "status": 200, "data": tenant_meta(access.catalog)})
