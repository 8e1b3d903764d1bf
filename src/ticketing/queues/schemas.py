"""Request and response schemas of the queue endpoints (documentation and typing)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class QueuePublic(BaseModel):
    id: str
    name: str
    teamId: str | None
    autoAssign: str = Field(description="round_robin or none")


class QueuesData(BaseModel):
    value: list[QueuePublic]
    count: int


class QueuesResponse(BaseModel):
    success: bool = True
    status: int = 200
    data: QueuesData


class CurrentQueue(QueuePublic):
    userId: str = Field(description="The caller, as the queue knows them.")
    availability: str


class CurrentQueuesData(BaseModel):
    value: list[CurrentQueue]
    count: int


class CurrentQueuesResponse(BaseModel):
    success: bool = True
    status: int = 200
    data: CurrentQueuesData


class MemberPublic(BaseModel):
    queueId: str
    userId: str
    availability: str = Field(description="available, away or offline")


class MembersData(BaseModel):
    value: list[MemberPublic]
    count: int


class MembersResponse(BaseModel):
    success: bool = True
    status: int = 200
    data: MembersData


class MemberResponse(BaseModel):
    success: bool = True
    message: str
    status: int = 200
    data: MemberPublic


class MemberRemoved(BaseModel):
    success: bool = True
    message: str
    status: int = 200


class MemberCreate(BaseModel):
    """Body of POST /queue/{queueId}/users."""

    model_config = ConfigDict(extra="forbid")

    userId: str = Field(description="A username or email address.", min_length=1, max_length=320)


class AvailabilityUpdate(BaseModel):
    """Body of PUT /queue/{queueId}/users/{userId}."""

    model_config = ConfigDict(extra="forbid")

    availability: Literal["available", "away", "offline"]
