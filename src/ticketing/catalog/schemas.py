"""Response schemas of the discovery endpoints (documentation and typing)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FieldPublic(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(description="The UUID to send as a key in ticketBody.")
    name: str
    label: str
    type: str
    required: bool
    defaultValue: Any = None
    options: list[dict[str, Any]]


class TicketTypePublic(BaseModel):
    """A ticket type; `$select` may leave keys out."""

    id: str | None = None
    name: str | None = None
    properties: dict[str, Any] | None = None
    fields: list[FieldPublic] | None = None
    workflow: dict[str, Any] | None = None


class TicketTypesData(BaseModel):
    value: list[TicketTypePublic]
    count: int


class TicketTypesPage(BaseModel):
    success: bool = True
    message: str
    status: int = 200
    data: TicketTypesData


class OfferPublic(BaseModel):
    id: str
    name: str
    description: str
    category: str | None
    item_type: str
    catalog_types: list[str]
    slaId: str | None = Field(default=None, description="The offer's SLA policy, if any.")


class OffersData(BaseModel):
    offers: list[OfferPublic]


class OffersPage(BaseModel):
    success: bool = True
    message: str
    status: int = 200
    data: OffersData
