"""The SLA clocks of one ticket: a response and a resolution clock that run, pause, stop and fall
due in the policy's time base, kept as a JSON-serialisable dict stored with the ticket.

Every function is pure: it takes the stored state and the moment of the event (`at`, `now`),
returns a new state and never touches its input, so any moment can be replayed in a test. What
the engine guarantees:

- A clock counts from `startedAt` in its time base (business hours of the policy's timezone, or
  wall-clock time; see `ticketing.sla.calendar`). `dueAt` is the instant its counted time reaches
  `targetMinutes`: `calendar.add(startedAt, targetMinutes + pausedSeconds)` at all times.
- The response clock stops at the first public comment of an agent or the first move into the
  In-Progress category; the resolution clock stops on entering the Done category. Entering the
  Done category also stops a response clock still running: a resolved ticket has had its answer,
  and a clock left running on it would only ever produce a breach nobody can act on.
- While the ticket's status is one of the policy's `pause_statuses`, the clocks that have not
  stopped stand still; on leaving it the paused time, counted in the clock's time base, is added
  to `pausedSeconds` and `dueAt` moves later by as much. While paused, `dueAt` and
  `pausedSeconds` show the values as of the pause's start.
- Leaving the Done category for any other category is a reopen: `reopen_count` grows by one and
  the resolution clock runs again from where it stopped; the time spent in Done does not count
  (it is added to `pausedSeconds`, as a pause would be), and the target is the one of the
  ticket's current priority.
- A priority change sets the target of every clock that has not stopped to the new priority's
  and recomputes its `dueAt` from `startedAt` (plus the paused time); stopped clocks keep theirs.
- State, computed at read time: `met` when stopped at or before `dueAt`; `breached` when
  stopped after it (met late), paused after it, running past it (`now > dueAt`), or once its
  breach was recorded (a later resume cannot hide it); else `paused` or `running`. `breached` is
  true exactly when the state is `breached`. Only a priority change can lift a breach: when the
  new `dueAt` is not before the change (or, for a paused clock, the pause's start).
- Every breach is recorded exactly once: the first event that sees a clock past its `dueAt`
  records it in the changes it returns, and `unrecorded_breaches` / `record_breach` let a sweeper
  record those no event has seen, with a change `{"field": "sla.<kind>", "old": "running",
  "new": "breached"}`; recording again records nothing.
- Every function that takes an event returns the history changes it made, in the ticket
  history's `{field, old, new}` shape: `sla.<kind>` for the state (from the state the history
  last showed, so an unrecorded breach is `running` there), `sla.<kind>.<key>` for
  `targetMinutes`, `dueAt`, `stoppedAt` and `pausedSeconds`, and `metrics.<name>` for metrics.
  After any of them returns, every clock breached at `at` has its breach recorded.
- Metrics appear as they happen: `first_response_seconds` when the response clock stops,
  `resolution_seconds` each time the resolution clock stops (the latest value), `reopen_count`
  from the first reopen on. Durations are counted time of the clock (business seconds for a
  business-hours policy), pauses and time in Done excluded: the measure the target is held to.

Clock ids are `<policy id>:response` and `<policy id>:resolution`. A priority for which the
policy has no target is refused with ValueError. Moments (`at`, `now`) are taken to the
millisecond the API shows and must be timezone-aware; instants come back in UTC, written
`2026-12-01T14:00:00.000Z` inside the state.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from ticketing.kit.time import isoformat
from ticketing.sla.calendar import Calendar
from ticketing.sla.policy import SlaPolicy

IN_PROGRESS_CATEGORY = "In-Progress Category"
DONE_CATEGORY = "Done Category"
KINDS = ("response", "resolution")
METRICS = ("first_response_seconds", "resolution_seconds", "reopen_count")
PUBLIC_FIELDS = ("targetMinutes", "dueAt", "stoppedAt", "pausedSeconds")
STATE_VERSION = 1

State = dict[str, Any]
Change = dict[str, Any]
Clock = dict[str, Any]


def _moment(value: datetime) -> datetime:
    """A moment in UTC to the millisecond the API shows, so that reads, events and sweeps
    compare it with the stored instants alike."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timezone-aware datetime required, got {value!r}")
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _target(policy: SlaPolicy, kind: str, priority: str) -> int:
    minutes = (policy.response_minutes if kind == "response" else policy.resolution_minutes).get(
        priority
    )
    if minutes is None:
        raise ValueError(f"SLA policy {policy.id!r} has no {kind} target for priority {priority!r}")
    return minutes


