"""SLA clocks through the API: started at creation from the offer's or the default policy,
moved by status changes, agent comments and priority changes (visible in `slas`, `metrics`
and the history), the breach sweeper, the SLA filters, and tenants without SLAs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.desk_support import (
    AGENTS,
    FAST_POLICY,
    POLICY,
    QUEUE,
    RESOLUTION,
    RESPONSE,
    agent_token,
    desk_overrides,
    due_in,
    metrics_of,
    moment,
    slas_by_kind,
)
from tests.support import (
    NEEDED_WITHIN,
    Database,
    Server,
    Tenant,
    new_tenant_config,
    seed_body,
    start_server,
    stop_server,
)
from tests.ticket_api import (
    call,
    count,
    create_everything,
    created,
    get_ticket,
    list_ids,
    patch,
    reason_of,
    updated,
    user_token,
)
from ticketing.auth.dev_issuer import load_or_create_dev_key


@pytest.fixture
def desk(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant(**desk_overrides())


def history(tenant: Tenant, object_id: str) -> list[dict[str, Any]]:
    response = tenant.get(f"/ticket/{object_id}/history")
    assert response.status_code == 200, response.text
    return response.json()["data"]["value"]  # type: ignore[no-any-return]


def sla_fields(entry: dict[str, Any]) -> set[str]:
    return {c["field"] for c in entry["changes"] if c["field"].startswith("sla.")}


def answer_as_agent(desk: Tenant, object_id: str) -> None:
    """An agent's public comment on the ticket."""
    response = call(
        desk,
        "POST",
        f"/ticket/{object_id}/comments",
        token=agent_token(desk, AGENTS[0]),
        json={"body": "<p>On it</p>"},
    )
    assert response.status_code == 200, response.text


def test_create_starts_both_clocks_of_the_default_policy(desk: Tenant) -> None:
    ticket = created(desk.create())  # neededWithin <2week: high
    slas = slas_by_kind(ticket)
    assert set(slas) == {"response", "resolution"}
    started = moment(ticket["created_at"])
    for kind, targets in (("response", RESPONSE), ("resolution", RESOLUTION)):
        clock = slas[kind]
        assert clock["policyId"] == POLICY
        assert clock["name"] == "Standard SLA"
        assert clock["targetMinutes"] == targets["high"]
        assert moment(clock["startedAt"]) == started
        assert moment(clock["dueAt"]) == started + timedelta(minutes=targets["high"])
        assert clock["stoppedAt"] is None
        assert (clock["state"], clock["breached"], clock["pausedSeconds"]) == ("running", False, 0)
    assert get_ticket(desk, ticket["object_id"])["slas"] == ticket["slas"]


def test_the_offers_policy_wins_over_the_default(desk: Tenant) -> None:
    ticket = create_everything(desk)
    assert {s["policyId"] for s in ticket["slas"]} == {FAST_POLICY}
    # Type 20000 names no priority: an SLA'd ticket gets medium.
    assert ticket["priority"] == "medium"


def test_offers_show_their_sla_id(desk: Tenant) -> None:
    offers = desk.get("/tenant/sc/offers", params={"type": "agent", "module": "ticketing"})
    by_id = {o["id"]: o for o in offers.json()["data"]["offers"]}
    assert by_id["23630"]["slaId"] == FAST_POLICY
    assert by_id["23629"]["slaId"] is None


def test_waiting_for_customer_pauses_both_clocks_and_leaving_resumes_them(desk: Tenant) -> None:
    ticket = created(desk.create())
    due = {k: moment(s["dueAt"]) for k, s in slas_by_kind(ticket).items()}
    paused = updated(
        patch(desk, ticket["object_id"], {"etag": ticket["etag"], "status": "Waiting for customer"})
    )
    assert {s["state"] for s in paused["slas"]} == {"paused"}
    entry = history(desk, ticket["object_id"])[-1]
    assert {"status", "sla.response", "sla.resolution"} <= {c["field"] for c in entry["changes"]}
    time.sleep(1.2)
    resumed = updated(patch(desk, ticket["object_id"], {"etag": paused["etag"], "status": "Open"}))
    slas = slas_by_kind(resumed)
    assert {s["state"] for s in slas.values()} == {"running"}
    for kind, clock in slas.items():
        # The due time moves later by the time spent paused (wall clock here), which
        # pausedSeconds shows in whole seconds.
        moved = moment(clock["dueAt"]) - due[kind]
        assert moved >= timedelta(seconds=1.2)
        assert clock["pausedSeconds"] == int(moved.total_seconds())
    assert sla_fields(history(desk, ticket["object_id"])[-1]) >= {"sla.response", "sla.resolution"}


