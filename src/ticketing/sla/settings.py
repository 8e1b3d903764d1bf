"""A tenant's service-desk settings compiled for request handling: SLA policies with their
calendars, queues, and each ticket type's routing (priority and queue)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ticketing.sla.calendar import calendar_for
from ticketing.sla.config import FALLBACK_PRIORITY
from ticketing.sla.policy import SlaPolicy


@dataclass(frozen=True)
class QueueSpec:
    id: str
    name: str
    team: str | None
    auto_assign: str  # "round_robin" or "none"

    @property
    def round_robin(self) -> bool:
        return self.auto_assign == "round_robin"


@dataclass(frozen=True)
class TypeRouting:
    """Where a ticket type's tickets get their priority and queue."""

    priority_field: str | None = None
    priority_map: Mapping[str, str] = field(default_factory=dict)
    default_priority: str | None = None
    queue: str | None = None

    def priority_of(self, data: Mapping[str, Any]) -> str | None:
        """The priority the ticket's field values give it: the priority field's value
        through the map, else the type's default."""
        if self.priority_field is not None:
            mapped = self.priority_map.get(str(data.get(self.priority_field)))
            if mapped is not None:
                return mapped
        return self.default_priority


NO_ROUTING = TypeRouting()


@dataclass(frozen=True)
class DeskSettings:
    """SLA policies (by id, with the default), business calendar inputs, queues, routing."""

    policies: Mapping[str, SlaPolicy] = field(default_factory=dict)
    default_policy: str | None = None
    business_hours: Mapping[str, tuple[str, str]] | None = None
    holidays: tuple[date, ...] = ()
    queues: Mapping[str, QueueSpec] = field(default_factory=dict)
    routing: Mapping[str, TypeRouting] = field(default_factory=dict)
    offer_policies: Mapping[str, str] = field(default_factory=dict)
    # Rich text and comments keep images from other sites (kit.html).
    remote_images: bool = False

    def routing_of(self, ticket_type_id: str) -> TypeRouting:
        return self.routing.get(ticket_type_id, NO_ROUTING)

    def policy_for_offer(self, offer_id: str) -> SlaPolicy | None:
        """The offer's policy, else the tenant's default, else none."""
        policy_id = self.offer_policies.get(offer_id) or self.default_policy
        return None if policy_id is None else self.policies.get(policy_id)

    def calendar(self, policy: SlaPolicy) -> Any:
        """The calendar the policy counts time in."""
        return calendar_for(policy, self.business_hours, self.holidays)

    def start_priority(
        self, ticket_type_id: str, data: Mapping[str, Any], *, sla: bool
    ) -> str | None:
        """A new ticket's priority; with an SLA policy there is always one."""
        priority = self.routing_of(ticket_type_id).priority_of(data)
        return priority or (FALLBACK_PRIORITY if sla else None)


NO_DESK = DeskSettings()


def compile_desk(settings: Mapping[str, Any] | None) -> DeskSettings:
    """Builds DeskSettings from the JSON document the loader stored (None: no settings)."""
    if not settings:
        return NO_DESK
    policies = {
        p["id"]: SlaPolicy(
            id=p["id"],
            name=p["name"],
            response_minutes=dict(p["response_minutes"]),
            resolution_minutes=dict(p["resolution_minutes"]),
            business_hours_only=p.get("business_hours_only", True),
            timezone=p.get("timezone", "UTC"),
            pause_statuses=frozenset(p.get("pause_statuses", ())),
            default=p.get("default", False),
        )
        for p in settings.get("sla_policies", ())
    }
    hours = settings.get("business_hours")
    return DeskSettings(
        policies=policies,
        default_policy=next((p.id for p in policies.values() if p.default), None),
        remote_images=bool(settings.get("remote_images", False)),
        business_hours=None if hours is None else {d: (h[0], h[1]) for d, h in hours.items()},
        holidays=tuple(date.fromisoformat(d) for d in settings.get("holidays", ())),
        queues={
            q["id"]: QueueSpec(
                id=q["id"], name=q["name"], team=q.get("team"), auto_assign=q["auto_assign"]
            )
            for q in settings.get("queues", ())
        },
        routing={
            type_id: TypeRouting(
                priority_field=r.get("priority_field"),
                priority_map=dict(r.get("priority_map") or {}),
                default_priority=r.get("default_priority"),
                queue=r.get("queue"),
            )
            for type_id, r in settings.get("ticket_types", {}).items()
        },
        offer_policies=dict(settings.get("offers", {})),
    )
