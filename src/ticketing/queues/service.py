"""Routing tickets: priority, queue and assignee at creation (round robin among available
members) and on update; and the queues with their members and availability."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.auth.access import AGENT_ROLES, Access
from ticketing.kit.errors import InputValidationFailure, NotFound, PermissionFailure, Reasons
from ticketing.models import QueueMember
from ticketing.queues import repository
from ticketing.sla import service as sla_service
from ticketing.sla.config import AVAILABILITIES, PRIORITIES
from ticketing.sla.settings import DeskSettings, QueueSpec

ADMIN_ROLE = "tenant_admin"
# Body keys of PATCH /ticket/update that route a ticket.
ROUTING_KEYS = ("priority", "queueId", "assignee")
MAX_USER_ID = 320


@dataclass
class NewTicketRouting:
    """What routing adds to a create: ticket columns, counters to bump, history changes."""

    values: dict[str, Any]
    counters: dict[str, int] = field(default_factory=dict)
    round_robin: str | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)


def round_robin_counter(queue_id: str) -> str:
    """The counter of a round-robin queue (beside the display-ID counters): how many
    tickets it has assigned."""
    return f"#rr:{queue_id}"


def route_new_ticket(
    desk: DeskSettings,
    *,
    ticket_type_id: str,
    offer_id: str,
    data: Mapping[str, Any],
    at: datetime,
) -> NewTicketRouting:
    """Priority (from the type's priority field, else its default), queue (the type's),
    SLA clocks (the offer's policy, else the default); the assignee is picked by the
    create statement itself when the queue assigns round robin."""
    priority, sla_values = sla_service.start(
        desk, ticket_type_id=ticket_type_id, offer_id=offer_id, data=data, at=at
    )
    queue = desk.queues.get(desk.routing_of(ticket_type_id).queue or "")
    routing = NewTicketRouting(
        values={
            "priority": priority,
            "queue_id": queue.id if queue else None,
            "assignee": None,
            **sla_values,
        }
    )
    if queue is not None and queue.round_robin:
        routing.round_robin = round_robin_counter(queue.id)
        routing.counters[routing.round_robin] = 1
    if priority is not None:
        routing.changes.append({"field": "priority", "old": None, "new": priority})
    if queue is not None:
        routing.changes.append({"field": "queueId", "old": None, "new": queue.id})
    policy = desk.policy_for_offer(offer_id)
    if sla_values["sla"] is not None and policy is not None:
        routing.changes.append({"field": "slaPolicy", "old": None, "new": policy.id})
    return routing


@dataclass
class RoutingUpdate:
    """The routing part of an update: columns to write and their history changes."""

    values: dict[str, Any] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def priority(self) -> str | None:
        """The new priority, when it changes."""
        value: str | None = self.values.get("priority")
        return value


async def check_routing_update(
    session: AsyncSession,
    reasons: Reasons,
    *,
    access: Access,
    ticket: Mapping[str, Any],
    body: Mapping[str, Any],
) -> RoutingUpdate:
    """Validates `assignee` (a member of the ticket's queue, as it will be), `queueId` (a
    queue of the tenant) and `priority` (a known priority) of an update body; only agents
    and admins route tickets. A new queue without an `assignee` in the body unassigns an
    assignee who is not a member of it."""
    update = RoutingUpdate()
    if not body:
        return update
    if not access.principal.roles & AGENT_ROLES:
        raise PermissionFailure("You do not have the required permissions to route tickets")
    desk = access.catalog.desk
    queue_id = ticket["queue_id"]
    if "queueId" in body:
        wanted = body["queueId"]
        if wanted is not None and (not isinstance(wanted, str) or wanted not in desk.queues):
            known = ", ".join(desk.queues) or "none configured"
            reasons.add("queueId", f"queueId must be a queue of the tenant ({known})")
        else:
            queue_id = wanted
            apply_change(update, "queue_id", "queueId", ticket["queue_id"], wanted)
    if "priority" in body:
        priority = body["priority"]
        if not isinstance(priority, str) or priority not in PRIORITIES:
            reasons.add("priority", f"priority must be one of: {', '.join(PRIORITIES)}")
        else:
            apply_change(update, "priority", "priority", ticket["priority"], priority)
    if "assignee" in body:
        assignee = body["assignee"]
        if assignee is not None and not _is_user_id(assignee):
            reasons.add("assignee", "assignee must be a username or email address, or null")
        elif assignee is not None and not await _is_member(session, access, queue_id, assignee):
            where = f"queue {queue_id}" if queue_id else "a queue (the ticket has none)"
            reasons.add("assignee", f"{assignee} is not a member of {where}")
        else:
            apply_change(update, "assignee", "assignee", ticket["assignee"], assignee)
    elif (
        "queue_id" in update.values
        and ticket["assignee"] is not None
        and not await _is_member(session, access, queue_id, ticket["assignee"])
    ):
        # The assignee must be a member of the ticket's queue: one who is not a member of
        # the new queue is unassigned (round robin assigns new tickets only, issue 10).
        apply_change(update, "assignee", "assignee", ticket["assignee"], None)
    return update


async def _is_member(
    session: AsyncSession, access: Access, queue_id: str | None, user_id: str
) -> bool:
    """Whether a user is a member of a queue (nobody is a member of no queue)."""
    if queue_id is None:
        return False
    member = await repository.get_member(
        session, tenant_id=access.tenant_id, queue_id=queue_id, user_id=user_id
    )
    return member is not None


def apply_change(update: RoutingUpdate, column: str, name: str, old: Any, new: Any) -> None:
    """Adds a column's new value and its history change, when it differs from the old."""
    if old != new:
        update.values[column] = new
        update.changes.append({"field": name, "old": old, "new": new})


def priority_from_fields(
    desk: DeskSettings, *, ticket_type_id: str, changed: Mapping[str, Any], data: Mapping[str, Any]
) -> str | None:
    """The priority an update of the type's priority field gives (None: not changed)."""
    routing = desk.routing_of(ticket_type_id)
    if routing.priority_field is None or routing.priority_field not in changed:
        return None
    return routing.priority_of(data)


def _is_user_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_USER_ID
        and not any(c.isspace() or ord(c) < 32 or c == "/" for c in value)
    )


