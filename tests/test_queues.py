"""Queues: round-robin assignment (fair under concurrency and across processes, skipping
members who are not available), routing on update, and the queue endpoints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.desk_support import (
    AGENTS,
    OTHER_QUEUE,
    QUEUE,
    admin_token,
    agent_token,
    desk_overrides,
    set_availability,
)
from tests.support import (
    NEEDED_WITHIN,
    Database,
    Server,
    Tenant,
    seed_body,
    start_server,
    stop_server,
)
from tests.ticket_api import (
    assert_error,
    call,
    created,
    get_ticket,
    patch,
    reason_of,
    unchanged,
    updated,
    user_token,
)


@pytest.fixture
def desk(make_tenant: Callable[..., Tenant]) -> Tenant:
    """A tenant whose type 16910 goes to a round-robin queue of four agents."""
    return make_tenant(**desk_overrides())


def _create_in_parallel(tenants: list[Tenant], count: int) -> list[dict[str, Any]]:
    """`count` creates at once, spread over the tenants' servers (one client per thread)."""

    def create(index: int) -> dict[str, Any]:
        tenant = tenants[index % len(tenants)]
        with httpx.Client(timeout=60) as client:
            response = client.post(
                f"{tenant.base_url}/api/v2/ticketing/ticket/create/james/16910",
                params={"type": "template", "module": "ticketing"},
                headers=tenant.headers(),
                json=seed_body(),
            )
        return created(response)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(create, range(count)))


def test_twenty_parallel_creates_over_four_members_assign_five_each(desk: Tenant) -> None:
    tickets = _create_in_parallel([desk], 20)
    assert Counter(t["assignee"] for t in tickets) == {agent: 5 for agent in AGENTS}
    assert {t["queueId"] for t in tickets} == {QUEUE}
    # What the create answered is what was stored.
    stored = get_ticket(desk, tickets[0]["object_id"])
    assert stored["assignee"] == tickets[0]["assignee"]


@pytest.fixture
def second_server(server: Server, database: Database, data_dir: Path) -> Iterator[Server]:
    other = start_server(database_url=database.url, data_dir=data_dir)
    yield other
    stop_server(other)


def test_round_robin_is_fair_across_two_server_processes(
    desk: Tenant, second_server: Server
) -> None:
    via_second = Tenant(**{**desk.__dict__, "base_url": second_server.base_url})
    tickets = _create_in_parallel([desk, via_second], 20)
    assert Counter(t["assignee"] for t in tickets) == {agent: 5 for agent in AGENTS}


def test_round_robin_skips_members_who_are_away_or_offline(desk: Tenant) -> None:
    set_availability(desk, AGENTS[1], "away")
    set_availability(desk, AGENTS[2], "offline")
    tickets = [created(desk.create()) for _ in range(6)]
    assert Counter(t["assignee"] for t in tickets) == {AGENTS[0]: 3, AGENTS[3]: 3}
    # Back at work: picked again.
    set_availability(desk, AGENTS[1], "available")
    more = [created(desk.create())["assignee"] for _ in range(3)]
    assert AGENTS[1] in more


def test_nobody_available_leaves_the_ticket_unassigned(desk: Tenant) -> None:
    for agent in AGENTS:
        set_availability(desk, agent, "offline")
    ticket = created(desk.create())
    assert ticket["assignee"] is None
    assert ticket["queueId"] == QUEUE


def test_the_assignment_is_in_the_creation_history(desk: Tenant) -> None:
    ticket = created(desk.create())
    history = desk.get(f"/ticket/{ticket['object_id']}/history").json()["data"]["value"]
    changes = {c["field"]: c["new"] for c in history[0]["changes"]}
    assert changes["assignee"] == ticket["assignee"] in AGENTS
    assert changes["queueId"] == QUEUE
    assert changes["priority"] == "high"  # neededWithin <2week