def test_an_agents_public_comment_meets_the_response_clock(desk: Tenant) -> None:
    ticket = created(desk.create(token=user_token(desk)))
    object_id = ticket["object_id"]
    # Neither an internal note nor the requester's own comment answers the requester.
    for token, internal in ((agent_token(desk, AGENTS[0]), True), (user_token(desk), False)):
        response = call(
            desk,
            "POST",
            f"/ticket/{object_id}/comments",
            token=token,
            json={"body": "<p>noted</p>", "internal": internal},
        )
        assert response.status_code == 200, response.text
    assert slas_by_kind(get_ticket(desk, object_id))["response"]["state"] == "running"
    answer_as_agent(desk, object_id)
    after = get_ticket(desk, object_id)
    slas = slas_by_kind(after)
    assert (slas["response"]["state"], slas["response"]["breached"]) == ("met", False)
    assert slas["response"]["stoppedAt"] is not None
    assert slas["resolution"]["state"] == "running"
    assert "first_response_seconds" in metrics_of(after)
    entry = history(desk, object_id)[-1]
    assert entry["action"] == "comment"
    assert "sla.response" in sla_fields(entry)
    # Issue 3: a comment does not change the ticket's etag (nor its version); the history
    # entry keeps the version the ticket is at.
    assert (after["etag"], after["version"]) == (ticket["etag"], ticket["version"])
    assert (after["updated_at"], entry["version"]) == (ticket["updated_at"], ticket["version"])


def test_the_etag_read_before_an_agents_first_comment_still_updates_the_ticket(
    desk: Tenant,
) -> None:
    ticket = created(desk.create(token=user_token(desk)))
    object_id = ticket["object_id"]
    answer_as_agent(desk, object_id)
    met = slas_by_kind(get_ticket(desk, object_id))["response"]
    assert met["state"] == "met"
    # The integrator's next write, with the etag it read before the comment.
    after = updated(
        patch(desk, object_id, {"etag": ticket["etag"], "status": "In Progress", "priority": "low"})
    )
    assert after["version"] == ticket["version"] + 1
    # The update moved the clocks from the comment's: the response stays met at the comment.
    slas = slas_by_kind(after)
    assert (slas["response"]["state"], slas["response"]["stoppedAt"]) == ("met", met["stoppedAt"])
    assert slas["response"]["targetMinutes"] == met["targetMinutes"]
    assert slas["resolution"]["targetMinutes"] == RESOLUTION["low"]
    entries = history(desk, object_id)
    assert [(e["version"], e["action"]) for e in entries] == [
        (ticket["version"], "create"),
        (ticket["version"], "comment"),
        (ticket["version"] + 1, "update"),
    ]
    assert "sla.response" not in sla_fields(entries[-1])


def test_a_conditional_get_does_not_hide_a_clock_met_by_a_comment(desk: Tenant) -> None:
    ticket = created(desk.create())
    object_id = ticket["object_id"]

    def conditional_get(etag: str) -> httpx.Response:
        return desk.client.get(
            f"{desk.base_url}/api/v2/ticketing/ticket/{object_id}",
            params={"type": "agent", "module": "ticketing"},
            headers=desk.headers(**{"If-None-Match": f'"{etag}"'}),
        )

    assert conditional_get(ticket["etag"]).status_code == 304
    answer_as_agent(desk, object_id)
    # Same etag, but a copy cached before the comment shows the response clock running: the
    # answer is the ticket as it now is, under the same ETag.
    fresh = conditional_get(ticket["etag"])
    assert fresh.status_code == 200, fresh.text
    assert fresh.headers["etag"] == f'"{ticket["etag"]}"'
    assert slas_by_kind(fresh.json()["ticket"])["response"]["state"] == "met"
    # The next version is cached as usual again.
    after = updated(patch(desk, object_id, {"etag": ticket["etag"], "summary": "Changed"}))
    assert conditional_get(after["etag"]).status_code == 304


