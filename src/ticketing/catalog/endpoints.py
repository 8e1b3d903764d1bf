"""Discovery endpoints: ticket types with their fields, and service catalog offers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ticketing.auth.access import Action, admit
from ticketing.auth.reads import run_read
from ticketing.catalog.schemas import OffersPage, TicketTypesPage
from ticketing.catalog.service import OfferSpec, TicketTypeSpec
from ticketing.kit.errors import Reasons
from ticketing.kit.numbers import parse_digits
from ticketing.kit.responses import JsonResponse
from ticketing.kit.schemas import CATALOG_QUERY, ERROR_RESPONSES, TICKETING_HEADERS, query_parameter
from ticketing.tickets.validation import check_query, require_catalog_query

router = APIRouter(prefix="/api/v2/ticketing", tags=["catalog"])

TICKET_TYPE_KEYS = ("id", "name", "properties", "fields", "workflow")
MAX_TOP = 1000


def ticket_type_public(ticket_type: TicketTypeSpec) -> dict[str, Any]:
    """A ticket type as the API shows it."""
    return {
        "id": ticket_type.id,
        "name": ticket_type.name,
        "properties": {
            "prefix": ticket_type.prefix,
            "create_roles": sorted(ticket_type.create_roles),
        },
        "fields": [
            {
                "id": spec.id,
                "name": spec.name,
                "label": spec.label,
                "type": spec.type,
                "required": spec.required,
                "defaultValue": spec.default_value,
                "options": [dict(o) for o in spec.options],
                **spec.limits,
            }
            for spec in ticket_type.fields
        ],
        "workflow": ticket_type.workflow,
    }


def offer_public(offer: OfferSpec) -> dict[str, Any]:
    """An offer as the API shows it."""
    return {
        "id": offer.id,
        "name": offer.name,
        "description": offer.description,
        "category": offer.category,
        "item_type": offer.item_type,
        "catalog_types": list(offer.catalog_types),
        "slaId": offer.sla_id,
    }


def _paging(reasons: Reasons, query: Any) -> tuple[list[str], int, int]:
    select_keys = list(TICKET_TYPE_KEYS)
    raw_select = query.get("$select")
    if raw_select is not None:
        wanted = [k.strip() for k in raw_select.split(",") if k.strip()]
        unknown = [k for k in wanted if k not in TICKET_TYPE_KEYS]
        if unknown or not wanted:
            reasons.add(
                "$select", f"$select takes a comma-separated list of: {', '.join(TICKET_TYPE_KEYS)}"
            )
        select_keys = [k for k in TICKET_TYPE_KEYS if k in wanted]
    top = _int_param(reasons, query, "$top", default=MAX_TOP, low=1, high=MAX_TOP)
    skip = _int_param(reasons, query, "$skip", default=0, low=0, high=None)
    return select_keys, top, skip


def _int_param(
    reasons: Reasons, query: Any, name: str, *, default: int, low: int, high: int | None
) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    value = parse_digits(raw)
    if value is None:
        value = low - 1
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        reasons.add(name, f"{name} must be a whole number {bound}")
        return default
    return value


@router.get(
    "/ticket-type",
    summary="List ticket types with their fields",
    response_model=TicketTypesPage,
    responses=ERROR_RESPONSES,
    openapi_extra={
        "parameters": [
            *TICKETING_HEADERS,
            *CATALOG_QUERY,
            {**query_parameter("$select", "Keys to include, comma-separated."), "required": False},
            {
                **query_parameter("$top", "Page size (1-1000)."),
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_TOP},
            },
            {
                **query_parameter("$skip", "Entries to skip."),
                "required": False,
                "schema": {"type": "integer", "minimum": 0},
            },
        ]
    },
)
async def list_ticket_types(request: Request) -> Response:
    """Lists the tenant's ticket types; `fields[].id` are the keys to send in ticketBody."""
    access = await run_read(request, lambda session: admit(request, session, Action.READ_CATALOG))
    reasons = Reasons()
    check_query(reasons, request.query_params)
    select_keys, top, skip = _paging(reasons, request.query_params)
    reasons.raise_if_any("Invalid query parameters")
    types = list(access.catalog.ticket_types.values())
    page = [
        {k: v for k, v in ticket_type_public(t).items() if k in select_keys}
        for t in types[skip : skip + top]
    ]
    return JsonResponse(
        {
            "success": True,
            "message": "ticket types fetched successfully",
            "status": 200,
            "data": {"value": page, "count": len(types)},
        }
    )


@router.get(
    "/tenant/sc/offers",
    summary="List the service catalog offers of a catalog type",
    response_model=OffersPage,
    responses=ERROR_RESPONSES,
    openapi_extra={"parameters": [*TICKETING_HEADERS, *CATALOG_QUERY]},
)
async def list_offers(request: Request) -> Response:
    """Lists the active offers visible in the requested catalog `type`."""
    access = await run_read(request, lambda session: admit(request, session, Action.READ_CATALOG))
    catalog_type = require_catalog_query(request.query_params)
    offers = [
        offer_public(o)
        for o in access.catalog.offers.values()
        if o.active and catalog_type in o.catalog_types
    ]
    return JsonResponse(
        {
            "success": True,
            "message": "offers fetched successfully",
            "status": 200,
            "data": {"offers": offers},
        }
    )