def test_a_queue_without_round_robin_assigns_nobody(make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant(**desk_overrides(auto_assign="none"))
    ticket = created(tenant.create())
    assert (ticket["queueId"], ticket["assignee"]) == (QUEUE, None)


def test_priority_comes_from_the_priority_field_through_the_map_else_the_default(
    desk: Tenant,
) -> None:
    def priority(needed: str | None) -> str:
        body = seed_body()
        if needed is None:
            del body["ticketBody"][NEEDED_WITHIN]
        else:
            body["ticketBody"][NEEDED_WITHIN] = needed
        return str(created(desk.create(body))["priority"])

    assert priority("<1week") == "critical"
    assert priority("<2week") == "high"
    assert priority("<1month") == "low"
    assert priority(None) == "low"  # the field's defaultValue, <1month


# -- update ---------------------------------------------------------------------------------


def test_update_assigns_to_a_member_and_records_it(desk: Tenant) -> None:
    ticket = created(desk.create())
    other = next(a for a in AGENTS if a != ticket["assignee"])
    after = updated(patch(desk, ticket["object_id"], {"etag": ticket["etag"], "assignee": other}))
    assert after["assignee"] == other
    history = desk.get(f"/ticket/{ticket['object_id']}/history").json()["data"]["value"]
    assert history[-1]["changes"] == [
        {"field": "assignee", "old": ticket["assignee"], "new": other}
    ]
    cleared = updated(patch(desk, ticket["object_id"], {"etag": after["etag"], "assignee": None}))
    assert cleared["assignee"] is None


def test_update_rejects_an_assignee_outside_the_queue_an_unknown_queue_and_priority(
    desk: Tenant,
) -> None:
    ticket = created(desk.create())
    reason = reason_of(
        patch(
            desk,
            ticket["object_id"],
            {
                "etag": ticket["etag"],
                "assignee": "l2@example.com",
                "queueId": "nope",
                "priority": "urgent",
            },
        )
    )
    assert set(reason) == {"assignee", "queueId", "priority"}
    unchanged(desk, ticket)
    # Each on its own too.
    for body in ({"assignee": "stranger@example.com"}, {"queueId": "99"}, {"priority": 3}):
        reason = reason_of(patch(desk, ticket["object_id"], {"etag": ticket["etag"], **body}))
        assert set(reason) == set(body)
    unchanged(desk, ticket)


def test_routing_errors_are_reported_with_field_errors(desk: Tenant) -> None:
    ticket = created(desk.create())
    body = {"etag": ticket["etag"], "priority": "x", "ticketBody": {NEEDED_WITHIN: "never"}}
    assert set(reason_of(patch(desk, ticket["object_id"], body))) == {"priority", NEEDED_WITHIN}


def test_moving_to_another_queue_checks_the_assignee_against_the_new_queue(desk: Tenant) -> None:
    ticket = created(desk.create())
    stays = {"etag": ticket["etag"], "queueId": OTHER_QUEUE, "assignee": ticket["assignee"]}
    assert set(reason_of(patch(desk, ticket["object_id"], stays))) == {"assignee"}
    moved = updated(
        patch(
            desk,
            ticket["object_id"],
            {"etag": ticket["etag"], "queueId": OTHER_QUEUE, "assignee": "l2@example.com"},
        )
    )
    assert (moved["queueId"], moved["assignee"]) == (OTHER_QUEUE, "l2@example.com")


def _history(desk: Tenant, object_id: str) -> list[dict[str, Any]]:
    return desk.get(f"/ticket/{object_id}/history").json()["data"]["value"]  # type: ignore[no-any-return]


def test_moving_to_a_queue_the_assignee_is_not_in_unassigns_the_ticket(desk: Tenant) -> None:
    ticket = created(desk.create())
    assignee = ticket["assignee"]
    assert (ticket["queueId"], assignee in AGENTS) == (QUEUE, True)
    moved = updated(
        patch(desk, ticket["object_id"], {"etag": ticket["etag"], "queueId": OTHER_QUEUE})
    )
    # Issue 10: the assignee is "a member of the queue"; round robin assigns at creation
    # only, so the move leaves the ticket unassigned.
    assert (moved["queueId"], moved["assignee"]) == (OTHER_QUEUE, None)
    assert _history(desk, ticket["object_id"])[-1]["changes"] == [
        {"field": "queueId", "old": QUEUE, "new": OTHER_QUEUE},
        {"field": "assignee", "old": assignee, "new": None},
    ]
    # A ticket with no queue has no assignee either.
    back = updated(patch(desk, ticket["object_id"], {"etag": moved["etag"], "queueId": QUEUE}))
    assert back["assignee"] is None
    again = updated(patch(desk, ticket["object_id"], {"etag": back["etag"], "assignee": assignee}))
    assert again["assignee"] == assignee
    nowhere = updated(patch(desk, ticket["object_id"], {"etag": again["etag"], "queueId": None}))
    assert (nowhere["queueId"], nowhere["assignee"]) == (None, None)
    assert _history(desk, ticket["object_id"])[-1]["changes"] == [
        {"field": "queueId", "old": QUEUE, "new": None},
        {"field": "assignee", "old": assignee, "new": None},
    ]


def test_moving_to_a_queue_the_assignee_is_in_keeps_them(
    make_tenant: Callable[..., Tenant],
) -> None:
    overrides = desk_overrides()
    overrides["queues"][1]["members"] = ["l2@example.com", *AGENTS]
    desk = make_tenant(**overrides)
    ticket = created(desk.create())
    assert ticket["assignee"] in AGENTS
    moved = updated(
        patch(desk, ticket["object_id"], {"etag": ticket["etag"], "queueId": OTHER_QUEUE})
    )
    assert (moved["queueId"], moved["assignee"]) == (OTHER_QUEUE, ticket["assignee"])
    assert _history(desk, ticket["object_id"])[-1]["changes"] == [
        {"field": "queueId", "old": QUEUE, "new": OTHER_QUEUE}
    ]


def test_changing_the_priority_field_changes_the_priority(desk: Tenant) -> None:
    ticket = created(desk.create())
    assert ticket["priority"] == "high"
    after = updated(
        patch(
            desk,
            ticket["object_id"],
            {"etag": ticket["etag"], "ticketBody": {NEEDED_WITHIN: "<1week"}},
        )
    )
    assert after["priority"] == "critical"
    explicit = updated(patch(desk, ticket["object_id"], {"etag": after["etag"], "priority": "low"}))
    assert explicit["priority"] == "low"


def test_users_may_not_route_tickets(desk: Tenant) -> None:
    token = user_token(desk)
    ticket = created(desk.create(token=token))
    response = patch(
        desk, ticket["object_id"], {"etag": ticket["etag"], "priority": "low"}, token=token
    )
    assert_error(response, 401, "USER_PERMISSION_FAILURE")
    unchanged(desk, ticket)


# -- queue endpoints ------------------------------------------------------------------------


def test_queue_list_and_members(desk: Tenant) -> None:
    response = call(desk, "GET", "/queue/list")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["status"] == 200
    assert body["data"]["value"] == [
        {"id": QUEUE, "name": "Service desk L1", "teamId": "james", "autoAssign": "round_robin"},
        {"id": OTHER_QUEUE, "name": "L2", "teamId": None, "autoAssign": "none"},
    ]
    members = call(desk, "GET", f"/queue/{QUEUE}/users").json()["data"]
    assert members["count"] == 4
    assert [m["userId"] for m in members["value"]] == AGENTS
    assert {m["availability"] for m in members["value"]} == {"available"}


def test_requesters_may_not_read_queues_or_their_members(desk: Tenant) -> None:
    requester = user_token(desk)
    for path in ("/queue/list", f"/queue/{QUEUE}/users", "/queue/nope/users"):
        response = call(desk, "GET", path, token=requester)
        assert_error(response, 401, "USER_PERMISSION_FAILURE")
        assert response.json()["message"] == (
            "You do not have the required permissions to read queues"
        )
        assert "@example.com" not in response.text
    # Agents and admins read both.
    for token in (agent_token(desk, AGENTS[0]), admin_token(desk)):
        assert call(desk, "GET", "/queue/list", token=token).status_code == 200
        assert call(desk, "GET", f"/queue/{QUEUE}/users", token=token).status_code == 200
    # The permission comes before the query's validation, as on every route.
    for path in ("/queue/list", f"/queue/{QUEUE}/users"):
        assert_error(call(desk, "GET", path, token=requester, params={}), 401)
    # A requester's own queues stay readable (none: an empty list).
    assert call(desk, "GET", "/queue/current", token=requester).json()["data"]["count"] == 0


def test_current_queues_are_the_callers(desk: Tenant) -> None:
    response = call(desk, "GET", "/queue/current", token=agent_token(desk, AGENTS[0]))
    assert response.status_code == 200, response.text
    value = response.json()["data"]["value"]
    assert [(q["id"], q["userId"], q["availability"]) for q in value] == [
        (QUEUE, AGENTS[0], "available")
    ]
    nobody = call(desk, "GET", "/queue/current", token=agent_token(desk, "x@example.com"))
    assert nobody.json()["data"] == {"value": [], "count": 0}


def test_admins_add_and_remove_members(desk: Tenant) -> None:
    admin = admin_token(desk)
    added = call(
        desk, "POST", f"/queue/{QUEUE}/users", token=admin, json={"userId": "new@example.com"}
    )
    assert added.status_code == 200, added.text
    assert added.json()["data"] == {
        "queueId": QUEUE,
        "userId": "new@example.com",
        "availability": "available",
    }
    again = call(
        desk, "POST", f"/queue/{QUEUE}/users", token=admin, json={"userId": "new@example.com"}
    )
    assert set(reason_of(again)) == {"userId"}
    removed = call(desk, "DELETE", f"/queue/{QUEUE}/users/new@example.com", token=admin)
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"success": True, "message": "user removed from queue", "status": 200}
    assert_error(call(desk, "DELETE", f"/queue/{QUEUE}/users/new@example.com", token=admin), 404)
    users = call(desk, "GET", f"/queue/{QUEUE}/users").json()["data"]["value"]
    assert [u["userId"] for u in users] == AGENTS


