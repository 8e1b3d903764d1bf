"""The portal's service-desk controls over real HTTP: an agent routes a ticket (assignee among
the queue's members, priority, queue) through the update service, with its refusals next to
the controls; lists show SLA due times and breaches; the queue filters by priority, assignee
and SLA state exactly as the API's list does; the ticket page shows the clocks."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.desk_support import (
    OTHER_QUEUE,
    QUEUE,
    admin_token,
    desk_overrides,
    due_in,
    slas_by_kind,
)
from tests.portal_client import PortalClient, find, parse, persona_token
from tests.support import NEEDED_WITHIN, Tenant, seed_body
from tests.ticket_api import call, create_everything, get_ticket, list_ids, reason_of

AGENT = "agent@example.com"


def _selected(elements: list[Any], select_id: str) -> list[str]:
    """The option values of one <select> (by id) and which is selected, as 'value*'."""
    inside = False
    values: list[str] = []
    for element in elements:
        if element.tag == "select":
            inside = element.attrs.get("id") == select_id
        elif element.tag == "option" and inside:
            value = element.attrs.get("value", "")
            values.append(value + ("*" if "selected" in element.attrs else ""))
    return values


def _work_form(elements: list[Any]) -> dict[str, str]:
    """The agent's form as the page filled it (hidden inputs and selected options)."""
    form = {
        e.attrs["name"]: e.attrs.get("value", "")
        for e in find(elements, "input")
        if e.attrs.get("type") == "hidden" and e.attrs.get("name") != "csrf_token"
    }
    for name in ("status", "assignee", "priority", "queue"):
        chosen = [v for v in _selected(elements, name) if v.endswith("*")]
        form[name] = chosen[0][:-1] if chosen else ""
    form["ccWatchers"] = form["toWatchers"] = ""
    return form


def _api_reason(tenant: Tenant, object_id: str, body: dict[str, Any]) -> dict[str, list[str]]:
    etag = get_ticket(tenant, object_id)["etag"]
    response = call(
        tenant,
        "PATCH",
        f"/ticket/update/{object_id}",
        token=persona_token(tenant, "agent"),
        json={"etag": etag, **body},
    )
    return reason_of(response)