# -- queues and their members ---------------------------------------------------------------


def queue_public(queue: QueueSpec) -> dict[str, Any]:
    """A queue as the API shows it."""
    return {
        "id": queue.id,
        "name": queue.name,
        "teamId": queue.team,
        "autoAssign": queue.auto_assign,
    }


def member_public(member: QueueMember) -> dict[str, Any]:
    """A queue member as the API shows it."""
    return {
        "queueId": member.queue_id,
        "userId": member.user_id,
        "availability": member.availability,
    }


def _queue(access: Access, queue_id: str) -> QueueSpec:
    queue = access.catalog.desk.queues.get(queue_id)
    if queue is None:
        raise NotFound(f"Queue {queue_id} not found")
    return queue


def require_agent(access: Access) -> None:
    """Agents and admins only (401 USER_PERMISSION_FAILURE for others)."""
    # Queues and their members (agents' emails and availability) are the desk's own
    # business: requesters see their tickets, not who works them.
    if not access.principal.roles & AGENT_ROLES:
        raise PermissionFailure("You do not have the required permissions to read queues")


def list_queues(access: Access) -> list[dict[str, Any]]:
    """The tenant's queues (agents and admins only)."""
    require_agent(access)
    return [queue_public(q) for q in access.catalog.desk.queues.values()]


async def current_queues(session: AsyncSession, *, access: Access) -> list[dict[str, Any]]:
    """The queues the caller is a member of (by username or email), with their availability."""
    principal = access.principal
    memberships = await repository.queues_of(
        session,
        tenant_id=access.tenant_id,
        user_ids={principal.username, principal.submitter},
    )
    queues = access.catalog.desk.queues
    return [
        {**queue_public(queues[m.queue_id]), "userId": m.user_id, "availability": m.availability}
        for m in memberships
        if m.queue_id in queues
    ]


