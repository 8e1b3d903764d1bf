"""Request and response schemas of the relation and merge endpoints (documentation and typing)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ticketing.relations.rules import TYPES


class RelationCreate(BaseModel):
    """Body of POST /ticket/{objectId}/relations (and the create body's `ticketRelation`)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(
        description=f"One of {', '.join(TYPES)}, seen from the ticket of the path: `parent` "
        "makes the other ticket its parent, `blocks` makes it block the other one.",
        examples=["parent"],
    )
    objectId: str = Field(description="Display ID of the other ticket.", examples=["CTC-0001"])


class RelatedTicket(BaseModel):
    objectId: str
    summary: str
    status_type: str
    status_category: str


class Relations(BaseModel):
    """A ticket's relations, each to a live ticket the caller may see."""

    parent: RelatedTicket | None
    children: list[RelatedTicket]
    relates_to: list[RelatedTicket]
    duplicate_of: list[RelatedTicket]
    duplicates: list[RelatedTicket]
    blocks: list[RelatedTicket]
    blocked_by: list[RelatedTicket]


class RelationsResponse(BaseModel):
    success: bool = True
    message: str | None = None
    status: int = 200
    objectId: str
    relations: Relations


class MergeRequest(BaseModel):
    """Body of POST /ticket/{objectId}/merge."""

    model_config = ConfigDict(extra="forbid")

    into: str = Field(description="Display ID of the ticket to merge into.", examples=["CTC-0001"])
    etag: str | None = Field(
        default=None, description="The merged ticket's current etag (or send it as If-Match)."
    )
