"""Response bodies of the webhook endpoints (for the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class DeliveryPublic(BaseModel):
    eventId: str
    type: str
    status: str
    attempts: int
    createdAt: str
    nextAttemptAt: str | None
    deliveredAt: str | None
    log: list[dict[str, Any]]


class DeliveryPage(BaseModel):
    value: list[DeliveryPublic]
    count: int


class DeliveriesResponse(BaseModel):
    success: bool = True
    status: int = 200
    webhookId: str
    data: DeliveryPage