def _paused(clock: Clock) -> timedelta:
    return timedelta(microseconds=clock["pausedMicroseconds"])


def _recompute_due(clock: Clock, calendar: Calendar) -> None:
    budget = timedelta(minutes=clock["targetMinutes"]) + _paused(clock)
    clock["dueAt"] = isoformat(calendar.add(_parse(clock["startedAt"]), budget))


def _add_pause(clock: Clock, since: str, at: datetime, calendar: Calendar) -> None:
    pause = calendar.between(_parse(since), at)
    clock["pausedMicroseconds"] += pause // timedelta(microseconds=1)
    _recompute_due(clock, calendar)


def _resume(clock: Clock, at: datetime, calendar: Calendar) -> None:
    if clock["pausedAt"] is not None and clock["stoppedAt"] is None:
        _add_pause(clock, clock["pausedAt"], at, calendar)
        clock["pausedAt"] = None


def _stop(clock: Clock, at: datetime, calendar: Calendar) -> int | None:
    """Stops a clock that has not stopped; its counted seconds, None if it had stopped."""
    if clock["stoppedAt"] is not None:
        return None
    _resume(clock, at, calendar)
    clock["stoppedAt"] = isoformat(at)
    counted = calendar.between(_parse(clock["startedAt"]), at) - _paused(clock)
    return max(counted, timedelta(0)) // timedelta(seconds=1)


def _breached(clock: Clock, now: datetime) -> bool:
    if clock["breachRecorded"]:
        return True
    due = _parse(clock["dueAt"])
    if clock["stoppedAt"] is not None:
        return _parse(clock["stoppedAt"]) > due
    if clock["pausedAt"] is not None:
        return _parse(clock["pausedAt"]) > due
    return now > due


def _state(clock: Clock, breached: bool) -> str:
    if breached:
        return "breached"
    if clock["stoppedAt"] is not None:
        return "met"
    return "paused" if clock["pausedAt"] is not None else "running"


def _shown_state(clock: Clock) -> str:
    """The state as the history last recorded it: a breach no one has recorded is not in it."""
    return _state(clock, clock["breachRecorded"])


def _public_value(clock: Clock, key: str) -> Any:
    if key == "pausedSeconds":
        return clock["pausedMicroseconds"] // 1_000_000
    return clock[key]


def _public_metrics(state: State) -> dict[str, int]:
    metrics = dict(state["metrics"])
    if state["reopenCount"]:
        metrics["reopen_count"] = state["reopenCount"]
    return metrics


def _apply(
    state: State,
    at: datetime,
    change: Callable[[State], None],
    *,
    observe: Collection[str] | None = None,
) -> tuple[State, list[Change]]:
    """Runs `change` on a copy of `state`, records the breaches of the observed clocks (all by
    default) that are breached at `at`, and lists every change to what the API shows."""
    new = copy.deepcopy(state)
    before = {
        clock["id"]: (
            _shown_state(clock),
            {key: _public_value(clock, key) for key in PUBLIC_FIELDS},
        )
        for clock in new["clocks"]
    }
    metrics_before = _public_metrics(new)
    change(new)
    changes: list[Change] = []
    for clock in new["clocks"]:
        if (observe is None or clock["id"] in observe) and _breached(clock, at):
            clock["breachRecorded"] = True
        old_state, old_values = before[clock["id"]]
        new_state = _shown_state(clock)
        if new_state != old_state:
            changes.append({"field": f"sla.{clock['kind']}", "old": old_state, "new": new_state})
        for key in PUBLIC_FIELDS:
            value = _public_value(clock, key)
            if value != old_values[key]:
                field = f"sla.{clock['kind']}.{key}"
                changes.append({"field": field, "old": old_values[key], "new": value})
    metrics_after = _public_metrics(new)
    for name in METRICS:
        empty = 0 if name == "reopen_count" else None
        old, value = metrics_before.get(name, empty), metrics_after.get(name, empty)
        if value != old:
            changes.append({"field": f"metrics.{name}", "old": old, "new": value})
    return new, changes


