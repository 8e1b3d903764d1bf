"""Tenant configurations with queues and SLA policies, and helpers for the tests of both."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from tests.support import NEEDED_WITHIN, Database, Tenant, standard_tenant
from tests.ticket_api import call
from ticketing.kit.time import isoformat, utcnow
from ticketing.models import Ticket
from ticketing.sla.service import columns

QUEUE = "33654"
OTHER_QUEUE = "40000"
AGENTS = ["a1@example.com", "a2@example.com", "a3@example.com", "a4@example.com"]
POLICY = "sla-001"
FAST_POLICY = "sla-fast"
# Wall-clock targets, so that due times are exact offsets of the start in any test run.
RESPONSE = {"critical": 30, "high": 60, "medium": 240, "low": 480}
RESOLUTION = {"critical": 240, "high": 480, "medium": 1440, "low": 2880}
WORKFLOW = {
    "statuses": [
        {"name": "Open", "category": "To-do Category", "initial": True},
        {"name": "In Progress", "category": "In-Progress Category"},
        {"name": "Waiting for customer", "category": "To-do Category"},
        {"name": "Resolved", "category": "Done Category"},
        {"name": "Closed", "category": "Done Category"},
    ]
}


def desk_overrides(
    *, members: list[str] | None = None, auto_assign: str = "round_robin"
) -> dict[str, Any]:
    """Overrides of the standard tenant: type 16910 takes its priority from `neededWithin`
    and goes to queue 33654 (round robin over four agents); a default wall-clock policy;
    offer 23630 (type 20000) uses a policy with one-minute targets."""
    config = standard_tenant("00000000-0000-4000-8000-000000000000", "unused")
    types = copy.deepcopy(config["ticket_types"])
    types[0].update(
        workflow=WORKFLOW,
        priority_field=NEEDED_WITHIN,
        priority_map={"<1week": "critical", "<2week": "high", "<1month": "low"},
        default_priority="medium",
        queue=QUEUE,
    )
    offers = copy.deepcopy(config["offers"])
    offers[1]["sla_id"] = FAST_POLICY
    return {
        "ticket_types": types,
        "offers": offers,
        "holidays": ["2026-12-25"],
        "sla_policies": [
            {
                "id": POLICY,
                "name": "Standard SLA",
                "default": True,
                "response_minutes": RESPONSE,
                "resolution_minutes": RESOLUTION,
                "business_hours_only": False,
                "timezone": "America/New_York",
                "pause_statuses": ["Waiting for customer"],
            },
            {
                "id": FAST_POLICY,
                "name": "One minute",
                "response_minutes": {p: 1 for p in RESPONSE},
                "resolution_minutes": {p: 100_000 for p in RESPONSE},
                "business_hours_only": False,
            },
        ],
        "queues": [
            {
                "id": QUEUE,
                "name": "Service desk L1",
                "team": "james",
                "members": AGENTS if members is None else members,
                "auto_assign": auto_assign,
            },
            {"id": OTHER_QUEUE, "name": "L2", "members": ["l2@example.com"]},
        ],
    }


def admin_token(tenant: Tenant) -> str:
    return tenant.token(roles=["tenant_admin"], username="boss", email="boss@example.com")


def agent_token(tenant: Tenant, email: str) -> str:
    return tenant.token(roles=["ticket_agent"], username=email.split("@")[0], email=email)


def set_availability(tenant: Tenant, user: str, availability: str, token: str | None = None) -> Any:
    response = call(
        tenant,
        "PUT",
        f"/queue/{QUEUE}/users/{user}",
        token=token or admin_token(tenant),
        json={"availability": availability},
    )
    assert response.status_code == 200, response.text
    return response.json()


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def slas_by_kind(ticket: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["kind"]: s for s in ticket["slas"]}


def metrics_of(ticket: dict[str, Any]) -> dict[str, Any]:
    return {m["name"]: m["value"] for m in ticket["metrics"]}


def due_in(db: Database, ticket_id: str, seconds: float) -> datetime:
    """Moves a ticket's SLA clocks earlier, as if it had been created sooner, so that the
    first one falls due `seconds` from now; returns that due time. A test of what happens at
    a due time then waits seconds, not the minute of the shortest policy. The stored state
    is rewritten as the service writes it (`ticketing.sla.service.columns`); the sweeper and
    every read work on it as they would have."""

    async def go(engine: Any) -> datetime:
        key = uuid.UUID(ticket_id)
        async with engine.begin() as conn:
            state = (await conn.execute(select(Ticket.sla).where(Ticket.id == key))).scalar_one()
            clocks = state["clocks"]
            first = min(datetime.fromisoformat(c["dueAt"]) for c in clocks)
            earlier = first - (utcnow() + timedelta(seconds=seconds))
            for clock in clocks:
                for name in ("startedAt", "dueAt"):
                    clock[name] = isoformat(datetime.fromisoformat(clock[name]) - earlier)
            values = columns(state, at=utcnow())
            await conn.execute(update(Ticket).where(Ticket.id == key).values(**values))
        return first - earlier

    return db.run(go)  # type: ignore[no-any-return]
