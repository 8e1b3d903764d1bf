"""Request and response schemas of the ticket endpoints (documentation and typing)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ticketing.attachments.schemas import AttachmentPublic


class TicketBody(BaseModel):
    """Field UUID -> value (UUIDs from `fields[].id` of GET /ticket-type), plus the offer."""

    model_config = ConfigDict(extra="allow")

    offerId: str = Field(description="The service catalog offer (GET /tenant/sc/offers).")
    ccWatchers: list[str] | None = Field(default=None, description="Usernames or emails.")
    toWatchers: list[str] | None = Field(default=None, description="Usernames or emails.")


class TicketCreate(BaseModel):
    """Body of POST /ticket/create/{teamId}/{itemTypeId}."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="Origin of the ticket; `api` for programmatic creation.")
    summary: str = Field(description="Short human-readable summary.")
    ticketBody: TicketBody = Field(
        description="Map of field UUID -> value, plus the key `offerId` (string).",
        examples=[{"offerId": "23629", "ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53": "Laptop"}],
    )
    attachments: dict[str, list[str]] = Field(
        description="Uploaded files per key: an attachment field's UUID, or `ticket` for the "
        "ticket as a whole, to a list of upload ids (POST /attachments); `{}` when none."
    )
    ticketRelation: dict[str, Any] | None = Field(
        description='Parent or related ticket, `{"type": "parent" | "relates_to" | '
        '"duplicate_of" | "blocks", "objectId": "<display ID>"}`; `null` when none.'
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
    attachments: dict[str, list[AttachmentPublic]] = Field(
        description="Files per key (attachment field UUID or `ticket`)."
    )
    moved_to: str | None
    deleted_seq: int
    version: int
    status_type: str
    status_category: str
    created_at: str = Field(examples=["2025-07-10T12:34:56.737Z"])
    updated_at: str = Field(examples=["2025-07-10T12:34:56.737Z"])
    id_serial: int
    metrics: list[Any] = Field(
        description="first_response_seconds, resolution_seconds, reopen_count as they happen."
    )
    slas: list[Any] = Field(description="One entry per SLA clock, its state as of now.")
    priority: str | None = Field(default=None, description="critical, high, medium or low.")
    queueId: str | None = None
    assignee: str | None = None


class TicketCreated(BaseModel):
    success: bool = True
    message: str = "ticket created successfully"
    status: int = 200
    objectId: str
    ticket: TicketPublic


class TicketEnvelope(BaseModel):
    success: bool = True
    message: str | None = None
    status: int = 200
    objectId: str
    ticket: TicketPublic


class TicketUpdate(BaseModel):
    """Body of PATCH /ticket/update/{objectId}; only the keys given change."""

    model_config = ConfigDict(extra="forbid")

    etag: str | None = Field(default=None, description="The current etag (or send it as If-Match).")
    summary: str | None = None
    ticketBody: dict[str, Any] | None = Field(
        default=None, description="Field UUID -> value; null clears an optional field."
    )
    status: str | None = Field(default=None, description="A status name of the workflow.")
    ccWatchers: list[str] | None = None
    toWatchers: list[str] | None = None
    attachments: dict[str, list[str]] | None = Field(
        default=None,
        description="Uploads to add, per key (attachment field UUID or `ticket`); the ticket's "
        "files stay.",
    )
    priority: str | None = Field(default=None, description="critical, high, medium or low.")
    queueId: str | None = Field(default=None, description="A queue of the tenant (or null).")
    assignee: str | None = Field(
        default=None, description="A member of the ticket's queue (or null to unassign)."
    )


class FilterCondition(BaseModel):
    id: Any = None
    column: str = Field(
        description="objectId, summary, status, statusCategory, teamId, itemTypeId, "
        "submittedBy, createdAt, updatedAt, parent, movedTo, merged, hasAttachments (EQ/NE "
        "true/false), priority, assignee, queueId, slaDueAt, slaBreached (EQ/NE true/false), "
        "or a field UUID"
    )
    op: str = Field(description="EQ, NE, GT, GE, LT, LE, LIKE or IN")
    operand: Any


class FilterGroup(BaseModel):
    op: str = Field(default="AND", description="AND or OR")
    operand: list[FilterCondition | FilterGroup]


class TicketListRequest(BaseModel):
    """Body of POST /ticket/list and /ticket/count."""

    model_config = ConfigDict(extra="forbid")

    search: str | None = Field(default=None, description="Matches summary and text fields.")
    top: int = Field(default=30, ge=1, le=100)
    offset: int = Field(default=0, ge=0)
    sort: str = Field(
        default="createdAt", description="createdAt|updatedAt|objectId|status|summary"
    )
    searchOrder: str = Field(default="DESC", description="ASC or DESC")
    filter: FilterGroup | None = None


class TicketPage(BaseModel):
    value: list[TicketPublic]
    count: int


class TicketListResponse(BaseModel):
    success: bool = True
    status: int = 200
    data: TicketPage


class CountData(BaseModel):
    count: int


class TicketCountResponse(BaseModel):
    success: bool = True
    status: int = 200
    data: CountData


class Actor(BaseModel):
    username: str
    email: str
    firstName: str
    lastName: str


class Change(BaseModel):
    field: str
    old: Any = None
    new: Any = None


class HistoryEntry(BaseModel):
    version: int
    action: str = Field(
        description="create, update, delete, merge, relate, unrelate, comment (an agent's "
        "public comment moved the SLA clocks) or sla (a breach recorded)"
    )
    at: str
    by: Actor
    changes: list[Change]


class HistoryData(BaseModel):
    value: list[HistoryEntry]


class TicketHistoryResponse(BaseModel):
    success: bool = True
    status: int = 200
    objectId: str
    data: HistoryData


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(description="HTML; sanitized like rich text.")
    internal: bool = Field(default=False, description="Visible to agents and admins only.")


class CommentPublic(BaseModel):
    id: str
    objectId: str
    body: str
    internal: bool
    author: Actor
    created_at: str


class CommentResponse(BaseModel):
    success: bool = True
    message: str
    status: int = 200
    comment: CommentPublic


class CommentsData(BaseModel):
    value: list[CommentPublic]
    count: int


class CommentsResponse(BaseModel):
    success: bool = True
    status: int = 200
    data: CommentsData


class DeleteResponse(BaseModel):
    success: bool = True
    message: str
    status: int = 200
    objectId: str
