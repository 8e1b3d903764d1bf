"""Request and response bodies of the notification endpoints (for the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ticketing.notifications.generator import TYPES


class NotificationPublic(BaseModel):
    id: str
    type: str = Field(examples=list(TYPES))
    objectId: str
    ticketId: str
    message: str
    data: dict[str, Any]
    read: bool
    createdAt: str


class NotificationListRequest(BaseModel):
    """Filters and paging; every key is optional."""

    model_config = ConfigDict(extra="forbid", strict=True)

    read: bool | None = Field(default=None, description="true: read ones; false: unread ones")
    type: Literal["assigned", "comment", "status_changed", "sla_breached"] | None = None
    ticket: str | None = Field(default=None, description="A ticket's display ID")
    from_: str | None = Field(
        default=None, alias="from", description="ISO-8601; created at or after"
    )
    to: str | None = Field(default=None, description="ISO-8601; created at or before")
    top: int = Field(default=30, ge=1, le=100)
    offset: int = Field(default=0, ge=0)


class NotificationPage(BaseModel):
    value: list[NotificationPublic]
    count: int


class NotificationListResponse(BaseModel):
    success: bool = True
    status: int = 200
    data: NotificationPage


class NotificationCountResponse(BaseModel):
    success: bool = True
    status: int = 200
    unread: int


class NotificationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    read: bool


class NotificationResponse(BaseModel):
    success: bool = True
    message: str
    status: int = 200
    notification: NotificationPublic


class ReadAllResponse(BaseModel):
    success: bool = True
    message: str
    status: int = 200
    updated: int