def test_a_removed_member_is_no_longer_assigned(desk: Tenant) -> None:
    admin = admin_token(desk)
    for agent in AGENTS[1:]:
        assert call(desk, "DELETE", f"/queue/{QUEUE}/users/{agent}", token=admin).status_code == 200
    assert {created(desk.create())["assignee"] for _ in range(3)} == {AGENTS[0]}


def test_agents_may_not_change_members(desk: Tenant) -> None:
    agent = agent_token(desk, AGENTS[0])
    assert_error(
        call(desk, "POST", f"/queue/{QUEUE}/users", token=agent, json={"userId": "x@example.com"}),
        401,
        "USER_PERMISSION_FAILURE",
    )
    assert_error(
        call(desk, "DELETE", f"/queue/{QUEUE}/users/{AGENTS[1]}", token=agent),
        401,
        "USER_PERMISSION_FAILURE",
    )
    assert len(call(desk, "GET", f"/queue/{QUEUE}/users").json()["data"]["value"]) == 4


def test_an_agent_sets_their_own_availability_only(desk: Tenant) -> None:
    agent = agent_token(desk, AGENTS[0])
    own = set_availability(desk, AGENTS[0], "away", token=agent)
    assert own["data"] == {"queueId": QUEUE, "userId": AGENTS[0], "availability": "away"}
    other = call(
        desk, "PUT", f"/queue/{QUEUE}/users/{AGENTS[1]}", token=agent, json={"availability": "away"}
    )
    body = assert_error(other, 401, "USER_PERMISSION_FAILURE")
    assert "another member's availability" in body["message"]
    users = {
        u["userId"]: u["availability"]
        for u in call(desk, "GET", f"/queue/{QUEUE}/users").json()["data"]["value"]
    }
    assert users == {
        AGENTS[0]: "away",
        AGENTS[1]: "available",
        AGENTS[2]: "available",
        AGENTS[3]: "available",
    }


