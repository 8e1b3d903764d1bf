"""Request and response bodies of the stream ticket endpoint (for the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StreamTicketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    stream: Literal["list", "notifications"] = Field(
        description="The stream the ticket opens: `list` (GET /ticket/sse/list/updates) or "
        "`notifications` (GET /ticket/sse/notifications)."
    )


class StreamTicketResponse(BaseModel):
    ticket: str = Field(
        description="Opaque; send it as `?ticket=` on the stream's URL, once, with no "
        "authorization, x-tenantid or realmname header."
    )
    expiresIn: int = Field(description="Seconds the ticket can be used for.", examples=[60])