def test_an_agent_assigns_reprioritizes_and_moves_a_ticket_with_the_apis_checks(
    portal: Callable[[], PortalClient], make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant(**desk_overrides(members=[AGENT, "a2@example.com"], auto_assign="none"))
    object_id = tenant.create(seed_body(), token=persona_token(tenant, "requester")).json()[
        "objectId"
    ]
    agent = portal()
    agent.sign_in(tenant, "agent")
    page = parse(agent.get(f"/portal/tickets/{object_id}").text)
    assert _selected(page, "assignee") == ["*", "a2@example.com", AGENT]
    assert _selected(page, "priority") == ["critical", "high*", "medium", "low"]
    assert _selected(page, "queue") == ["", f"{QUEUE}*", OTHER_QUEUE]
    for control in ("assignee", "priority", "queue"):
        assert len(find(page, "label", **{"for": control})) == 1

    # A member of another queue is refused with the service's words, next to the control.
    form = {**_work_form(page), "assignee": "l2@example.com"}
    refused = agent.post(f"/portal/tickets/{object_id}/update", form)
    assert refused.status_code == 400
    elements = parse(refused.text)
    expected = _api_reason(tenant, object_id, {"assignee": "l2@example.com"})["assignee"]
    assert expected == ["l2@example.com is not a member of queue 33654"]
    assert find(elements, "p", id="assignee-error")[0].text == expected[0]
    control = find(elements, "select", id="assignee")[0]
    assert control.attrs["aria-invalid"] == "true"
    assert control.attrs["aria-describedby"] == "assignee-error"
    assert "l2@example.com*" in _selected(elements, "assignee")  # the input is kept
    assert get_ticket(tenant, object_id)["assignee"] is None

    # An unknown priority likewise (a forged form: the page offers none).
    bad_priority = agent.post(
        f"/portal/tickets/{object_id}/update", {**_work_form(page), "priority": "urgent"}
    )
    assert bad_priority.status_code == 400
    expected = _api_reason(tenant, object_id, {"priority": "urgent"})["priority"]
    assert find(parse(bad_priority.text), "p", id="priority-error")[0].text == expected[0]

    # Assign it to oneself and raise the priority: one update, the API's history.
    saved = agent.post(
        f"/portal/tickets/{object_id}/update",
        {**_work_form(page), "assignee": AGENT, "priority": "critical"},
    )
    assert saved.status_code == 303, saved.text
    ticket = get_ticket(tenant, object_id)
    assert (ticket["assignee"], ticket["priority"], ticket["queueId"]) == (AGENT, "critical", QUEUE)
    page = parse(agent.get(f"/portal/tickets/{object_id}").text)
    assert find(page, "dd", **{"class": "assignee"})[0].text == AGENT
    history = tenant.get(f"/ticket/{object_id}/history").json()["data"]["value"]
    fields = {c["field"] for c in history[-1]["changes"]}
    assert {"assignee", "priority"} <= fields and "queueId" not in fields

    # Saving the status alone sends no routing: an assignee who left the queue stays.
    removed = call(tenant, "DELETE", f"/queue/{QUEUE}/users/{AGENT}", token=admin_token(tenant))
    assert removed.status_code in (200, 204), removed.text
    page = parse(agent.get(f"/portal/tickets/{object_id}").text)
    assert _selected(page, "assignee")[:2] == ["", f"{AGENT}*"]
    status_only = agent.post(
        f"/portal/tickets/{object_id}/update", {**_work_form(page), "status": "In Progress"}
    )
    assert status_only.status_code == 303, status_only.text
    ticket = get_ticket(tenant, object_id)
    assert (ticket["status_type"], ticket["assignee"]) == ("In Progress", AGENT)

    # Moving to the other queue and assigning one of its members together.
    page = parse(agent.get(f"/portal/tickets/{object_id}").text)
    moved = agent.post(
        f"/portal/tickets/{object_id}/update",
        {**_work_form(page), "queue": OTHER_QUEUE, "assignee": "l2@example.com"},
    )
    assert moved.status_code == 303, moved.text
    ticket = get_ticket(tenant, object_id)
    assert (ticket["queueId"], ticket["assignee"]) == (OTHER_QUEUE, "l2@example.com")

    # A requester's forged routing is refused by the service, and changes nothing.
    requester = portal()
    requester.sign_in(tenant)
    requester.get(f"/portal/tickets/{object_id}")
    forged = requester.post(
        f"/portal/tickets/{object_id}/update",
        {"etag": ticket["etag"], "version": str(ticket["version"]), "assignee": "me@example.com"},
    )
    assert forged.status_code == 403
    assert get_ticket(tenant, object_id)["etag"] == ticket["etag"]


def _rows(client: PortalClient, path: str) -> dict[str, list[str]]:
    """The rows of a list page: display ID -> the texts of its cells."""
    response = client.get(path)
    assert response.status_code == 200, response.text
    html = response.text
    rows: dict[str, list[str]] = {}
    for chunk in html.split("<tr>")[2:]:
        cells = [" ".join(e.text.split()) for e in parse(chunk) if e.tag == "td"]
        rows[cells[0]] = cells
    return rows


def _api_ids(tenant: Tenant, *conditions: dict[str, Any]) -> set[str]:
    body: dict[str, Any] = {"top": 100}
    if conditions:
        body["filter"] = {"op": "AND", "operand": list(conditions)}
    return set(list_ids(tenant, body))


def test_lists_show_sla_due_and_breach_and_the_queue_filters_as_the_api_does(
    portal: Callable[[], PortalClient], make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant(**desk_overrides())
    requester_token = persona_token(tenant, "requester")
    # Offer 23630's policy gives one minute to respond: breached a minute from now.
    fast = create_everything(tenant, token=persona_token(tenant, "agent"))
    fast_due = datetime.fromisoformat(slas_by_kind(fast)["response"]["dueAt"])
    by_priority = {}
    for needed, priority in (("<1week", "critical"), ("<2week", "high"), ("<1month", "low")):
        body = seed_body(summary=f"Needed {needed}")
        body["ticketBody"][NEEDED_WITHIN] = needed
        by_priority[priority] = tenant.create(body, token=requester_token).json()
    requester = portal()
    requester.sign_in(tenant)
    mine = _rows(requester, "/portal/my-tickets")
    assert set(mine) == {t["objectId"] for t in by_priority.values()}
    for ticket in by_priority.values():
        due = min(s["dueAt"] for s in get_ticket(tenant, ticket["objectId"])["slas"])
        assert mine[ticket["objectId"]][-1] == due[:16].replace("T", " ") + " UTC"

    agent = portal()
    agent.sign_in(tenant, "agent")
    page = parse(agent.get("/portal/queue").text)
    assert _selected(page, "filter-priority") == ["", "critical", "high", "medium", "low"]
    assert _selected(page, "filter-assignee")[1:] == [
        "a1@example.com",
        "a2@example.com",
        "a3@example.com",
        "a4@example.com",
        "l2@example.com",
    ]
    assert _selected(page, "filter-sla") == ["", "due-today", "overdue", "breached"]

    def listed(query: str) -> set[str]:
        return set(_rows(agent, f"/portal/queue?{query}"))

    critical = by_priority["critical"]["objectId"]
    assert listed("priority=critical") == {critical}
    assert listed("priority=critical") == _api_ids(
        tenant, {"column": "priority", "op": "EQ", "operand": "critical"}
    )
    assignee = get_ticket(tenant, critical)["assignee"]
    assert assignee is not None
    assert critical in listed(f"assignee={assignee}")
    assert listed(f"assignee={assignee}") == _api_ids(
        tenant, {"column": "assignee", "op": "EQ", "operand": assignee}
    )
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert listed("sla=due-today") == _api_ids(
        tenant,
        {"column": "slaDueAt", "op": "GE", "operand": today.isoformat()},
        {"column": "slaDueAt", "op": "LT", "operand": (today + timedelta(days=1)).isoformat()},
    )
    if fast_due.date() == now.date():
        assert fast["object_id"] in listed("sla=due-today")
    # A value the page does not offer is ignored, not passed on.
    assert len(listed("assignee=nobody%40example.com&priority=urgent")) == 4

    assert listed("sla=breached") == listed("sla=overdue") == set()
    # Not a minute's wait: the clocks are moved to fall due in two seconds.
    fast_due = due_in(tenant.db, fast["id"], 2)
    while datetime.now(UTC) < fast_due + timedelta(seconds=1):
        time.sleep(0.5)
    assert listed("sla=breached") == {fast["object_id"]}
    assert listed("sla=overdue") == {fast["object_id"]}
    assert listed("sla=breached") == _api_ids(
        tenant, {"column": "slaBreached", "op": "EQ", "operand": True}
    )
    row = _rows(agent, "/portal/queue?sla=breached")[fast["object_id"]]
    assert "Breached" in row[-1]
    assert listed("sla=breached&priority=critical") == set()

    # The ticket page shows the clocks.
    page = parse(agent.get(f"/portal/tickets/{fast['object_id']}").text)
    response_row = agent.last_html.split('class="clock-response"')[1].split("</tr>")[0]
    assert "First response" in response_row and "Breached" in response_row
    assert find(page, "h2", id="sla-title")[0].text == "Service level"


def test_the_queue_updates_stream_is_the_apis_for_a_signed_in_agent(
    portal: Callable[[], PortalClient], make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant(**desk_overrides())
    anonymous = portal()
    assert anonymous.get("/portal/queue/updates").status_code == 303
    requester = portal()
    requester.sign_in(tenant)
    assert requester.get("/portal/queue/updates").status_code == 403
    agent = portal()
    agent.sign_in(tenant, "agent")
    url = f"{agent.base_url}/portal/queue/updates"
    with agent.client.stream("GET", url) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert "frame-ancestors 'none'" in stream.headers["content-security-policy"]
        lines = stream.iter_lines()
        assert next(lines).startswith("id: ")
        assert next(lines) == "event: connected"
        assert tenant.id in next(lines)
        created = tenant.create(seed_body(), token=persona_token(tenant, "requester")).json()
        seen = []
        for line in lines:
            seen.append(line)
            if line.startswith("data: ") and created["objectId"] in line:
                break
        assert "event: created" in seen