async def list_members(
    session: AsyncSession, *, access: Access, queue_id: str
) -> list[dict[str, Any]]:
    """A queue's members with their availability (agents and admins only)."""
    require_agent(access)
    queue = _queue(access, queue_id)
    members = await repository.list_members(session, tenant_id=access.tenant_id, queue_id=queue.id)
    return [member_public(m) for m in members]


async def all_members(session: AsyncSession, *, access: Access) -> list[str]:
    """The users who are members of any of the tenant's queues (who tickets go to)."""
    return await repository.member_ids(session, tenant_id=access.tenant_id)


def require_admin(access: Access) -> None:
    """Only tenant admins change a queue's members."""
    if ADMIN_ROLE not in access.principal.roles:
        raise PermissionFailure("You do not have the required permissions to change queue members")


def may_set_availability(access: Access, user_id: str) -> None:
    """Admins set anyone's availability, agents their own."""
    principal = access.principal
    own = user_id in (principal.username, principal.submitter)
    if ADMIN_ROLE not in principal.roles and not (own and principal.roles & AGENT_ROLES):
        whose = "your own" if own else "another member's"
        raise PermissionFailure(
            f"You do not have the required permissions to change {whose} availability"
        )


def _body_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InputValidationFailure({"body": ["Request body must be a JSON object"]})
    return body


def _only_keys(reasons: Reasons, body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in body:
        if key not in allowed:
            reasons.add(key, f"Unknown key {key}")


def member_to_add(body: Any) -> str:
    """The user a POST /queue/{id}/users body names, or InputValidationFailure."""
    body = _body_object(body)
    reasons = Reasons()
    _only_keys(reasons, body, ("userId",))
    user_id = body.get("userId")
    if not _is_user_id(user_id):
        reasons.add("userId", "userId must be a username or email address")
    reasons.raise_if_any()
    assert isinstance(user_id, str)
    return user_id


def availability_wanted(body: Any) -> str:
    """The availability a PUT /queue/{id}/users/{user} body sets, or InputValidationFailure."""
    body = _body_object(body)
    reasons = Reasons()
    _only_keys(reasons, body, ("availability",))
    availability = body.get("availability")
    if not isinstance(availability, str) or availability not in AVAILABILITIES:
        reasons.add("availability", f"availability must be one of: {', '.join(AVAILABILITIES)}")
    reasons.raise_if_any()
    assert isinstance(availability, str)
    return availability


async def add_member(
    session: AsyncSession, *, access: Access, queue_id: str, user_id: str
) -> dict[str, Any]:
    """Adds a user to a queue, available (admins only)."""
    require_admin(access)
    queue = _queue(access, queue_id)
    added = await repository.add_members(
        session, tenant_id=access.tenant_id, queue_id=queue.id, user_ids=[user_id]
    )
    if not added:
        raise InputValidationFailure({"userId": [f"{user_id} is already a member of {queue.id}"]})
    member = await repository.get_member(
        session, tenant_id=access.tenant_id, queue_id=queue.id, user_id=user_id
    )
    assert member is not None
    return member_public(member)


async def remove_member(
    session: AsyncSession, *, access: Access, queue_id: str, user_id: str
) -> None:
    """Removes a user from a queue (admins only); tickets assigned to them stay so."""
    require_admin(access)
    queue = _queue(access, queue_id)
    removed = await repository.remove_member(
        session, tenant_id=access.tenant_id, queue_id=queue.id, user_id=user_id
    )
    if not removed:
        raise NotFound(f"{user_id} is not a member of queue {queue.id}")


async def set_availability(
    session: AsyncSession, *, access: Access, queue_id: str, user_id: str, availability: str
) -> dict[str, Any]:
    """Sets a member's availability: admins for anyone, agents for themselves."""
    may_set_availability(access, user_id)
    queue = _queue(access, queue_id)
    member = await repository.set_availability(
        session,
        tenant_id=access.tenant_id,
        queue_id=queue.id,
        user_id=user_id,
        availability=availability,
    )
    if member is None:
        raise NotFound(f"{user_id} is not a member of queue {queue.id}")
    return member_public(member)
