"""The service-desk keys of the tenant configuration file: what loads, what is refused and
why, and what a loaded tenant's catalog makes of them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.desk_support import FAST_POLICY, POLICY, QUEUE, desk_overrides
from tests.support import new_tenant_config
from ticketing.catalog.config_file import ConfigError, parse_config
from ticketing.sla.config import desk_settings
from ticketing.sla.settings import compile_desk


def _config(**changes: Any) -> dict[str, Any]:
    config = new_tenant_config(**desk_overrides())
    config.update(copy.deepcopy(changes))
    return config


def _problems(config: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config({"tenants": [config]}, source="t.yaml")
    return "\n".join(caught.value.problems)


def test_the_example_configuration_compiles_to_policies_queues_and_routing() -> None:
    tenant = parse_config({"tenants": [_config()]}, source="t.yaml").tenants[0]
    desk = compile_desk(desk_settings(tenant))
    assert desk.default_policy == POLICY
    assert set(desk.policies) == {POLICY, FAST_POLICY}
    assert desk.policies[POLICY].pause_statuses == frozenset({"Waiting for customer"})
    assert desk.policy_for_offer("23630") is desk.policies[FAST_POLICY]
    assert desk.policy_for_offer("23629") is desk.policies[POLICY]
    assert desk.queues[QUEUE].round_robin
    routing = desk.routing_of("16910")
    assert routing.queue == QUEUE
    assert routing.priority_of({routing.priority_field: "<1week"}) == "critical"
    assert routing.priority_of({}) == "medium"
    assert [d.isoformat() for d in desk.holidays] == ["2026-12-25"]


def test_a_tenant_without_desk_keys_has_no_policies_or_queues() -> None:
    tenant = parse_config({"tenants": [new_tenant_config()]}, source="t.yaml").tenants[0]
    desk = compile_desk(desk_settings(tenant))
    assert (desk.policies, desk.queues, desk.default_policy) == ({}, {}, None)
    assert desk.policy_for_offer("23629") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"business_hours": {"mon": ["09:00", "17:00"], "funday": ["09:00", "10:00"]}},
            "unknown weekday",
        ),
        ({"business_hours": {"mon": ["17:00", "09:00"]}}, "opening time must come before"),
        ({"business_hours": {"mon": ["9am", "5pm"]}}, "two HH:MM times"),
        ({"holidays": ["2026-02-30"]}, "holidays[0]"),
    ],
)
def test_bad_business_hours_and_holidays_are_refused(change: dict[str, Any], message: str) -> None:
    assert message in _problems(_config(**change))


def _policy(**changes: Any) -> dict[str, Any]:
    policy = copy.deepcopy(desk_overrides()["sla_policies"][0])
    policy.update(changes)
    return policy


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (_policy(timezone="Mars/Olympus"), "unknown timezone 'Mars/Olympus'"),
        (_policy(response_minutes={"critical": 30}), "missing: high, medium, low"),
        (
            _policy(resolution_minutes={"critical": 1, "high": 1, "medium": 1, "low": 0}),
            "greater than or equal to 1",
        ),
        (
            _policy(
                response_minutes={"urgent": 1, "critical": 1, "high": 1, "medium": 1, "low": 1}
            ),
            "urgent",
        ),
    ],
)
def test_bad_policies_are_refused(policy: dict[str, Any], message: str) -> None:
    assert message in _problems(_config(sla_policies=[policy]))


def test_references_must_exist_and_ids_be_unique() -> None:
    overrides = desk_overrides()
    types = overrides["ticket_types"]
    types[0]["queue"] = "99999"
    assert "queue '99999' is not a queue of this tenant" in _problems(_config(ticket_types=types))
    offers = overrides["offers"]
    offers[0]["sla_id"] = "sla-nope"
    assert "sla_id 'sla-nope' is not an sla policy" in _problems(_config(offers=offers))
    types = desk_overrides()["ticket_types"]
    types[0]["priority_field"] = "00000000-0000-4000-8000-0000000000ff"
    assert "is not a field of this ticket type" in _problems(_config(ticket_types=types))
    types = desk_overrides()["ticket_types"]
    types[0]["priority_map"] = {"<1week": "urgent"}
    assert "priority_map" in _problems(_config(ticket_types=types))
    two_defaults = [_policy(), _policy(id="other")]
    assert "only one sla policy can be the default" in _problems(_config(sla_policies=two_defaults))
    queues = desk_overrides()["queues"]
    assert "queue ids must be unique" in _problems(_config(queues=[queues[0], queues[0]]))
    bad_member = [{**queues[0], "members": ["has space"]}]
    assert "queues[0].members[0]" in _problems(_config(queues=bad_member))
    bad_mode = [{**queues[0], "auto_assign": "random"}]
    assert "auto_assign" in _problems(_config(queues=bad_mode))
