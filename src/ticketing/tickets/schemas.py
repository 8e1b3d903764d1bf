"""Request and response schemas of the ticket endpoints (documentation and typing)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TicketCreate(BaseModel):
    """Body of POST /ticket/create/{teamId}/{itemTypeId}."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="Origin of the ticket; `api` for programmatic creation.")
    summary: str = Field(description="Short human-readable summary.")
    ticketBody: dict[str, Any] = Field(
        description="Map of field UUID -> value, plus the key `offerId` (string). "
        "Optional `ccWatchers` and `toWatchers`: lists of usernames or emails.",
        examples=[{"offerId": "23629", "ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53": "Laptop"}],
    )
    attachments: dict[str, Any] = Field(description="Attachment metadata; `{}` when none.")
    ticketRelation: dict[str, Any] | None = Field(
        description="Parent or related ticket; `null` when none."
    )


class LastUpdatedBy(BaseModel):
    lastName: str
    username: str
    firstName: str


class LookupProps(BaseModel):
    teamId: str
    itemTypeId: str


class TicketPublic(BaseModel):
    """A ticket as the API returns it."""

    id: str = Field(description="Internal record id (UUID).")
    tenant_id: str
    object_id: str = Field(description="Display ID, e.g. CTC-0054.")
    etag: str = Field(description="Concurrency token required by the next update.")
    summary: str
    data: dict[str, Any] = Field(
        description="Field values plus offerId, ccWatchers, toWatchers, submittedBy, lastUpdatedBy."
    )
    lookup_props: LookupProps
    moved_to: str | None
    deleted_seq: int
    version: int
    status_type: str
    status_category: str
    created_at: str = Field(examples=["2025-07-10T12:34:56.737Z"])
    updated_at: str = Field(examples=["2025-07-10T12:34:56.737Z"])
    id_serial: int
    metrics: list[Any]
    slas: list[Any]


class TicketCreated(BaseModel):
    success: bool = True
    message: str = "ticket created successfully"
    status: int = 200
    objectId: str
    ticket: TicketPublic
