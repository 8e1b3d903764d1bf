"""The service-desk keys of the tenant configuration file: business hours, holidays, SLA
policies, queues, and the routing keys of ticket types and offers. All optional."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

PRIORITIES: tuple[str, ...] = ("critical", "high", "medium", "low")
# The priority of a ticket whose type names none, when an SLA policy applies to it.
FALLBACK_PRIORITY = "medium"
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
AVAILABILITIES: tuple[str, ...] = ("available", "away", "offline")
AUTO_ASSIGN: tuple[str, ...] = ("round_robin", "none")

Priority = Literal["critical", "high", "medium", "low"]
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _id_string(value: Any) -> Any:
    # YAML reads `id: 33654` as a number; ids are strings in the API.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


IdString = Annotated[
    str, BeforeValidator(_id_string), Field(min_length=1, max_length=100, pattern=r"^[^/\s]+$")
]
UserId = Annotated[str, Field(min_length=1, max_length=320, pattern=r"^[^\s\x00-\x1f/]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_minutes(value: dict[str, int]) -> dict[str, int]:
    missing = [p for p in PRIORITIES if p not in value]
    if missing:
        raise ValueError(f"minutes are needed for every priority; missing: {', '.join(missing)}")
    return value


Minutes = Annotated[dict[Priority, Annotated[int, Field(ge=1, le=10_000_000)]], Field()]


class SlaPolicyConfig(_Strict):
    id: IdString
    name: Annotated[str, Field(min_length=1, max_length=200)]
    default: bool = False
    response_minutes: Minutes
    resolution_minutes: Minutes
    business_hours_only: bool = True
    timezone: str = "UTC"
    pause_statuses: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)

    @field_validator("response_minutes", "resolution_minutes")
    @classmethod
    def _every_priority(cls, value: dict[str, int]) -> dict[str, int]:
        return _check_minutes(value)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r} (an IANA name, e.g. America/New_York)"
            ) from None
        return value


class QueueConfig(_Strict):
    id: IdString
    name: Annotated[str, Field(min_length=1, max_length=200)]
    team: str | None = None
    members: list[UserId] = Field(default_factory=list)
    auto_assign: Literal["round_robin", "none"] = "none"


OpeningHours = Annotated[list[str], Field(min_length=2, max_length=2)]


def check_business_hours(value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
    """Weekday keys mon..sun, each ["HH:MM", "HH:MM"] with the opening before the closing."""
    if value is None:
        return None
    for day, hours in value.items():
        if day not in WEEKDAYS:
            raise ValueError(f"unknown weekday {day!r}; use {', '.join(WEEKDAYS)}")
        if not all(_TIME.match(h) for h in hours):
            raise ValueError(f"{day}: opening hours are two HH:MM times")
        if hours[0] >= hours[1]:
            raise ValueError(f"{day}: opening time must come before closing time")
    return value


def desk_settings(tenant: Any) -> dict[str, Any]:
    """The JSON document stored for a tenant (ticketing.sla.settings compiles it) from its
    configuration entry (ticketing.catalog.config_file.TenantConfig)."""
    return {
        "business_hours": tenant.business_hours,
        "holidays": [d.isoformat() for d in tenant.holidays],
        "sla_policies": [p.model_dump(mode="json") for p in tenant.sla_policies],
        "queues": [q.model_dump(mode="json", exclude={"members"}) for q in tenant.queues],
        "ticket_types": {
            t.id: {
                "priority_field": None if t.priority_field is None else str(t.priority_field),
                "priority_map": t.priority_map,
                "default_priority": t.default_priority,
                "queue": t.queue,
            }
            for t in tenant.ticket_types
            if t.priority_field or t.default_priority or t.queue
        },
        "offers": {o.id: o.sla_id for o in tenant.offers if o.sla_id is not None},
        "remote_images": tenant.rich_text is not None and tenant.rich_text.remote_images,
    }


def check_desk_references(tenant: Any) -> None:
    """Checks a tenant's entry (ticketing.catalog.config_file.TenantConfig): unique queue and
    policy ids, one default policy at most, and the queues, policies and priority fields
    that ticket types and offers name exist; raises ValueError naming the first problem."""
    policy_ids = [p.id for p in tenant.sla_policies]
    queue_ids = [q.id for q in tenant.queues]
    for ids, what in ((policy_ids, "sla policy ids"), (queue_ids, "queue ids")):
        if len(set(ids)) != len(ids):
            raise ValueError(f"{what} must be unique")
    if sum(p.default for p in tenant.sla_policies) > 1:
        raise ValueError("only one sla policy can be the default")
    for index, ticket_type in enumerate(tenant.ticket_types):
        where = f"ticket_types[{index}]"
        if ticket_type.queue is not None and ticket_type.queue not in queue_ids:
            raise ValueError(f"{where}: queue {ticket_type.queue!r} is not a queue of this tenant")
        if ticket_type.priority_field is not None:
            field_ids = {str(f.id) for f in ticket_type.fields}
            if str(ticket_type.priority_field) not in field_ids:
                raise ValueError(
                    f"{where}: priority_field {ticket_type.priority_field} is not a field of "
                    "this ticket type"
                )
            if not ticket_type.priority_map:
                raise ValueError(f"{where}: priority_field needs a priority_map")
    for index, offer in enumerate(tenant.offers):
        if offer.sla_id is not None and offer.sla_id not in policy_ids:
            raise ValueError(
                f"offers[{index}]: sla_id {offer.sla_id!r} is not an sla policy of this tenant"
            )
