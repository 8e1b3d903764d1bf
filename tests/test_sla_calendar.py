"""Business-time arithmetic of the SLA calendar, with every instant pinned.

Starts are written in New York wall time (EST = UTC-5, EDT = UTC-4; in 2026 summer time runs
from Sunday 2026-03-08 02:00 to Sunday 2026-11-01 02:00); expected instants are worked out by
hand and written in UTC, with their local reading in the comment.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketing.sla.calendar import WALL_CLOCK, BusinessCalendar, WallClock, calendar_for
from ticketing.sla.policy import SlaPolicy

NY = ZoneInfo("America/New_York")
CHRISTMAS = date(2026, 12, 25)  # a Friday
OFFICE = BusinessCalendar(timezone="America/New_York", holidays=[CHRISTMAS])
EVERY_DAY = BusinessCalendar(
    timezone="America/New_York",
    hours={day: ("09:00", "17:00") for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
)
ROUND_THE_CLOCK = BusinessCalendar(
    timezone="America/New_York",
    hours={day: ("00:00", "24:00") for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def ny(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=NY)


# (start, business minutes, expected due in UTC): the default Mon-Fri 09:00-17:00 with
# Christmas 2026 as a holiday.
OFFICE_CASES = [
    pytest.param(ny(2026, 1, 9, 15), 240, utc(2026, 1, 12, 16), id="friday-15:00+4h=monday-11:00"),
    pytest.param(ny(2026, 3, 6, 15), 240, utc(2026, 3, 9, 15), id="weekend-of-spring-dst-change"),
    pytest.param(
        ny(2026, 10, 30, 15), 240, utc(2026, 11, 2, 16), id="weekend-of-autumn-dst-change"
    ),
    pytest.param(ny(2026, 12, 24, 15), 240, utc(2026, 12, 28, 16), id="christmas-friday-skipped"),
    pytest.param(ny(2026, 1, 12, 7, 30), 60, utc(2026, 1, 12, 15), id="before-opening"),
    pytest.param(ny(2026, 1, 12, 18), 60, utc(2026, 1, 13, 15), id="after-closing"),
    # 20:00 EST Monday is already Tuesday 01:00 UTC: the local date decides.
    pytest.param(ny(2026, 1, 12, 20), 60, utc(2026, 1, 13, 15), id="evening-next-utc-day"),
    pytest.param(ny(2026, 1, 10, 12), 30, utc(2026, 1, 12, 14, 30), id="saturday-start"),
    pytest.param(ny(2026, 1, 11, 23, 59), 1, utc(2026, 1, 12, 14, 1), id="sunday-before-midnight"),
    pytest.param(ny(2026, 12, 25, 10), 30, utc(2026, 12, 28, 14, 30), id="holiday-start"),
    pytest.param(ny(2026, 1, 12, 16), 60, utc(2026, 1, 12, 22), id="ends-at-closing-same-day"),
    pytest.param(ny(2026, 1, 12, 9), 480, utc(2026, 1, 12, 22), id="whole-day-ends-at-closing"),
    pytest.param(ny(2026, 1, 12, 16), 61, utc(2026, 1, 13, 14, 1), id="one-minute-past-closing"),
    pytest.param(ny(2026, 1, 9, 17), 1, utc(2026, 1, 12, 14, 1), id="start-at-closing"),
    pytest.param(ny(2026, 1, 12, 9), 1, utc(2026, 1, 12, 14, 1), id="start-at-opening"),
    # 48 business hours = 6 business days: Mon 7h, Tue-Fri 32h, next Mon 8h, Tue 1h.
    pytest.param(ny(2026, 1, 12, 10), 2880, utc(2026, 1, 20, 15), id="six-business-days"),
    # 40h from Monday 21 Dec: Mon-Thu 32h, Christmas Friday and the weekend skipped, Mon 28th 8h.
    pytest.param(ny(2026, 12, 21, 9), 2400, utc(2026, 12, 28, 22), id="week-with-holiday"),
    # 3 business days spanning the spring change: Fri 2h, Mon-Tue 16h, Wed 6h -> 15:00 EDT.
    pytest.param(ny(2026, 3, 6, 15), 1440, utc(2026, 3, 11, 19), id="days-across-spring-dst"),
    pytest.param(ny(2026, 10, 30, 15), 1440, utc(2026, 11, 4, 20), id="days-across-autumn-dst"),
    # Every minute of a whole week in one go: 5 x 8h, ending Friday at closing.
    pytest.param(ny(2026, 3, 2, 9), 2400, utc(2026, 3, 6, 22), id="week-in-winter-time"),
    pytest.param(ny(2026, 3, 9, 9), 2400, utc(2026, 3, 13, 21), id="week-in-summer-time"),
]


@pytest.mark.parametrize(("start", "minutes", "due"), OFFICE_CASES)
def test_add_minutes_in_office_hours(start: datetime, minutes: int, due: datetime) -> None:
    result = OFFICE.add_minutes(start, minutes)
    assert result == due
    assert result.tzinfo is UTC


@pytest.mark.parametrize(("start", "minutes", "due"), OFFICE_CASES)
def test_seconds_between_counts_back_the_same_business_time(
    start: datetime, minutes: int, due: datetime
) -> None:
    assert OFFICE.seconds_between(start, due) == minutes * 60


def test_the_spring_weekend_is_shorter_in_wall_time_but_not_in_business_time() -> None:
    start, due = ny(2026, 3, 6, 15), utc(2026, 3, 9, 15)
    assert due - start == timedelta(hours=67)  # Fri 15:00 EST -> Mon 11:00 EDT
    assert OFFICE.seconds_between(start, due) == 4 * 3600


def test_a_day_open_round_the_clock_is_23_hours_in_spring_and_25_in_autumn() -> None:
    spring_day = (ny(2026, 3, 8), ny(2026, 3, 9))
    autumn_day = (ny(2026, 11, 1), ny(2026, 11, 2))
    assert spring_day == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    assert ROUND_THE_CLOCK.seconds_between(*spring_day) == 23 * 3600
    assert ROUND_THE_CLOCK.seconds_between(*autumn_day) == 25 * 3600
    assert ROUND_THE_CLOCK.seconds_between(ny(2026, 3, 2), ny(2026, 3, 9)) == 7 * 24 * 3600 - 3600


def test_business_time_is_real_elapsed_time_across_the_changes() -> None:
    # 24 business hours from Saturday noon on a 24/7 calendar are 24 real hours: Sunday 13:00
    # EDT in spring, Sunday 11:00 EST in autumn.
    assert ROUND_THE_CLOCK.add_minutes(ny(2026, 3, 7, 12), 1440) == utc(2026, 3, 8, 17)
    assert ROUND_THE_CLOCK.add_minutes(ny(2026, 10, 31, 12), 1440) == utc(2026, 11, 1, 16)


def test_opening_hours_that_span_the_change_hour() -> None:
    night = BusinessCalendar(timezone="America/New_York", hours={"sun": ("01:00", "04:00")})
    # Spring: 01:00 EST (06:00Z) to 04:00 EDT (08:00Z) is 2 hours.
    assert night.seconds_between(utc(2026, 3, 8), utc(2026, 3, 9)) == 2 * 3600
    assert night.add_minutes(utc(2026, 3, 8), 120) == utc(2026, 3, 8, 8)
    # Autumn: 01:00 EDT (05:00Z, the first 01:00) to 04:00 EST (09:00Z) is 4 hours.
    assert night.seconds_between(utc(2026, 11, 1), utc(2026, 11, 2)) == 4 * 3600
    assert night.add_minutes(utc(2026, 11, 1), 240) == utc(2026, 11, 1, 9)
    # A wall time inside the spring gap is read with the winter offset: 02:30 EST = 07:30Z.
    gap = BusinessCalendar(timezone="America/New_York", hours={"sun": ("02:30", "05:00")})
    assert gap.add_minutes(utc(2026, 3, 8), 1) == utc(2026, 3, 8, 7, 31)


def test_weekend_days_on_a_seven_day_calendar_count() -> None:
    # Saturday 16:00 EST + 2h: 1h on Saturday, 1h from Sunday 09:00 EDT (the change day).
    assert EVERY_DAY.add_minutes(ny(2026, 3, 7, 16), 120) == utc(2026, 3, 8, 14)
    assert EVERY_DAY.seconds_between(ny(2026, 3, 7), ny(2026, 3, 9)) == 16 * 3600


def test_custom_hours_per_weekday_and_closed_days() -> None:
    # Monday mornings and Wednesday afternoons only; Tuesday and the rest are closed.
    hours = {"mon": ("08:00", "12:00"), "wed": ("13:00", "18:30")}
    custom = BusinessCalendar(timezone="America/New_York", hours=hours)
    start = ny(2026, 1, 12, 11)  # Monday
    assert custom.add_minutes(start, 60) == utc(2026, 1, 12, 17)  # Mon 12:00 EST, at closing
    assert custom.add_minutes(start, 61) == utc(2026, 1, 14, 18, 1)  # Wed 13:01 EST
    assert custom.add_minutes(start, 180) == utc(2026, 1, 14, 20)  # Wed 15:00 EST
    assert custom.add_minutes(start, 390) == utc(2026, 1, 14, 23, 30)  # Wed 18:30, closing
    assert custom.add_minutes(start, 391) == utc(2026, 1, 19, 13, 1)  # next Mon 08:01 EST
    assert custom.seconds_between(ny(2026, 1, 12), ny(2026, 1, 19)) == int(9.5 * 3600)
    assert custom.seconds_between(ny(2026, 1, 13), ny(2026, 1, 14, 12)) == 0  # Tue, Wed a.m.


def test_a_calendar_in_utc_with_the_default_hours() -> None:
    plain = BusinessCalendar(timezone="UTC")
    assert plain.add_minutes(utc(2026, 1, 9, 15), 240) == utc(2026, 1, 12, 11)
    assert plain.seconds_between(utc(2026, 1, 9, 15), utc(2026, 1, 12, 11)) == 4 * 3600


def test_the_offset_of_the_input_does_not_matter() -> None:
    berlin = datetime(2026, 1, 9, 21, tzinfo=ZoneInfo("Europe/Berlin"))  # = Fri 15:00 EST
    assert OFFICE.add_minutes(berlin, 240) == utc(2026, 1, 12, 16)
    assert OFFICE.seconds_between(berlin, utc(2026, 1, 12, 16)) == 4 * 3600


def test_holidays_are_local_dates_and_a_weekend_holiday_changes_nothing() -> None:
    boxing_day = BusinessCalendar(timezone="America/New_York", holidays=[date(2026, 12, 26)])
    assert boxing_day.add_minutes(ny(2026, 12, 24, 15), 240) == utc(2026, 12, 25, 16)
    assert boxing_day.seconds_between(ny(2026, 12, 21), ny(2026, 12, 28)) == 40 * 3600
    assert OFFICE.seconds_between(ny(2026, 12, 21), ny(2026, 12, 28)) == 32 * 3600


def test_zero_minutes_is_the_start_itself() -> None:
    saturday = ny(2026, 1, 10, 12)
    assert OFFICE.add_minutes(saturday, 0) == utc(2026, 1, 10, 17)


def test_seconds_between_an_empty_or_closed_range_is_zero() -> None:
    monday_noon = ny(2026, 1, 12, 12)
    assert OFFICE.seconds_between(monday_noon, monday_noon) == 0
    assert OFFICE.seconds_between(monday_noon, ny(2026, 1, 12, 11)) == 0  # end before start
    assert OFFICE.seconds_between(ny(2026, 1, 10, 9), ny(2026, 1, 11, 17)) == 0  # weekend
    assert OFFICE.seconds_between(ny(2026, 1, 12, 17), ny(2026, 1, 13, 9)) == 0  # night


def test_seconds_between_counts_partial_days_and_rounds_down() -> None:
    assert OFFICE.seconds_between(ny(2026, 1, 12, 16, 30), ny(2026, 1, 13, 9, 15)) == 45 * 60
    assert OFFICE.seconds_between(ny(2026, 1, 12, 8), ny(2026, 1, 12, 18)) == 8 * 3600
    start = ny(2026, 1, 12, 9, 0, 0, 500_000)
    assert OFFICE.seconds_between(start, ny(2026, 1, 12, 9, 0, 2)) == 1  # 1.5 s
    assert OFFICE.between(start, ny(2026, 1, 12, 9, 0, 2)) == timedelta(seconds=1.5)


def test_add_and_between_keep_sub_second_precision() -> None:
    start = ny(2026, 1, 12, 16, 59, 59, 250_000)
    assert OFFICE.add(start, timedelta(seconds=1)) == utc(2026, 1, 13, 14, 0, 0, 250_000)


def test_wall_clock_counts_every_hour() -> None:
    assert isinstance(WALL_CLOCK, WallClock)
    assert WALL_CLOCK.add_minutes(ny(2026, 1, 9, 15), 240) == utc(2026, 1, 10, 0)
    assert WALL_CLOCK.add_minutes(utc(2026, 3, 7, 22), 1440) == utc(2026, 3, 8, 22)
    # The Friday-to-Monday span of the spring weekend: 67 real hours.
    assert WALL_CLOCK.seconds_between(ny(2026, 3, 6, 15), utc(2026, 3, 9, 15)) == 67 * 3600
    assert WALL_CLOCK.seconds_between(utc(2026, 1, 2), utc(2026, 1, 1)) == 0
    assert WALL_CLOCK.add_minutes(utc(2026, 1, 10, 12), 0) == utc(2026, 1, 10, 12)
    assert WALL_CLOCK.add_minutes(ny(2026, 1, 9, 15), 1).tzinfo is UTC


def test_calendar_for_picks_the_time_base_of_the_policy() -> None:
    business = SlaPolicy(
        id="sla-1",
        name="Standard",
        response_minutes={"low": 60},
        resolution_minutes={"low": 120},
        timezone="America/New_York",
    )
    calendar = calendar_for(business, {"sat": ("10:00", "12:00")}, [date(2026, 1, 17)])
    assert isinstance(calendar, BusinessCalendar)
    # Saturdays 10-12 New York time, the 17th off: Sat 10th 11:00 + 2h -> Sat 24th 11:00 EST.
    assert calendar.add_minutes(ny(2026, 1, 10, 11), 120) == utc(2026, 1, 24, 16)
    default_hours = calendar_for(business, None, ())
    assert default_hours.add_minutes(ny(2026, 1, 9, 15), 240) == utc(2026, 1, 12, 16)
    wall = SlaPolicy(
        id="sla-2",
        name="Around the clock",
        response_minutes={"low": 60},
        resolution_minutes={"low": 120},
        business_hours_only=False,
        timezone="America/New_York",
    )
    assert calendar_for(wall, {"sat": ("10:00", "12:00")}, [date(2026, 1, 17)]) is WALL_CLOCK


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "unknown timezone"),
        ({"timezone": "../etc/passwd"}, "unknown timezone"),
        ({"timezone": "UTC", "hours": {"monday": ("09:00", "17:00")}}, "name a day"),
        ({"timezone": "UTC", "hours": {"mon": ("9:00", "17:00")}}, "HH:MM"),
        ({"timezone": "UTC", "hours": {"mon": ("09:00", "24:01")}}, "HH:MM"),
        ({"timezone": "UTC", "hours": {"mon": ("09:00", "17:60")}}, "HH:MM"),
        ({"timezone": "UTC", "hours": {"mon": ("17:00", "09:00")}}, "close before they open"),
        ({"timezone": "UTC", "hours": {"mon": ("09:00", "09:00")}}, "close before they open"),
        ({"timezone": "UTC", "hours": {"mon": "09:00-17:00"}}, "[opening, closing]"),
        ({"timezone": "UTC", "hours": {"mon": ("09:00",)}}, "[opening, closing]"),
        ({"timezone": "UTC", "hours": {}}, "at least one weekday"),
    ],
)
def test_bad_calendars_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        BusinessCalendar(**kwargs)


def test_hours_given_as_lists_are_accepted() -> None:
    calendar = BusinessCalendar(timezone="UTC", hours={"mon": ["09:00", "17:00"]})
    assert calendar.add_minutes(utc(2026, 1, 9), 60) == utc(2026, 1, 12, 10)


@pytest.mark.parametrize("calendar", [OFFICE, WALL_CLOCK], ids=["business", "wall"])
def test_naive_datetimes_and_negative_targets_are_refused(
    calendar: BusinessCalendar | WallClock,
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.add_minutes(datetime(2026, 1, 12, 9), 60)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.seconds_between(utc(2026, 1, 12, 9), datetime(2026, 1, 12, 10))
    with pytest.raises(ValueError, match="negative"):
        calendar.add_minutes(utc(2026, 1, 12, 9), -1)


# Properties, over instants of 2026-2027 (both DST changes of each year) to the millisecond.
instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))
calendars = st.sampled_from([OFFICE, EVERY_DAY, ROUND_THE_CLOCK, WALL_CLOCK])
minutes = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, start=instants, target=minutes)
def test_property_adding_then_measuring_gives_back_the_target(
    calendar: BusinessCalendar | WallClock, start: datetime, target: int
) -> None:
    due = calendar.add_minutes(start, target)
    assert calendar.seconds_between(start, due) == target * 60
    if target:
        # Earliest: a millisecond before, the target is not reached yet.
        assert calendar.seconds_between(start, due - timedelta(milliseconds=1)) < target * 60


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, start=instants, target=minutes, later=instants)
def test_property_due_times_are_monotonic(
    calendar: BusinessCalendar | WallClock, start: datetime, target: int, later: datetime
) -> None:
    first, second = sorted((start, later))
    assert calendar.add_minutes(first, target) <= calendar.add_minutes(second, target)
    assert calendar.add_minutes(start, target) < calendar.add_minutes(start, target + 1)
    assert calendar.add_minutes(start, target) >= start


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, a=instants, b=instants, c=instants)
def test_property_business_time_is_additive_and_bounded_by_wall_time(
    calendar: BusinessCalendar | WallClock, a: datetime, b: datetime, c: datetime
) -> None:
    a, b, c = sorted((a, b, c))
    assert calendar.between(a, b) + calendar.between(b, c) == calendar.between(a, c)
    assert timedelta(0) <= calendar.between(a, c) <= c - a
    assert calendar.seconds_between(c, a) == 0