def test_moving_in_progress_meets_response_and_done_meets_resolution_reopen_resumes(
    desk: Tenant,
) -> None:
    ticket = created(desk.create())
    object_id = ticket["object_id"]
    working = updated(patch(desk, object_id, {"etag": ticket["etag"], "status": "In Progress"}))
    assert slas_by_kind(working)["response"]["state"] == "met"
    assert slas_by_kind(working)["resolution"]["state"] == "running"
    done = updated(patch(desk, object_id, {"etag": working["etag"], "status": "Resolved"}))
    assert slas_by_kind(done)["resolution"]["state"] == "met"
    assert "resolution_seconds" in metrics_of(done)
    assert metrics_of(done).get("reopen_count", 0) == 0
    assert "sla.resolution" in sla_fields(history(desk, object_id)[-1])
    reopened = updated(patch(desk, object_id, {"etag": done["etag"], "status": "Open"}))
    resolution = slas_by_kind(reopened)["resolution"]
    assert resolution["state"] == "running"
    assert resolution["stoppedAt"] is None
    assert metrics_of(reopened)["reopen_count"] == 1
    assert slas_by_kind(reopened)["response"]["state"] == "met"  # answered stays answered
    assert "sla.resolution" in sla_fields(history(desk, object_id)[-1])


def test_a_priority_change_recomputes_the_due_times(desk: Tenant) -> None:
    ticket = created(desk.create())  # high
    after = updated(
        patch(desk, ticket["object_id"], {"etag": ticket["etag"], "priority": "critical"})
    )
    started = moment(ticket["created_at"])
    slas = slas_by_kind(after)
    assert slas["response"]["targetMinutes"] == RESPONSE["critical"]
    assert moment(slas["response"]["dueAt"]) == started + timedelta(minutes=RESPONSE["critical"])
    assert moment(slas["resolution"]["dueAt"]) == started + timedelta(
        minutes=RESOLUTION["critical"]
    )
    entry = history(desk, ticket["object_id"])[-1]
    assert {"field": "priority", "old": "high", "new": "critical"} in entry["changes"]
    assert sla_fields(entry)  # the due time changes are in the same entry
    assert len(history(desk, ticket["object_id"])) == 2  # one entry per write


def test_filters_priority_assignee_queue_and_due(desk: Tenant) -> None:
    high = created(desk.create())
    low = created(desk.create(_with_needed("<1month")))
    other = create_everything(desk)  # no queue, medium, one-minute policy
    ids = {high["object_id"], low["object_id"], other["object_id"]}

    def found(*conditions: dict[str, Any]) -> set[str]:
        body = {"top": 100, "filter": {"op": "AND", "operand": list(conditions)}}
        return set(list_ids(desk, body)) & ids

    assert found({"column": "priority", "op": "EQ", "operand": "high"}) == {high["object_id"]}
    assert found({"column": "priority", "op": "IN", "operand": ["low", "medium"]}) == {
        low["object_id"],
        other["object_id"],
    }
    assert found({"column": "queueId", "op": "EQ", "operand": QUEUE}) == {
        high["object_id"],
        low["object_id"],
    }
    assert found({"column": "assignee", "op": "EQ", "operand": high["assignee"]}) == {
        high["object_id"]
    }
    soon = (datetime.now(UTC) + timedelta(minutes=90)).isoformat()
    # Due within 90 minutes: the high ticket (60) and the one-minute one; low is due in 8 h.
    assert found({"column": "slaDueAt", "op": "LT", "operand": soon}) == {
        high["object_id"],
        other["object_id"],
    }
    assert found({"column": "slaDueAt", "op": "GE", "operand": soon}) == {low["object_id"]}
    assert (
        count(
            desk,
            {
                "filter": {
                    "op": "AND",
                    "operand": [{"column": "priority", "op": "EQ", "operand": "high"}],
                }
            },
        )
        == 1
    )


def _with_needed(value: str) -> dict[str, Any]:
    body = seed_body()
    body["ticketBody"][NEEDED_WITHIN] = value
    return body


def test_sla_filter_operands_are_validated(desk: Tenant) -> None:
    for condition in (
        {"column": "slaBreached", "op": "EQ", "operand": "yes"},
        {"column": "slaBreached", "op": "LT", "operand": True},
        {"column": "slaDueAt", "op": "LT", "operand": "tomorrow"},
    ):
        response = call(
            desk, "POST", "/ticket/list", json={"filter": {"op": "AND", "operand": [condition]}}
        )
        assert "filter.operand[0].operand" in reason_of(response)