def test_a_user_in_a_queue_may_not_set_their_own_availability(
    make_tenant: Callable[..., Tenant],
) -> None:
    overrides = desk_overrides()
    overrides["queues"][1]["members"] = ["l2@example.com", "alice@example.com"]
    desk = make_tenant(**overrides)
    response = call(
        desk,
        "PUT",
        f"/queue/{OTHER_QUEUE}/users/alice@example.com",
        token=user_token(desk, "alice"),
        json={"availability": "away"},
    )
    body = assert_error(response, 401, "USER_PERMISSION_FAILURE")
    assert body["message"] == (
        "You do not have the required permissions to change your own availability"
    )
    members = call(desk, "GET", f"/queue/{OTHER_QUEUE}/users").json()["data"]["value"]
    assert {m["userId"]: m["availability"] for m in members}["alice@example.com"] == "available"


def test_queue_endpoint_errors(desk: Tenant) -> None:
    admin = admin_token(desk)
    assert_error(call(desk, "GET", "/queue/nope/users"), 404)
    assert_error(call(desk, "POST", "/queue/nope/users", token=admin, json={"userId": "a@b"}), 404)
    assert_error(
        call(
            desk,
            "PUT",
            f"/queue/{QUEUE}/users/ghost@example.com",
            token=admin,
            json={"availability": "away"},
        ),
        404,
    )
    bad = call(
        desk,
        "PUT",
        f"/queue/{QUEUE}/users/{AGENTS[0]}",
        token=admin,
        json={"availability": "asleep"},
    )
    assert set(reason_of(bad)) == {"availability"}
    extra = call(desk, "POST", f"/queue/{QUEUE}/users", token=admin, json={"userId": "", "role": 1})
    assert set(reason_of(extra)) == {"userId", "role"}
    not_json = call(desk, "POST", f"/queue/{QUEUE}/users", token=admin, json=["a"])
    assert set(reason_of(not_json)) == {"body"}
    assert_error(
        call(desk, "GET", "/queue/list", params={"type": "nope", "module": "ticketing"}), 400
    )
    no_token = desk.client.get(
        f"{desk.base_url}/api/v2/ticketing/queue/list",
        params={"type": "agent", "module": "ticketing"},
    )
    assert_error(no_token, 401, "AUTHENTICATION_FAILURE")


