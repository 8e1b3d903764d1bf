"""Tenant configurations with queues and SLA policies, and helpers for the tests of both."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from tests.support import NEEDED_WITHIN, Tenant, standard_tenant
from tests.ticket_api import call

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