def test_a_tenant_without_sla_config_is_unchanged(tenant: Tenant) -> None:
    ticket = created(tenant.create())
    assert (ticket["slas"], ticket["metrics"]) == ([], [])
    assert (ticket["priority"], ticket["queueId"], ticket["assignee"]) == (None, None, None)
    after = updated(
        patch(tenant, ticket["object_id"], {"etag": ticket["etag"], "status": "Resolved"})
    )
    assert (after["slas"], after["metrics"]) == ([], [])
    changes = history(tenant, ticket["object_id"])
    assert [c["field"] for c in changes[-1]["changes"]] == ["status"]
    assert {c["field"] for c in changes[0]["changes"]} & {
        "priority",
        "queueId",
        "assignee",
        "slaPolicy",
    } == set()
    response = call(tenant, "POST", f"/ticket/{ticket['object_id']}/comments", json={"body": "hi"})
    assert response.status_code == 200
    assert get_ticket(tenant, ticket["object_id"])["etag"] == after["etag"]
    breached = {
        "filter": {"op": "AND", "operand": [{"column": "slaBreached", "op": "EQ", "operand": True}]}
    }
    assert count(tenant, breached) == 0
    assert call(tenant, "GET", "/queue/list").json()["data"] == {"value": [], "count": 0}


# -- the breach sweeper, black box ------------------------------------------------------------


@pytest.fixture
def sweeping_server(database: Database, data_dir: Path) -> Iterator[Server]:
    """A dedicated server sweeping every second."""
    server = start_server(
        database_url=database.url, data_dir=data_dir, env={"TICKETING_SLA_SWEEP_INTERVAL": "1"}
    )
    yield server
    stop_server(server)


def test_a_breach_reads_breached_and_is_recorded_once(
    sweeping_server: Server, database: Database, data_dir: Path, http: httpx.Client
) -> None:
    config = new_tenant_config(**desk_overrides())
    database.load({"tenants": [config]})
    tenant = Tenant(
        id=config["id"],
        realm=config["realm"],
        config=config,
        key=load_or_create_dev_key(data_dir / "dev-signing-key.pem"),
        base_url=sweeping_server.base_url,
        db=database,
        client=http,
    )
    ticket = create_everything(tenant)  # offer 23630: the one-minute wall-clock policy
    object_id = ticket["object_id"]
    # Routed to an agent, who is told of the breach.
    routed = {"etag": ticket["etag"], "queueId": QUEUE, "assignee": AGENTS[1]}
    assert updated(patch(tenant, object_id, routed))["assignee"] == AGENTS[1]
    assignee = agent_token(tenant, AGENTS[1])
    breached_filter = {
        "filter": {"op": "AND", "operand": [{"column": "slaBreached", "op": "EQ", "operand": True}]}
    }
    assert count(tenant, breached_filter) == 0
    due = moment(slas_by_kind(ticket)["response"]["dueAt"])
    assert due == moment(ticket["created_at"]) + timedelta(minutes=1)
    # Not a minute's wait: the clocks are moved to fall due in two seconds.
    due = due_in(database, ticket["id"], 2)
    assert moment(slas_by_kind(get_ticket(tenant, object_id))["response"]["dueAt"]) == due
    assert count(tenant, breached_filter) == 0

    def breach_entries() -> list[dict[str, Any]]:
        return [e for e in history(tenant, object_id) if e["action"] == "sla"]

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not breach_entries():
        time.sleep(0.5)
    entries = breach_entries()
    assert entries, "the sweeper recorded no breach"
    assert datetime.now(UTC) >= due
    response = slas_by_kind(get_ticket(tenant, object_id))["response"]
    assert (response["state"], response["breached"]) == ("breached", True)
    assert list_ids(tenant, {**breached_filter, "top": 100}) == [object_id]
    overdue = {
        "filter": {
            "op": "AND",
            "operand": [
                {"column": "slaDueAt", "op": "LT", "operand": datetime.now(UTC).isoformat()}
            ],
        }
    }
    assert list_ids(tenant, overdue) == [object_id]
    # Several more sweeps: still exactly one entry, with the response clock's breach.
    time.sleep(3.5)
    entries = breach_entries()
    assert len(entries) == 1
    assert entries[0]["by"]["username"] == "sla-sweeper"
    assert [c["field"] for c in entries[0]["changes"]] == ["sla.response"]
    notices = call(tenant, "POST", "/ticket/notifications", token=assignee, json={})
    assert notices.status_code == 200, notices.text
    assert [(n["type"], n["objectId"]) for n in notices.json()["data"]["value"]] == [
        ("sla_breached", object_id),
        ("assigned", object_id),
    ]
    # The breach is a new version of the ticket, announced like any change.
    [last] = tenant.db.fetch(
        "SELECT kind, version FROM ticket_events WHERE tenant_id = :t AND object_id = :o"
        " ORDER BY id DESC LIMIT 1",
        t=uuid.UUID(tenant.id),
        o=object_id,
    )
    assert tuple(last) == ("ticket.updated", get_ticket(tenant, object_id)["version"])
    assert entries[0]["changes"][0]["new"] == "breached"
