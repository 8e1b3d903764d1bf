"""Business-time arithmetic: when a target of N business minutes falls due, and how much business
time lies between two instants.

A `BusinessCalendar` is a set of opening intervals: for every local date of its timezone that is
not a holiday and whose weekday has hours, the interval from the opening to the closing wall time
of that date, both turned into real instants by the timezone's rules of that date. Business time
is real elapsed time inside those intervals, so it guarantees:

- Weekends (weekdays without hours) and holidays (local dates) contribute nothing.
- Daylight-saving changes are exact: 09:00-17:00 is 8 hours on the day the clocks change as on
  any other day, and a day open 00:00-24:00 holds 23 hours on the spring change and 25 on the
  autumn one. A wall time that does not exist (inside the spring gap) is read with the offset in
  force before the change; a wall time that occurs twice (autumn) means its first occurrence.
- `add_minutes(start, m)` is the earliest instant by which `m` business minutes have passed since
  `start`. A start outside the hours therefore counts from the next opening; a target used up
  exactly at a closing time falls due at that closing time (17:00 the same day, not at the next
  opening); `add_minutes(start, 0)` is `start`.
- `seconds_between(start, end)` is the business time in [start, end), in whole seconds (rounded
  down); it is 0 when `end` is not after `start`. The two agree:
  `seconds_between(s, add_minutes(s, m)) == m * 60` for every `s` and `m >= 0`, and
  `seconds_between` is additive over adjacent ranges.

`WALL_CLOCK` answers the same questions in plain elapsed time, for policies that are not limited
to business hours. All inputs must be timezone-aware; every instant returned is in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ticketing.sla.policy import SlaPolicy

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_HOURS: Mapping[str, tuple[str, str]] = {
    day: ("09:00", "17:00") for day in ("mon", "tue", "wed", "thu", "fri")
}
_CLOCK_TIME = re.compile(r"([01]\d|2[0-4]):([0-5]\d)")
_ONE_DAY = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)


class Calendar(Protocol):
    """What the clocks need of a time base: business or wall-clock arithmetic."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant by which `duration` of counted time has passed since `start`."""
        ...

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Counted time in [start, end); zero when `end` is not after `start`."""
        ...

    def add_minutes(self, start: datetime, minutes: int) -> datetime:
        """`add` with a whole number of minutes."""
        ...

    def seconds_between(self, start: datetime, end: datetime) -> int:
        """`between` in whole seconds, rounded down."""
        ...


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timezone-aware datetime required, got {moment!r}")
    return moment.astimezone(UTC)


def _check_duration(duration: timedelta) -> None:
    if duration < timedelta(0):
        raise ValueError(f"a duration to add cannot be negative, got {duration}")


def _minutes_of_day(text: str) -> int:
    match = _CLOCK_TIME.fullmatch(text) if isinstance(text, str) else None
    minutes = int(match.group(1)) * 60 + int(match.group(2)) if match else -1
    if not 0 <= minutes <= 24 * 60:
        raise ValueError(f"opening hours are written HH:MM between 00:00 and 24:00, got {text!r}")
    return minutes


class BusinessCalendar:
    """Opening hours per weekday in one timezone, minus holidays."""

    def __init__(
        self,
        *,
        timezone: str,
        hours: Mapping[str, tuple[str, str]] | None = None,
        holidays: Iterable[date] = (),
    ) -> None:
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown timezone {timezone!r}") from error
        self.timezone = timezone
        self._hours: list[tuple[int, int] | None] = [None] * 7
        for day, span in (DEFAULT_HOURS if hours is None else hours).items():
            if day not in WEEKDAYS:
                raise ValueError(f"opening hours name a day as one of {WEEKDAYS}, got {day!r}")
            if isinstance(span, str) or not isinstance(span, Sequence) or len(span) != 2:
                raise ValueError(f"opening hours of {day} are [opening, closing], got {span!r}")
            opening, closing = _minutes_of_day(span[0]), _minutes_of_day(span[1])
            if opening >= closing:
                raise ValueError(f"opening hours of {day} close before they open: {span!r}")
            self._hours[WEEKDAYS.index(day)] = (opening, closing)
        if not any(self._hours):
            raise ValueError("opening hours must open on at least one weekday")
        self.holidays = frozenset(holidays)

    def _wall(self, day: date, minutes: int) -> datetime:
        # 24:00 is midnight of the next day; fold=0 gives the rules stated in the module docstring.
        if minutes == 24 * 60:
            moment = datetime.combine(day + _ONE_DAY, time(0), tzinfo=self.zone)
        else:
            moment = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=self.zone)
        return moment.astimezone(UTC)

    def _opening(self, day: date) -> tuple[datetime, datetime] | None:
        """The opening interval of a local date as UTC instants, None when closed all day."""
        span = self._hours[day.weekday()]
        if span is None or day in self.holidays:
            return None
        return self._wall(day, span[0]), self._wall(day, span[1])

    def _first_day(self, moment: datetime) -> date:
        # The day before too: a closing read across a DST change may end past local midnight.
        return moment.astimezone(self.zone).date() - _ONE_DAY

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant by which `duration` of business time has passed since `start`."""
        cursor = _utc(start)
        _check_duration(duration)
        if not duration:
            return cursor
        remaining = duration
        day = self._first_day(cursor)
        while True:
            interval = self._opening(day)
            if interval is not None:
                begin, end = max(interval[0], cursor), interval[1]
                if begin < end:
                    if remaining <= end - begin:
                        return begin + remaining
                    remaining -= end - begin
            day += _ONE_DAY

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time in [start, end); zero when `end` is not after `start`."""
        start, end = _utc(start), _utc(end)
        total = timedelta(0)
        if end <= start:
            return total
        day, last = self._first_day(start), end.astimezone(self.zone).date()
        while day <= last:
            interval = self._opening(day)
            if interval is not None:
                overlap = min(interval[1], end) - max(interval[0], start)
                if overlap > timedelta(0):
                    total += overlap
            day += _ONE_DAY
        return total

    def add_minutes(self, start: datetime, minutes: int) -> datetime:
        """The earliest instant by which `minutes` business minutes have passed since `start`."""
        return self.add(start, timedelta(minutes=minutes))

    def seconds_between(self, start: datetime, end: datetime) -> int:
        """Business seconds in [start, end), rounded down; 0 when `end` is not after `start`."""
        return self.between(start, end) // _ONE_SECOND


class WallClock:
    """Elapsed time, every hour of every day: the time base of policies not limited to
    business hours."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """`start` plus `duration`, in UTC."""
        _check_duration(duration)
        return _utc(start) + duration

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Elapsed time in [start, end); zero when `end` is not after `start`."""
        return max(_utc(end) - _utc(start), timedelta(0))

    def add_minutes(self, start: datetime, minutes: int) -> datetime:
        """`start` plus `minutes` minutes, in UTC."""
        return self.add(start, timedelta(minutes=minutes))

    def seconds_between(self, start: datetime, end: datetime) -> int:
        """Elapsed seconds in [start, end), rounded down; 0 when `end` is not after `start`."""
        return self.between(start, end) // _ONE_SECOND


WALL_CLOCK = WallClock()


def calendar_for(
    policy: SlaPolicy,
    hours: Mapping[str, tuple[str, str]] | None,
    holidays: Iterable[date],
) -> BusinessCalendar | WallClock:
    """The time base of a policy: the tenant's business hours and holidays in the policy's
    timezone when it counts business hours only, wall-clock time otherwise."""
    if not policy.business_hours_only:
        return WALL_CLOCK
    return BusinessCalendar(timezone=policy.timezone, hours=hours, holidays=holidays)