def _clock(state: State, kind: str) -> Clock | None:
    return next((clock for clock in state["clocks"] if clock["kind"] == kind), None)


def start(policy: SlaPolicy, *, priority: str, at: datetime, calendar: Calendar) -> State:
    """The SLA state of a new ticket: a response and a resolution clock, running from `at`."""
    at = _moment(at)
    clocks = []
    for kind in KINDS:
        clock: Clock = {
            "id": f"{policy.id}:{kind}",
            "kind": kind,
            "targetMinutes": _target(policy, kind, priority),
            "startedAt": isoformat(at),
            "dueAt": "",
            "stoppedAt": None,
            "pausedAt": None,
            "pausedMicroseconds": 0,
            "breachRecorded": False,
        }
        _recompute_due(clock, calendar)
        clocks.append(clock)
    return {
        "version": STATE_VERSION,
        "policyId": policy.id,
        "name": policy.name,
        "priority": priority,
        "reopenCount": 0,
        "metrics": {},
        "clocks": clocks,
    }


def on_status(
    state: State,
    *,
    old_status: str,
    old_category: str,
    new_status: str,
    new_category: str,
    at: datetime,
    policy: SlaPolicy,
    calendar: Calendar,
) -> tuple[State, list[Change]]:
    """A status change at `at`: stops, pauses, resumes and reopens clocks as the module says."""
    at = _moment(at)

    def change(new: State) -> None:
        response, resolution = _clock(new, "response"), _clock(new, "resolution")
        entering_done = new_category == DONE_CATEGORY and old_category != DONE_CATEGORY
        entering_progress = (
            new_category == IN_PROGRESS_CATEGORY and old_category != IN_PROGRESS_CATEGORY
        )
        if response is not None and (entering_progress or entering_done):
            counted = _stop(response, at, calendar)
            if counted is not None:
                new["metrics"]["first_response_seconds"] = counted
        if resolution is not None and entering_done:
            counted = _stop(resolution, at, calendar)
            if counted is not None:
                new["metrics"]["resolution_seconds"] = counted
        if old_category == DONE_CATEGORY and new_category != DONE_CATEGORY:
            new["reopenCount"] += 1
            if resolution is not None and resolution["stoppedAt"] is not None:
                resolution["targetMinutes"] = _target(policy, "resolution", new["priority"])
                _add_pause(resolution, resolution["stoppedAt"], at, calendar)
                resolution["stoppedAt"] = None
                resolution["pausedAt"] = None
        pausing = new_status in policy.pause_statuses
        for clock in new["clocks"]:
            if clock["stoppedAt"] is not None:
                continue
            if not pausing:
                _resume(clock, at, calendar)
            elif clock["pausedAt"] is None:
                clock["pausedAt"] = isoformat(at)

    return _apply(state, at, change)


def on_agent_public_comment(
    state: State, *, at: datetime, policy: SlaPolicy, calendar: Calendar
) -> tuple[State, list[Change]]:
    """An agent's public comment at `at`: the response clock stops if it had not."""
    at = _moment(at)

    def change(new: State) -> None:
        response = _clock(new, "response")
        if response is not None:
            counted = _stop(response, at, calendar)
            if counted is not None:
                new["metrics"]["first_response_seconds"] = counted

    return _apply(state, at, change)


