"""The SLA clocks of a ticket, driven event by event at pinned moments.

The policy is the one of the tenant configuration example: business hours Mon-Fri 09:00-17:00
in New York (EST = UTC-5 in January), Christmas off, medium = 240 response and 1440 resolution
minutes. Expected instants are worked out by hand and written in UTC, with their New York
reading in the comment.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketing.sla import clocks
from ticketing.sla.calendar import WALL_CLOCK, BusinessCalendar
from ticketing.sla.policy import SlaPolicy

NY = ZoneInfo("America/New_York")
TODO, IN_PROGRESS, DONE = "To-do Category", "In-Progress Category", "Done Category"
CATEGORY = {
    "Open": TODO,
    "In Progress": IN_PROGRESS,
    "Waiting for customer": TODO,
    "Waiting on vendor": IN_PROGRESS,
    "Resolved": DONE,
    "Closed": DONE,
}
POLICY = SlaPolicy(
    id="sla-001",
    name="Standard SLA",
    response_minutes={"critical": 30, "high": 60, "medium": 240, "low": 480},
    resolution_minutes={"critical": 240, "high": 480, "medium": 1440, "low": 2880},
    business_hours_only=True,
    timezone="America/New_York",
    pause_statuses=frozenset({"Waiting for customer", "Waiting on vendor"}),
    default=True,
)
CALENDAR = BusinessCalendar(timezone="America/New_York", holidays=[date(2026, 12, 25)])
WALL_POLICY = SlaPolicy(
    id="sla-wall",
    name="Round the clock",
    response_minutes={"critical": 1, "high": 60, "medium": 240, "low": 480},
    resolution_minutes={"critical": 10, "high": 480, "medium": 1440, "low": 2880},
    business_hours_only=False,
    timezone="America/New_York",
    pause_statuses=frozenset({"Waiting for customer"}),
)
RESPONSE, RESOLUTION = "sla-001:response", "sla-001:resolution"


def ny(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=NY)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def begin(at: datetime, priority: str = "medium") -> dict[str, Any]:
    return clocks.start(POLICY, priority=priority, at=at, calendar=CALENDAR)


def move(
    state: dict[str, Any],
    old: str,
    new: str,
    at: datetime,
    *,
    policy: SlaPolicy = POLICY,
    calendar: Any = CALENDAR,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    before = copy.deepcopy(state)
    result = clocks.on_status(
        state,
        old_status=old,
        old_category=CATEGORY[old],
        new_status=new,
        new_category=CATEGORY[new],
        at=at,
        policy=policy,
        calendar=calendar,
    )
    assert state == before, "the input state must not change"
    return result


def comment(state: dict[str, Any], at: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    before = copy.deepcopy(state)
    result = clocks.on_agent_public_comment(state, at=at, policy=POLICY, calendar=CALENDAR)
    assert state == before, "the input state must not change"
    return result


def reprioritise(
    state: dict[str, Any], priority: str, at: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    before = copy.deepcopy(state)
    result = clocks.on_priority(state, priority=priority, at=at, policy=POLICY, calendar=CALENDAR)
    assert state == before, "the input state must not change"
    return result


def sla(state: dict[str, Any], kind: str, now: datetime) -> dict[str, Any]:
    entries = clocks.public_slas(state, now=now)
    return next(entry for entry in entries if entry["kind"] == kind)


def metrics(state: dict[str, Any]) -> dict[str, Any]:
    return {metric["name"]: metric["value"] for metric in clocks.public_metrics(state)}


# -- start and read-time state ------------------------------------------------------------------


def test_a_new_ticket_gets_a_response_and_a_resolution_clock() -> None:
    # Friday 15:00 EST: response 4 business hours -> Monday 11:00 EST; resolution 24 business
    # hours -> Fri 2h, Mon 8h, Tue 8h, Wed 09:00 + 6h = 15:00 EST.
    state = begin(ny(2026, 1, 9, 15))
    assert clocks.public_slas(state, now=ny(2026, 1, 9, 15)) == [
        {
            "id": RESPONSE,
            "policyId": "sla-001",
            "name": "Standard SLA",
            "kind": "response",
            "targetMinutes": 240,
            "startedAt": "2026-01-09T20:00:00.000Z",
            "dueAt": "2026-01-12T16:00:00.000Z",
            "stoppedAt": None,
            "pausedSeconds": 0,
            "state": "running",
            "breached": False,
        },
        {
            "id": RESOLUTION,
            "policyId": "sla-001",
            "name": "Standard SLA",
            "kind": "resolution",
            "targetMinutes": 1440,
            "startedAt": "2026-01-09T20:00:00.000Z",
            "dueAt": "2026-01-14T20:00:00.000Z",
            "stoppedAt": None,
            "pausedSeconds": 0,
            "state": "running",
            "breached": False,
        },
    ]
    assert clocks.public_metrics(state) == []
    assert clocks.next_due(state) == utc(2026, 1, 12, 16)


def test_the_state_is_plain_json() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, _ = move(state, "Open", "Waiting for customer", ny(2026, 1, 12, 10))
    state, _ = move(state, "Waiting for customer", "Resolved", ny(2026, 1, 13, 10))
    state, _ = move(state, "Resolved", "Open", ny(2026, 1, 14, 10))
    assert json.loads(json.dumps(state)) == state


def test_a_spring_dst_weekend_start() -> None:
    # Friday 6 March 15:00 EST; the clocks change on Sunday: Monday 11:00 EDT = 15:00Z.
    state = begin(ny(2026, 3, 6, 15))
    assert sla(state, "response", ny(2026, 3, 6, 15))["dueAt"] == "2026-03-09T15:00:00.000Z"
    assert sla(state, "resolution", ny(2026, 3, 6, 15))["dueAt"] == "2026-03-11T19:00:00.000Z"


def test_an_autumn_dst_weekend_start() -> None:
    # Friday 30 October 15:00 EDT: Monday 11:00 EST = 16:00Z, Wednesday 15:00 EST = 20:00Z.
    state = begin(ny(2026, 10, 30, 15))
    assert sla(state, "response", ny(2026, 10, 30, 15))["dueAt"] == "2026-11-02T16:00:00.000Z"
    assert sla(state, "resolution", ny(2026, 10, 30, 15))["dueAt"] == "2026-11-04T20:00:00.000Z"


def test_a_start_on_a_holiday_counts_from_the_next_opening() -> None:
    # Christmas Friday, then the weekend: Monday 28th 09:00 EST + 4h = 13:00 EST.
    state = begin(ny(2026, 12, 25, 10))
    assert sla(state, "response", ny(2026, 12, 25, 10))["dueAt"] == "2026-12-28T18:00:00.000Z"


def test_a_running_clock_is_breached_once_now_is_past_due() -> None:
    state = begin(ny(2026, 1, 12, 9))  # response due 13:00 EST = 18:00Z
    assert sla(state, "response", utc(2026, 1, 12, 18))["state"] == "running"
    late = sla(state, "response", utc(2026, 1, 12, 18, 0, 0, 1000))
    assert (late["state"], late["breached"]) == ("breached", True)
    assert sla(state, "resolution", utc(2026, 1, 12, 18, 0, 0, 1000))["state"] == "running"
    # Reading changes nothing: the stored state is as it was.
    assert state == begin(ny(2026, 1, 12, 9))


def test_moments_are_kept_to_the_millisecond() -> None:
    state = begin(utc(2026, 1, 12, 14, 0, 0, 123_456))
    entry = sla(state, "response", utc(2026, 1, 12, 14))
    assert entry["startedAt"] == "2026-01-12T14:00:00.123Z"
    assert entry["dueAt"] == "2026-01-12T18:00:00.123Z"


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        clocks.start(POLICY, priority="medium", at=datetime(2026, 1, 12, 9), calendar=CALENDAR)
    with pytest.raises(ValueError, match="no response target for priority 'urgent'"):
        clocks.start(POLICY, priority="urgent", at=ny(2026, 1, 12, 9), calendar=CALENDAR)
    state = begin(ny(2026, 1, 12, 9))
    with pytest.raises(ValueError, match="no response target for priority 'urgent'"):
        reprioritise(state, "urgent", ny(2026, 1, 12, 10))
    with pytest.raises(ValueError, match="no SLA clock"):
        clocks.record_breach(state, "sla-001:nothing", at=ny(2026, 1, 13, 9))
    with pytest.raises(ValueError, match="timezone-aware"):
        clocks.public_slas(state, now=datetime(2026, 1, 12, 9))


def test_no_state_means_no_slas_and_no_metrics() -> None:
    assert clocks.public_slas(None, now=utc(2026, 1, 1)) == []
    assert clocks.public_metrics(None) == []
    assert clocks.next_due(None) is None


# -- response -----------------------------------------------------------------------------------


def test_an_agent_comment_in_time_meets_the_response() -> None:
    state = begin(ny(2026, 1, 12, 9))  # response due 13:00 EST
    state, changes = comment(state, ny(2026, 1, 12, 12))
    assert changes == [
        {"field": "sla.response", "old": "running", "new": "met"},
        {"field": "sla.response.stoppedAt", "old": None, "new": "2026-01-12T17:00:00.000Z"},
        {"field": "metrics.first_response_seconds", "old": None, "new": 3 * 3600},
    ]
    for now in (ny(2026, 1, 12, 12), ny(2026, 2, 1)):
        entry = sla(state, "response", now)
        assert (entry["state"], entry["breached"]) == ("met", False)
        assert entry["stoppedAt"] == "2026-01-12T17:00:00.000Z"
    assert metrics(state) == {"first_response_seconds": 10800}
    assert clocks.next_due(state) == utc(2026, 1, 14, 22)  # the resolution's, Wed 17:00 EST
    again, changes = comment(state, ny(2026, 1, 12, 12, 30))
    assert (again, changes) == (state, [])


def test_a_comment_exactly_at_due_is_in_time() -> None:
    state, _ = comment(begin(ny(2026, 1, 12, 9)), ny(2026, 1, 12, 13))
    assert sla(state, "response", ny(2026, 1, 13))["state"] == "met"


def test_a_late_comment_is_a_breach_recorded_by_the_comment() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, changes = comment(state, ny(2026, 1, 12, 13, 30))
    assert changes == [
        {"field": "sla.response", "old": "running", "new": "breached"},
        {"field": "sla.response.stoppedAt", "old": None, "new": "2026-01-12T18:30:00.000Z"},
        {"field": "metrics.first_response_seconds", "old": None, "new": 4 * 3600 + 1800},
    ]
    entry = sla(state, "response", ny(2026, 1, 12, 14))
    assert (entry["state"], entry["breached"]) == ("breached", True)
    assert clocks.unrecorded_breaches(state, now=ny(2026, 1, 12, 14)) == []


def test_a_late_comment_after_the_sweep_only_stops_the_clock() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, changes = clocks.record_breach(state, RESPONSE, at=ny(2026, 1, 12, 13, 10))
    assert changes == [{"field": "sla.response", "old": "running", "new": "breached"}]
    state, changes = comment(state, ny(2026, 1, 12, 13, 30))
    assert changes == [
        {"field": "sla.response.stoppedAt", "old": None, "new": "2026-01-12T18:30:00.000Z"},
        {"field": "metrics.first_response_seconds", "old": None, "new": 16200},
    ]


def test_the_first_move_into_in_progress_meets_the_response() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, changes = move(state, "Open", "In Progress", ny(2026, 1, 12, 10))
    assert changes == [
        {"field": "sla.response", "old": "running", "new": "met"},
        {"field": "sla.response.stoppedAt", "old": None, "new": "2026-01-12T15:00:00.000Z"},
        {"field": "metrics.first_response_seconds", "old": None, "new": 3600},
    ]
    state, changes = move(state, "In Progress", "Open", ny(2026, 1, 12, 11))
    assert changes == []
    state, changes = move(state, "Open", "In Progress", ny(2026, 1, 12, 12))
    assert changes == []
    assert metrics(state) == {"first_response_seconds": 3600}


def test_moves_within_to_do_leave_the_clocks_running() -> None:
    state = begin(ny(2026, 1, 12, 9))
    after, changes = move(state, "Open", "Open", ny(2026, 1, 12, 10))
    assert (after, changes) == (state, [])


def test_resolving_without_a_response_stops_the_response_too() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, changes = move(state, "Open", "Resolved", ny(2026, 1, 12, 11))
    assert changes == [
        {"field": "sla.response", "old": "running", "new": "met"},
        {"field": "sla.response.stoppedAt", "old": None, "new": "2026-01-12T16:00:00.000Z"},
        {"field": "sla.resolution", "old": "running", "new": "met"},
        {"field": "sla.resolution.stoppedAt", "old": None, "new": "2026-01-12T16:00:00.000Z"},
        {"field": "metrics.first_response_seconds", "old": None, "new": 7200},
        {"field": "metrics.resolution_seconds", "old": None, "new": 7200},
    ]
    assert clocks.next_due(state) is None
    assert clocks.unrecorded_breaches(state, now=ny(2027, 1, 1)) == []


# -- pause and resume ---------------------------------------------------------------------------


def test_a_pause_status_stops_both_clocks_and_moves_due_by_the_business_time_paused() -> None:
    state = begin(ny(2026, 1, 12, 9))  # due: response Mon 13:00, resolution Wed 17:00 EST
    state, changes = move(state, "Open", "Waiting for customer", ny(2026, 1, 12, 10))
    assert changes == [
        {"field": "sla.response", "old": "running", "new": "paused"},
        {"field": "sla.resolution", "old": "running", "new": "paused"},
    ]
    assert clocks.next_due(state) is None
    # Past the original response due, the paused clock is not breached.
    entry = sla(state, "response", ny(2026, 1, 12, 16))
    assert entry == entry | {"state": "paused", "breached": False, "pausedSeconds": 0}
    assert entry["dueAt"] == "2026-01-12T18:00:00.000Z"
    assert clocks.unrecorded_breaches(state, now=ny(2026, 1, 12, 16)) == []
    # Resumed Tuesday 10:00: paused Mon 10-17 and Tue 9-10 = 8 business hours.
    state, changes = move(state, "Waiting for customer", "Open", ny(2026, 1, 13, 10))
    assert changes == [
        {"field": "sla.response", "old": "paused", "new": "running"},
        {
            "field": "sla.response.dueAt",
            "old": "2026-01-12T18:00:00.000Z",
            "new": "2026-01-13T18:00:00.000Z",  # Tue 13:00 EST
        },
        {"field": "sla.response.pausedSeconds", "old": 0, "new": 28800},
        {"field": "sla.resolution", "old": "paused", "new": "running"},
        {
            "field": "sla.resolution.dueAt",
            "old": "2026-01-14T22:00:00.000Z",
            "new": "2026-01-15T22:00:00.000Z",  # Thu 17:00 EST
        },
        {"field": "sla.resolution.pausedSeconds", "old": 0, "new": 28800},
    ]
    assert clocks.next_due(state) == utc(2026, 1, 13, 18)


def test_a_pause_over_a_weekend_only_moves_due_by_its_business_hours() -> None:
    state = begin(ny(2026, 1, 8, 9))  # Thursday; response due 13:00 EST
    state, _ = move(state, "Open", "Waiting for customer", ny(2026, 1, 9, 16))  # Fri 16:00
    state, _ = move(state, "Waiting for customer", "Open", ny(2026, 1, 12, 10))  # Mon 10:00
    # Paused Fri 16-17 and Mon 9-10: 2 business hours over a 66-hour weekend. Resolution was
    # due Mon 17:00 EST (Thu 8h, Fri 8h, Mon 8h), now Tue 11:00 EST.
    entry = sla(state, "resolution", ny(2026, 1, 12, 10))
    assert (entry["pausedSeconds"], entry["state"]) == (7200, "running")
    assert entry["dueAt"] == "2026-01-13T16:00:00.000Z"
    # The response, due Thu 13:00 EST, was already breached when the pause began.
    entry = sla(state, "response", ny(2026, 1, 12, 10))
    assert entry["pausedSeconds"] == 7200
    assert entry["dueAt"] == "2026-01-08T20:00:00.000Z"  # Thu 15:00 EST, still past
    assert entry["state"] == "breached"


def test_a_pause_over_the_spring_dst_weekend() -> None:
    state = begin(ny(2026, 3, 6, 9), priority="low")  # Friday, 8h and 48h targets
    assert sla(state, "response", ny(2026, 3, 6, 9))["dueAt"] == "2026-03-06T22:00:00.000Z"
    assert sla(state, "resolution", ny(2026, 3, 6, 9))["dueAt"] == "2026-03-13T21:00:00.000Z"
    state, _ = move(state, "Open", "Waiting for customer", ny(2026, 3, 6, 16))  # 16:00 EST
    state, changes = move(state, "Waiting for customer", "Open", ny(2026, 3, 9, 10))  # 10:00 EDT
    # Paused Fri 16-17 EST and Mon 9-10 EDT: 2h. Response: Fri 17:00 -> Mon 11:00 EDT;
    # resolution: Fri 13 17:00 EDT -> Mon 16 11:00 EDT.
    assert changes == [
        {"field": "sla.response", "old": "paused", "new": "running"},
        {
            "field": "sla.response.dueAt",
            "old": "2026-03-06T22:00:00.000Z",
            "new": "2026-03-09T15:00:00.000Z",
        },
        {"field": "sla.response.pausedSeconds", "old": 0, "new": 7200},
        {"field": "sla.resolution", "old": "paused", "new": "running"},
        {
            "field": "sla.resolution.dueAt",
            "old": "2026-03-13T21:00:00.000Z",
            "new": "2026-03-16T15:00:00.000Z",
        },
        {"field": "sla.resolution.pausedSeconds", "old": 0, "new": 7200},
    ]


def test_a_read_compares_to_the_millisecond() -> None:
    state = begin(ny(2026, 1, 12, 9))  # response due 18:00:00.000Z
    assert sla(state, "response", utc(2026, 1, 12, 18, 0, 0, 999))["state"] == "running"
    assert clocks.unrecorded_breaches(state, now=utc(2026, 1, 12, 18, 0, 0, 999)) == []
    assert sla(state, "response", utc(2026, 1, 12, 18, 0, 0, 1000))["state"] == "breached"


def test_a_second_pause_status_keeps_the_clock_paused() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, _ = move(state, "Open", "Waiting for customer", ny(2026, 1, 12, 10))
    paused = state
    state, changes = move(
        state, "Waiting for customer", "Waiting for customer", ny(2026, 1, 12, 11)
    )
    assert (state, changes) == (paused, [])


def test_a_pause_status_in_the_in_progress_category_meets_response_and_pauses_resolution() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, changes = move(state, "Open", "Waiting on vendor", ny(2026, 1, 12, 10))
    assert changes == [
        {"field": "sla.response", "old": "running", "new": "met"},
        {"field": "sla.response.stoppedAt", "old": None, "new": "2026-01-12T15:00:00.000Z"},
        {"field": "sla.resolution", "old": "running", "new": "paused"},
        {"field": "metrics.first_response_seconds", "old": None, "new": 3600},
    ]


def test_a_comment_while_paused_meets_the_response_without_the_paused_time() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, _ = move(state, "Open", "Waiting for customer", ny(2026, 1, 12, 10))
    state, changes = comment(state, ny(2026, 1, 12, 15))  # past the original 13:00 due
    # Paused 10:00-15:00 (5h), counted 09:00-10:00 (1h): met, due now 13:00 + 5h = Tue 10:00.
    assert changes == [
        {"field": "sla.response", "old": "paused", "new": "met"},
        {
            "field": "sla.response.dueAt",
            "old": "2026-01-12T18:00:00.000Z",
            "new": "2026-01-13T15:00:00.000Z",
        },
        {"field": "sla.response.stoppedAt", "old": None, "new": "2026-01-12T20:00:00.000Z"},
        {"field": "sla.response.pausedSeconds", "old": 0, "new": 5 * 3600},
        {"field": "metrics.first_response_seconds", "old": None, "new": 3600},
    ]
    assert sla(state, "resolution", ny(2026, 1, 12, 15))["state"] == "paused"


def test_resolving_from_a_pause_status_counts_the_pause_out() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, _ = move(state, "Open", "Waiting for customer", ny(2026, 1, 12, 10))
    state, changes = move(state, "Waiting for customer", "Resolved", ny(2026, 1, 13, 10))
    # Counted: Mon 9-10 only; Mon 10-17 and Tue 9-10 (8h) were paused.
    assert changes == [
        {"field": "sla.response", "old": "paused", "new": "met"},
        {
            "field": "sla.response.dueAt",
            "old": "2026-01-12T18:00:00.000Z",
            "new": "2026-01-13T18:00:00.000Z",
        },
        {"field": "sla.response.stoppedAt", "old": None, "new": "2026-01-13T15:00:00.000Z"},
        {"field": "sla.response.pausedSeconds", "old": 0, "new": 28800},
        {"field": "sla.resolution", "old": "paused", "new": "met"},
        {
            "field": "sla.resolution.dueAt",
            "old": "2026-01-14T22:00:00.000Z",
            "new": "2026-01-15T22:00:00.000Z",
        },
        {"field": "sla.resolution.stoppedAt", "old": None, "new": "2026-01-13T15:00:00.000Z"},
        {"field": "sla.resolution.pausedSeconds", "old": 0, "new": 28800},
        {"field": "metrics.first_response_seconds", "old": None, "new": 3600},
        {"field": "metrics.resolution_seconds", "old": None, "new": 3600},
    ]


def test_a_clock_paused_after_its_due_stays_breached() -> None:
    state = begin(ny(2026, 1, 12, 9))  # response due 13:00 EST
    state, changes = move(state, "Open", "Waiting for customer", ny(2026, 1, 12, 14))
    # The pause sees the breach first and records it; the resolution clock pauses.
    assert changes == [
        {"field": "sla.response", "old": "running", "new": "breached"},
        {"field": "sla.resolution", "old": "running", "new": "paused"},
    ]
    entry = sla(state, "response", ny(2026, 1, 12, 14))
    assert (entry["state"], entry["breached"]) == ("breached", True)
    state, changes = move(state, "Waiting for customer", "Open", ny(2026, 1, 13, 9, 30))
    # Paused Mon 14-17 and Tue 9-9:30: 3.5h; due 13:00 Mon -> 16:30 Mon, still past.
    assert changes[:2] == [
        {
            "field": "sla.response.dueAt",
            "old": "2026-01-12T18:00:00.000Z",
            "new": "2026-01-12T21:30:00.000Z",
        },
        {"field": "sla.response.pausedSeconds", "old": 0, "new": 12600},
    ]
    assert sla(state, "response", ny(2026, 1, 13, 9, 30))["state"] == "breached"
    assert clocks.unrecorded_breaches(state, now=ny(2026, 1, 13, 9, 30)) == []


def test_wall_clock_policy_pauses_in_elapsed_time() -> None:
    state = clocks.start(
        WALL_POLICY, priority="critical", at=utc(2026, 1, 10, 12), calendar=WALL_CLOCK
    )
    assert [entry["dueAt"] for entry in clocks.public_slas(state, now=utc(2026, 1, 10, 12))] == [
        "2026-01-10T12:01:00.000Z",  # a Saturday: wall-clock time counts every day
        "2026-01-10T12:10:00.000Z",
    ]
    state, _ = move(
        state,
        "Open",
        "Waiting for customer",
        utc(2026, 1, 10, 12, 0, 30),
        policy=WALL_POLICY,
        calendar=WALL_CLOCK,
    )
    state, changes = move(
        state,
        "Waiting for customer",
        "Open",
        utc(2026, 1, 10, 12, 5, 30),
        policy=WALL_POLICY,
        calendar=WALL_CLOCK,
    )
    assert changes == [
        {"field": "sla.response", "old": "paused", "new": "running"},
        {
            "field": "sla.response.dueAt",
            "old": "2026-01-10T12:01:00.000Z",
            "new": "2026-01-10T12:06:00.000Z",
        },
        {"field": "sla.response.pausedSeconds", "old": 0, "new": 300},
        {"field": "sla.resolution", "old": "paused", "new": "running"},
        {
            "field": "sla.resolution.dueAt",
            "old": "2026-01-10T12:10:00.000Z",
            "new": "2026-01-10T12:15:00.000Z",
        },
        {"field": "sla.resolution.pausedSeconds", "old": 0, "new": 300},
    ]
    assert sla(state, "response", utc(2026, 1, 10, 12, 6))["state"] == "running"
    assert sla(state, "response", utc(2026, 1, 10, 12, 6, 0, 1000))["state"] == "breached"


# -- resolution and reopen ----------------------------------------------------------------------


def resolved_ticket() -> dict[str, Any]:
    """Started Mon 12 Jan 09:00 EST, answered at 10:00, resolved Tue 12:00 (11 business hours)."""
    state = begin(ny(2026, 1, 12, 9))
    state, _ = move(state, "Open", "In Progress", ny(2026, 1, 12, 10))
    state, changes = move(state, "In Progress", "Resolved", ny(2026, 1, 13, 12))
    assert changes == [
        {"field": "sla.resolution", "old": "running", "new": "met"},
        {"field": "sla.resolution.stoppedAt", "old": None, "new": "2026-01-13T17:00:00.000Z"},
        {"field": "metrics.resolution_seconds", "old": None, "new": 11 * 3600},
    ]
    return state


def test_entering_done_meets_the_resolution_in_time() -> None:
    state = resolved_ticket()
    entry = sla(state, "resolution", ny(2026, 6, 1))
    assert (entry["state"], entry["breached"]) == ("met", False)
    assert metrics(state) == {"first_response_seconds": 3600, "resolution_seconds": 39600}
    assert clocks.next_due(state) is None
    # Resolved -> Closed stays in Done: nothing happens.
    after, changes = move(state, "Resolved", "Closed", ny(2026, 1, 14, 9))
    assert (after, changes) == (state, [])


def test_a_reopen_resumes_resolution_without_the_time_in_done() -> None:
    state = resolved_ticket()
    state, changes = move(state, "Resolved", "Open", ny(2026, 1, 15, 10))
    # In Done: Tue 12-17, Wed 9-17, Thu 9-10 = 14 business hours. 13 hours left from Thu 10:00:
    # Thu 7h, Fri 09:00 + 6h = 15:00 EST.
    assert changes == [
        {"field": "sla.resolution", "old": "met", "new": "running"},
        {
            "field": "sla.resolution.dueAt",
            "old": "2026-01-14T22:00:00.000Z",
            "new": "2026-01-16T20:00:00.000Z",
        },
        {"field": "sla.resolution.stoppedAt", "old": "2026-01-13T17:00:00.000Z", "new": None},
        {"field": "sla.resolution.pausedSeconds", "old": 0, "new": 14 * 3600},
        {"field": "metrics.reopen_count", "old": 0, "new": 1},
    ]
    assert metrics(state) == {
        "first_response_seconds": 3600,
        "resolution_seconds": 39600,
        "reopen_count": 1,
    }
    assert sla(state, "response", ny(2026, 1, 15, 10))["state"] == "met"
    assert clocks.next_due(state) == utc(2026, 1, 16, 20)
    # Resolved again Friday 12:00: counted 11h + Thu 7h + Fri 3h = 21h.
    state, changes = move(state, "Open", "Closed", ny(2026, 1, 16, 12))
    assert changes == [
        {"field": "sla.resolution", "old": "running", "new": "met"},
        {"field": "sla.resolution.stoppedAt", "old": None, "new": "2026-01-16T17:00:00.000Z"},
        {"field": "metrics.resolution_seconds", "old": 39600, "new": 21 * 3600},
    ]
    # A second reopen counts again.
    state, changes = move(state, "Closed", "In Progress", ny(2026, 1, 19, 9))
    assert {"field": "metrics.reopen_count", "old": 1, "new": 2} in changes
    assert metrics(state)["reopen_count"] == 2


def test_a_reopen_into_a_pause_status_resumes_then_pauses() -> None:
    state = resolved_ticket()
    state, changes = move(state, "Resolved", "Waiting for customer", ny(2026, 1, 15, 10))
    assert changes[0] == {"field": "sla.resolution", "old": "met", "new": "paused"}
    assert {"field": "metrics.reopen_count", "old": 0, "new": 1} in changes
    entry = sla(state, "resolution", ny(2026, 1, 20))
    assert (entry["state"], entry["dueAt"]) == ("paused", "2026-01-16T20:00:00.000Z")
    assert clocks.next_due(state) is None


def test_a_reopen_with_no_time_left_is_a_breach() -> None:
    state = begin(ny(2026, 1, 12, 9))  # resolution due Wed 14 17:00 EST
    state, _ = move(state, "Open", "In Progress", ny(2026, 1, 12, 9, 30))
    state, changes = move(state, "In Progress", "Resolved", ny(2026, 1, 14, 17))
    assert changes[0] == {"field": "sla.resolution", "old": "running", "new": "met"}  # at due
    # Reopened at 18:00, after closing: no business time in Done, due stays 17:00, now past.
    state, changes = move(state, "Resolved", "Open", ny(2026, 1, 14, 18))
    assert changes == [
        {"field": "sla.resolution", "old": "met", "new": "breached"},
        {"field": "sla.resolution.stoppedAt", "old": "2026-01-14T22:00:00.000Z", "new": None},
        {"field": "metrics.reopen_count", "old": 0, "new": 1},
    ]
    assert clocks.unrecorded_breaches(state, now=ny(2026, 1, 15)) == []


def test_a_resolution_met_late_is_breached_and_stays_so_after_a_reopen() -> None:
    state = begin(ny(2026, 1, 12, 9), priority="critical")  # resolution due 13:00 EST
    state, changes = move(state, "Open", "Resolved", ny(2026, 1, 12, 14))
    assert {"field": "sla.resolution", "old": "running", "new": "breached"} in changes
    assert sla(state, "resolution", ny(2026, 1, 12, 14))["breached"] is True
    state, changes = move(state, "Resolved", "Open", ny(2026, 1, 13, 9))
    assert [change for change in changes if change["field"] == "sla.resolution"] == []
    assert sla(state, "resolution", ny(2026, 1, 13, 9))["state"] == "breached"


# -- priority -----------------------------------------------------------------------------------


def test_a_priority_change_recomputes_running_clocks_from_their_start() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, changes = reprioritise(state, "critical", ny(2026, 1, 12, 10))
    # Critical: response 30 minutes -> 09:30, already past at 10:00; resolution 4h -> 13:00.
    assert changes == [
        {"field": "sla.response", "old": "running", "new": "breached"},
        {"field": "sla.response.targetMinutes", "old": 240, "new": 30},
        {
            "field": "sla.response.dueAt",
            "old": "2026-01-12T18:00:00.000Z",
            "new": "2026-01-12T14:30:00.000Z",
        },
        {"field": "sla.resolution.targetMinutes", "old": 1440, "new": 240},
        {
            "field": "sla.resolution.dueAt",
            "old": "2026-01-14T22:00:00.000Z",
            "new": "2026-01-12T18:00:00.000Z",
        },
    ]
    state, changes = reprioritise(state, "low", ny(2026, 1, 12, 10, 30))
    # Low: response 8h -> Mon 17:00 EST, the breach is lifted; resolution 48h -> Mon 19th 17:00.
    assert changes == [
        {"field": "sla.response", "old": "breached", "new": "running"},
        {"field": "sla.response.targetMinutes", "old": 30, "new": 480},
        {
            "field": "sla.response.dueAt",
            "old": "2026-01-12T14:30:00.000Z",
            "new": "2026-01-12T22:00:00.000Z",
        },
        {"field": "sla.resolution.targetMinutes", "old": 240, "new": 2880},
        {
            "field": "sla.resolution.dueAt",
            "old": "2026-01-12T18:00:00.000Z",
            "new": "2026-01-19T22:00:00.000Z",
        },
    ]
    assert sla(state, "response", ny(2026, 1, 12, 10, 30))["breached"] is False
    # A new breach of the new target is recorded again.
    assert clocks.unrecorded_breaches(state, now=utc(2026, 1, 12, 22, 0, 1)) == [RESPONSE]


def test_a_priority_change_recomputes_paused_clocks_with_their_paused_time() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, _ = move(state, "Open", "Waiting for customer", ny(2026, 1, 12, 10))
    state, _ = move(state, "Waiting for customer", "Open", ny(2026, 1, 13, 10))  # paused 8h
    state, _ = move(state, "Open", "Waiting for customer", ny(2026, 1, 13, 11))
    state, changes = reprioritise(state, "high", ny(2026, 1, 13, 11, 30))
    # High: response 1h + 8h paused from Mon 09:00 = Tue 10:00 EST, before the pause at 11:00
    # (counted by then: Mon 9-10 and Tue 10-11, 2h): breached. Resolution 8h + 8h = Tue 17:00.
    assert changes == [
        {"field": "sla.response", "old": "paused", "new": "breached"},
        {"field": "sla.response.targetMinutes", "old": 240, "new": 60},
        {
            "field": "sla.response.dueAt",
            "old": "2026-01-13T18:00:00.000Z",
            "new": "2026-01-13T15:00:00.000Z",
        },
        {"field": "sla.resolution.targetMinutes", "old": 1440, "new": 480},
        {
            "field": "sla.resolution.dueAt",
            "old": "2026-01-15T22:00:00.000Z",
            "new": "2026-01-13T22:00:00.000Z",
        },
    ]
    assert sla(state, "resolution", ny(2026, 1, 13, 11, 30))["state"] == "paused"


def test_a_priority_change_leaves_met_clocks_alone() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, _ = move(state, "Open", "In Progress", ny(2026, 1, 12, 10))
    state, changes = reprioritise(state, "critical", ny(2026, 1, 12, 11))
    assert changes == [
        {"field": "sla.resolution.targetMinutes", "old": 1440, "new": 240},
        {
            "field": "sla.resolution.dueAt",
            "old": "2026-01-14T22:00:00.000Z",
            "new": "2026-01-12T18:00:00.000Z",
        },
    ]
    entry = sla(state, "response", ny(2026, 1, 12, 11))
    assert (entry["targetMinutes"], entry["state"]) == (240, "met")


def test_the_same_priority_changes_nothing() -> None:
    state = begin(ny(2026, 1, 12, 9))
    assert reprioritise(state, "medium", ny(2026, 1, 12, 10)) == (state, [])


def test_a_reopen_takes_the_target_of_the_current_priority() -> None:
    state = resolved_ticket()
    state, changes = reprioritise(state, "low", ny(2026, 1, 14, 9))
    assert changes == []  # both clocks stopped
    state, changes = move(state, "Resolved", "Open", ny(2026, 1, 15, 10))
    # Low: 48h + 14h in Done from Mon 09:00: Mon-Fri 40h, Mon 19 8h, Tue 20 8h, Wed 21 09:00+6h.
    assert {"field": "sla.resolution.targetMinutes", "old": 1440, "new": 2880} in changes
    assert sla(state, "resolution", ny(2026, 1, 15, 10))["dueAt"] == "2026-01-21T20:00:00.000Z"


# -- sweeper ------------------------------------------------------------------------------------


def test_the_sweeper_records_each_breach_exactly_once() -> None:
    state = begin(ny(2026, 1, 12, 9))  # due: response 18:00Z Mon, resolution 22:00Z Wed
    assert clocks.unrecorded_breaches(state, now=utc(2026, 1, 12, 18)) == []
    assert clocks.unrecorded_breaches(state, now=utc(2026, 1, 12, 18, 0, 1)) == [RESPONSE]
    unchanged, changes = clocks.record_breach(state, RESPONSE, at=utc(2026, 1, 12, 17))
    assert (unchanged, changes) == (state, [])  # not due yet: nothing to record
    before = copy.deepcopy(state)
    state, changes = clocks.record_breach(state, RESPONSE, at=utc(2026, 1, 12, 18, 0, 1))
    assert changes == [{"field": "sla.response", "old": "running", "new": "breached"}]
    assert clocks.unrecorded_breaches(before, now=utc(2026, 1, 12, 18, 0, 1)) == [RESPONSE]
    assert clocks.unrecorded_breaches(state, now=utc(2026, 1, 12, 18, 0, 1)) == []
    again, changes = clocks.record_breach(state, RESPONSE, at=utc(2026, 1, 12, 19))
    assert (again, changes) == (state, [])
    # The breached running clock is still the next due: the "Overdue" view finds it.
    assert clocks.next_due(state) == utc(2026, 1, 12, 18)
    # Recording one clock leaves the other to its own sweep.
    assert clocks.unrecorded_breaches(state, now=utc(2026, 1, 14, 22, 0, 1)) == [RESOLUTION]
    state, changes = clocks.record_breach(state, RESOLUTION, at=utc(2026, 1, 14, 22, 0, 1))
    assert changes == [{"field": "sla.resolution", "old": "running", "new": "breached"}]
    assert clocks.unrecorded_breaches(state, now=utc(2026, 2, 1)) == []


def test_the_sweeper_records_only_the_clock_it_names() -> None:
    state = begin(ny(2026, 1, 12, 9))
    later = utc(2026, 1, 15)
    assert clocks.unrecorded_breaches(state, now=later) == [RESPONSE, RESOLUTION]
    state, changes = clocks.record_breach(state, RESOLUTION, at=later)
    assert changes == [{"field": "sla.resolution", "old": "running", "new": "breached"}]
    assert clocks.unrecorded_breaches(state, now=later) == [RESPONSE]


def test_paused_and_met_clocks_are_not_swept() -> None:
    state = begin(ny(2026, 1, 12, 9))
    state, _ = comment(state, ny(2026, 1, 12, 10))
    state, _ = move(state, "Open", "Waiting for customer", ny(2026, 1, 12, 11))
    assert clocks.unrecorded_breaches(state, now=ny(2026, 3, 1)) == []
    assert clocks.next_due(state) is None


# -- properties ---------------------------------------------------------------------------------

EVENTS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3 * 24 * 3600),  # seconds after the previous event
        st.one_of(
            st.sampled_from(sorted(CATEGORY)).map(lambda status: ("status", status)),
            st.just(("comment", "")),
            st.sampled_from(["critical", "high", "medium", "low"]).map(
                lambda priority: ("priority", priority)
            ),
            st.just(("sweep", "")),
        ),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1)),
    events=EVENTS,
)
def test_property_the_history_tells_every_state_change_once(
    start: datetime, events: list[tuple[int, tuple[str, str]]]
) -> None:
    at = start.replace(tzinfo=UTC, microsecond=0)
    state = begin(at)
    status = "Open"
    shown = {entry["id"]: entry["state"] for entry in clocks.public_slas(state, now=at)}
    for delay, (kind, value) in events:
        at += timedelta(seconds=delay)
        if kind == "status":
            state, changes = move(state, status, value, at)
            status = value
        elif kind == "comment":
            state, changes = comment(state, at)
        elif kind == "priority":
            state, changes = reprioritise(state, value, at)
        else:
            changes = []
            for clock_id in clocks.unrecorded_breaches(state, now=at):
                state, recorded = clocks.record_breach(state, clock_id, at=at)
                changes += recorded
        assert json.loads(json.dumps(state)) == state
        # Each state change continues from the last one the history showed...
        for change in changes:
            if change["field"] in ("sla.response", "sla.resolution"):
                clock_id = f"sla-001:{change['field'][4:]}"
                assert change["old"] == shown[clock_id] != change["new"]
                shown[clock_id] = change["new"]
        # ... and after every call the history agrees with what a read at that moment shows.
        assert clocks.unrecorded_breaches(state, now=at) == []
        public = {entry["id"]: entry for entry in clocks.public_slas(state, now=at)}
        assert {clock_id: entry["state"] for clock_id, entry in public.items()} == shown
        for entry in public.values():
            assert entry["breached"] == (entry["state"] == "breached")
            if entry["state"] == "running":
                assert at <= datetime.fromisoformat(entry["dueAt"])
            if entry["state"] == "met":
                assert entry["stoppedAt"] <= entry["dueAt"]