def test_queues_do_not_cross_tenants(desk: Tenant, make_tenant: Callable[..., Tenant]) -> None:
    other = make_tenant()
    assert call(other, "GET", "/queue/list").json()["data"] == {"value": [], "count": 0}
    assert_error(call(other, "GET", f"/queue/{QUEUE}/users"), 404)
    # The other tenant's token naming this tenant: not found.
    foreign = desk.client.get(
        f"{desk.base_url}/api/v2/ticketing/queue/list",
        params={"type": "agent", "module": "ticketing"},
        headers={**other.headers(), "x-tenantid": desk.id},
    )
    assert_error(foreign, 404)


def test_loading_the_file_again_adds_its_missing_members_and_keeps_the_apis(desk: Tenant) -> None:
    admin = admin_token(desk)
    assert call(desk, "DELETE", f"/queue/{QUEUE}/users/{AGENTS[3]}", token=admin).status_code == 200
    extra = {"userId": "temp@example.com"}
    assert call(desk, "POST", f"/queue/{QUEUE}/users", token=admin, json=extra).status_code == 200
    set_availability(desk, AGENTS[0], "away")

    def members() -> dict[str, str]:
        value = call(desk, "GET", f"/queue/{QUEUE}/users").json()["data"]["value"]
        return {m["userId"]: m["availability"] for m in value}

    # Unchanged file: nothing is touched.
    assert desk.db.load({"tenants": [desk.config]}) == [(desk.id, "unchanged")]
    assert AGENTS[3] not in members()
    # A changed file: its members are back, the API's member and availability stay.
    desk.config["name"] = "Renamed"
    assert desk.db.load({"tenants": [desk.config]}) == [(desk.id, "updated")]
    assert members() == {
        AGENTS[0]: "away",
        AGENTS[1]: "available",
        AGENTS[2]: "available",
        AGENTS[3]: "available",
        "temp@example.com": "available",
    }