def on_priority(
    state: State, *, priority: str, at: datetime, policy: SlaPolicy, calendar: Calendar
) -> tuple[State, list[Change]]:
    """A priority change at `at`: clocks that have not stopped take the new priority's target
    and fall due that long (plus paused time) after they started."""
    at = _moment(at)
    targets = {kind: _target(policy, kind, priority) for kind in KINDS}
    if priority == state["priority"]:
        return _apply(state, at, lambda new: None)

    def change(new: State) -> None:
        new["priority"] = priority
        for clock in new["clocks"]:
            if clock["stoppedAt"] is None:
                clock["targetMinutes"] = targets[clock["kind"]]
                clock["breachRecorded"] = False
                _recompute_due(clock, calendar)

    return _apply(state, at, change)


def public_slas(state: State | None, *, now: datetime) -> list[dict[str, Any]]:
    """The `slas` array of a ticket response, state computed at `now`: one entry per clock
    {"id", "policyId", "name", "kind": "response"|"resolution", "targetMinutes", "startedAt",
     "dueAt", "stoppedAt", "pausedSeconds", "state": "running"|"paused"|"met"|"breached",
     "breached": bool}. [] for None."""
    if state is None:
        return []
    now = _moment(now)
    entries = []
    for clock in state["clocks"]:
        breached = _breached(clock, now)
        entries.append(
            {
                "id": clock["id"],
                "policyId": state["policyId"],
                "name": state["name"],
                "kind": clock["kind"],
                "targetMinutes": clock["targetMinutes"],
                "startedAt": clock["startedAt"],
                "dueAt": clock["dueAt"],
                "stoppedAt": clock["stoppedAt"],
                "pausedSeconds": _public_value(clock, "pausedSeconds"),
                "state": _state(clock, breached),
                "breached": breached,
            }
        )
    return entries


def public_metrics(state: State | None) -> list[dict[str, Any]]:
    """[{"name": "first_response_seconds"|"resolution_seconds"|"reopen_count", "value": ...}],
    only the metrics that have happened: `reopen_count` appears with the first reopen."""
    if state is None:
        return []
    metrics = _public_metrics(state)
    return [{"name": name, "value": metrics[name]} for name in METRICS if name in metrics]


def next_due(state: State | None) -> datetime | None:
    """The earliest dueAt among running clocks (None if none running): stored in an indexed
    column for the `slaDueAt` filter and the sweeper."""
    if state is None:
        return None
    running = [
        _parse(clock["dueAt"])
        for clock in state["clocks"]
        if clock["stoppedAt"] is None and clock["pausedAt"] is None
    ]
    return min(running, default=None)


def stopped_after(state: State | None, moment: datetime) -> bool:
    """Whether some clock stopped after `moment` (a naive moment is taken as UTC)."""
    if state is None:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return any(
        clock["stoppedAt"] is not None and _parse(clock["stoppedAt"]) > moment
        for clock in state["clocks"]
    )


def unrecorded_breaches(state: State, *, now: datetime) -> list[str]:
    """The ids of the clocks breached at `now` whose breach is not recorded yet."""
    now = _moment(now)
    return [
        clock["id"]
        for clock in state["clocks"]
        if not clock["breachRecorded"] and _breached(clock, now)
    ]


def record_breach(state: State, clock_id: str, *, at: datetime) -> tuple[State, list[Change]]:
    """Records the breach of one clock if it is breached at `at` and not recorded yet; records
    nothing (no changes) otherwise, so a repeated sweep cannot record a breach twice."""
    at = _moment(at)
    if _clock_by_id(state, clock_id) is None:
        raise ValueError(f"no SLA clock {clock_id!r} on this ticket")
    return _apply(state, at, lambda new: None, observe={clock_id})


def _clock_by_id(state: State, clock_id: str) -> Clock | None:
    return next((clock for clock in state["clocks"] if clock["id"] == clock_id), None)
