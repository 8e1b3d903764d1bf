"""SLA clocks of tickets: starting them at creation, moving them on status changes, agent
comments and priority changes, and the indexed moments derived from their state.

The clock rules themselves live in ticketing.sla.clocks (pure); this module finds the
policy and calendar a ticket's clocks run on and turns the clocks' state into the columns
that the filters and the sweeper read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ticketing.sla import clocks
from ticketing.sla.policy import SlaPolicy
from ticketing.sla.settings import DeskSettings

Changes = list[dict[str, Any]]


@dataclass
class SlaUpdate:
    """What a change did to a ticket's clocks: the ticket columns to write, and the history
    changes the clocks made (both empty when nothing moved)."""

    values: dict[str, Any] = field(default_factory=dict)
    changes: Changes = field(default_factory=list)


def columns(state: dict[str, Any] | None, *, at: datetime) -> dict[str, Any]:
    """The ticket columns of an SLA state: the state, the earliest running due time
    (`sla_due_at`), when the ticket is or will be in breach (`sla_breach_at`) and the next
    due time whose breach is not recorded yet (`sla_sweep_at`)."""
    if state is None:
        return {"sla": None, "sla_due_at": None, "sla_breach_at": None, "sla_sweep_at": None}
    slas = clocks.public_slas(state, now=at)
    due = clocks.next_due(state)
    dues: dict[str, datetime] = {s["id"]: datetime.fromisoformat(s["dueAt"]) for s in slas}
    breached = [dues[s["id"]] for s in slas if s["breached"]]
    # Past every due time, every clock that can still breach is an unrecorded breach.
    horizon = max([at, *dues.values()]) + timedelta(seconds=1)
    pending = set(clocks.unrecorded_breaches(state, now=horizon))
    sweep = [dues[s["id"]] for s in slas if s["id"] in pending and s["state"] != "paused"]
    return {
        "sla": state,
        "sla_due_at": due,
        "sla_breach_at": min([*breached, *([due] if due else [])], default=None),
        "sla_sweep_at": min(sweep, default=None),
    }


def start(
    desk: DeskSettings,
    *,
    ticket_type_id: str,
    offer_id: str,
    data: Mapping[str, Any],
    at: datetime,
) -> tuple[str | None, dict[str, Any]]:
    """A new ticket's priority and SLA columns: clocks start when a policy applies (the
    offer's, else the tenant's default)."""
    policy = desk.policy_for_offer(offer_id)
    priority = desk.start_priority(ticket_type_id, data, sla=policy is not None)
    if policy is None or priority is None:
        return priority, columns(None, at=at)
    state = clocks.start(policy, priority=priority, at=at, calendar=desk.calendar(policy))
    return priority, columns(state, at=at)


def _policy(desk: DeskSettings, state: dict[str, Any] | None, at: datetime) -> SlaPolicy | None:
    """The policy a ticket's clocks run on (None: no clocks, or a policy since removed from
    the configuration, whose clocks then stand as they are)."""
    if not state:
        return None
    slas = clocks.public_slas(state, now=at)
    return desk.policies.get(slas[0]["policyId"]) if slas else None


def _update(state: dict[str, Any], changes: Changes, at: datetime) -> SlaUpdate:
    return SlaUpdate(columns(state, at=at), changes) if changes else SlaUpdate()


def on_change(
    desk: DeskSettings,
    ticket: Mapping[str, Any],
    *,
    at: datetime,
    status: tuple[str, str] | None = None,
    priority: str | None = None,
) -> SlaUpdate:
    """Moves the clocks for an update: a new (status, category), then a new priority."""
    state = ticket.get("sla")
    policy = _policy(desk, state, at)
    if policy is None or state is None:
        return SlaUpdate()
    calendar = desk.calendar(policy)
    changes: Changes = []
    if status is not None:
        state, made = clocks.on_status(
            state,
            old_status=ticket["status_type"],
            old_category=ticket["status_category"],
            new_status=status[0],
            new_category=status[1],
            at=at,
            policy=policy,
            calendar=calendar,
        )
        changes += made
    if priority is not None:
        state, made = clocks.on_priority(
            state, priority=priority, at=at, policy=policy, calendar=calendar
        )
        changes += made
    return _update(state, changes, at)


def on_agent_public_comment(
    desk: DeskSettings, ticket: Mapping[str, Any], *, at: datetime
) -> SlaUpdate:
    """Moves the clocks for an agent's public comment (it meets the response clock)."""
    state = ticket.get("sla")
    policy = _policy(desk, state, at)
    if policy is None or state is None:
        return SlaUpdate()
    state, changes = clocks.on_agent_public_comment(
        state, at=at, policy=policy, calendar=desk.calendar(policy)
    )
    return _update(state, changes, at)


def changed_in_place(state: dict[str, Any] | None, *, since: datetime) -> bool:
    """Whether a clock stopped after `since` (the moment the ticket's version was written):
    only an agent's public comment stops a clock without writing a new version, so this
    tells whether the clocks changed under the ticket's current etag."""
    return clocks.stopped_after(state, since)


def record_breaches(state: dict[str, Any], *, at: datetime) -> SlaUpdate:
    """Records every breach of the clocks not recorded yet (the sweeper's write)."""
    changes: Changes = []
    for clock_id in clocks.unrecorded_breaches(state, now=at):
        state, made = clocks.record_breach(state, clock_id, at=at)
        changes += made
    return SlaUpdate(columns(state, at=at), changes)


def public(state: dict[str, Any] | None, *, now: datetime) -> dict[str, list[dict[str, Any]]]:
    """The `slas` and `metrics` of a ticket response, as they stand at `now`."""
    if state is None:
        return {"metrics": [], "slas": []}
    return {"metrics": clocks.public_metrics(state), "slas": clocks.public_slas(state, now=now)}
