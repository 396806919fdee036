"""Business hours: open or closed at an instant, and the next opening, across DST and holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from callcenter.errors import ValidationError
from callcenter.queue.hours import (
    ALWAYS_OPEN,
    BusinessHours,
    business_hours,
    is_open,
    next_open,
    normalise_weekly,
    parse_holidays,
    parse_hours_document,
    parse_interval,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")

WEEKDAYS_9_TO_5 = {day: ("09:00-17:00",) for day in ("mon", "tue", "wed", "thu", "fri")}


def paris(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=PARIS)


def office(
    weekly: dict[str, tuple[str, ...]] | None = None,
    holidays: tuple[date, ...] = (),
    zone: str = "Europe/Paris",
) -> BusinessHours:
    return business_hours(WEEKDAYS_9_TO_5 if weekly is None else weekly, holidays, zone)


# 2026-11-23 is a Monday.
@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (paris(2026, 11, 23, 8, 59), False),
        (paris(2026, 11, 23, 9, 0), True),
        (paris(2026, 11, 23, 16, 59, 59), True),
        (paris(2026, 11, 23, 17, 0), False),
        (paris(2026, 11, 28, 10, 0), False),  # Saturday
        (datetime(2026, 11, 23, 8, 30, tzinfo=UTC), True),  # 09:30 in Paris
        (datetime(2026, 11, 23, 16, 30, tzinfo=UTC), False),  # 17:30 in Paris
    ],
)
def test_open_follows_the_local_weekly_schedule(now: datetime, expected: bool) -> None:
    assert is_open(office(), now) is expected


def test_no_schedule_is_always_open() -> None:
    assert is_open(ALWAYS_OPEN, paris(2026, 12, 25, 3, 0))
    assert next_open(ALWAYS_OPEN, paris(2026, 12, 25, 3, 0)) == paris(2026, 12, 25, 3, 0)


def test_holidays_close_even_an_always_open_queue_for_the_whole_local_day() -> None:
    hours = business_hours(None, (date(2026, 12, 25),), "Europe/Paris")
    assert is_open(hours, paris(2026, 12, 24, 23, 59))
    assert not is_open(hours, paris(2026, 12, 25, 0, 0))
    assert not is_open(hours, datetime(2026, 12, 24, 23, 30, tzinfo=UTC))  # 00:30 on the 25th in Paris
    assert next_open(hours, paris(2026, 12, 25, 12, 0)) == paris(2026, 12, 26, 0, 0)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (paris(2026, 11, 23, 8, 0), paris(2026, 11, 23, 9, 0)),
        (paris(2026, 11, 23, 12, 0), paris(2026, 11, 23, 12, 0)),
        (paris(2026, 11, 23, 17, 0), paris(2026, 11, 24, 9, 0)),
        (paris(2026, 11, 27, 18, 0), paris(2026, 11, 30, 9, 0)),  # Friday evening -> Monday
    ],
)
def test_next_open(now: datetime, expected: datetime) -> None:
    assert next_open(office(), now) == expected


def test_next_open_skips_holidays() -> None:
    hours = office(holidays=(date(2026, 12, 24), date(2026, 12, 25)))
    assert next_open(hours, paris(2026, 12, 23, 18, 0)) == paris(2026, 12, 28, 9, 0)


def test_a_schedule_with_no_open_day_never_opens() -> None:
    assert next_open(business_hours({}, (), "UTC"), paris(2026, 11, 23, 12, 0)) is None


def test_several_intervals_a_day_and_midnight_end() -> None:
    hours = office({"mon": ("09:00-12:30", "13:30-24:00"), "tue": ("00:00-02:00",)})
    assert is_open(hours, paris(2026, 11, 23, 12, 29))
    assert not is_open(hours, paris(2026, 11, 23, 13, 0))
    assert next_open(hours, paris(2026, 11, 23, 13, 0)) == paris(2026, 11, 23, 13, 30)
    assert is_open(hours, paris(2026, 11, 23, 23, 59, 59))
    assert is_open(hours, paris(2026, 11, 24, 1, 59))
    assert not is_open(hours, paris(2026, 11, 24, 2, 0))


# --- daylight saving ------------------------------------------------------------------------------


def test_opening_keeps_local_time_across_the_spring_and_autumn_changes() -> None:
    hours = office()
    # Paris: UTC+1 in winter, UTC+2 from 2027-03-28.
    assert next_open(hours, paris(2027, 3, 26, 18, 0)) == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)
    assert next_open(hours, paris(2027, 3, 19, 18, 0)) == datetime(2027, 3, 22, 8, 0, tzinfo=UTC)
    assert is_open(hours, datetime(2027, 3, 29, 7, 0, tzinfo=UTC))
    assert not is_open(hours, datetime(2027, 3, 29, 6, 59, tzinfo=UTC))
    # Back to UTC+1 from 2026-10-25.
    assert is_open(hours, datetime(2026, 10, 26, 8, 0, tzinfo=UTC))
    assert not is_open(hours, datetime(2026, 10, 26, 7, 59, tzinfo=UTC))


def test_an_opening_time_the_clock_skips_opens_when_the_clock_jumps() -> None:
    # New York springs forward on 2027-03-14: 02:00 EST becomes 03:00 EDT (07:00 UTC).
    hours = business_hours({"sun": ("02:30-05:00",)}, (), "America/New_York")
    opened = next_open(hours, datetime(2027, 3, 14, 1, 0, tzinfo=NEW_YORK))
    assert opened == datetime(2027, 3, 14, 7, 0, tzinfo=UTC)
    assert opened.astimezone(NEW_YORK).hour == 3
    assert not is_open(hours, opened - timedelta(seconds=1))


def test_an_interval_inside_the_skipped_hour_does_not_exist_that_day() -> None:
    hours = business_hours({"sun": ("02:10-02:50",)}, (), "America/New_York")
    opened = next_open(hours, datetime(2027, 3, 14, 0, 0, tzinfo=NEW_YORK))
    assert opened == datetime(2027, 3, 21, 2, 10, tzinfo=NEW_YORK)


def test_the_repeated_hour_of_autumn_is_open_both_times() -> None:
    # New York falls back on 2026-11-01: 01:00-02:00 EDT, then 01:00-02:00 EST again.
    hours = business_hours({"sun": ("01:00-01:30",)}, (), "America/New_York")
    first = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # 01:00 EDT
    second = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)  # 01:00 EST
    assert is_open(hours, first) and is_open(hours, second)
    assert not is_open(hours, datetime(2026, 11, 1, 5, 45, tzinfo=UTC))  # 01:45 EDT
    assert next_open(hours, datetime(2026, 11, 1, 5, 45, tzinfo=UTC)) == second


# --- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("9-17", "HH:MM-HH:MM"),
        ("25:00-26:00", "00:00 to 24:00"),
        ("09:60-10:00", "00:00 to 24:00"),
        ("24:30-24:45", "00:00 to 24:00"),
        ("17:00-09:00", "over midnight"),
        ("09:00-09:00", "after the start"),
    ],
)
def test_bad_intervals_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        parse_interval(text)


def test_weekly_schedules_are_normalised() -> None:
    weekly = normalise_weekly({"Friday": ["13:00-17:00", "9:00-12:00"], "MON": ["00:00-24:00"]})
    assert weekly == {"mon": ("00:00-24:00",), "fri": ("09:00-12:00", "13:00-17:00")}


@pytest.mark.parametrize(
    ("weekly", "reason"),
    [
        ({"someday": ["09:00-10:00"]}, "unknown day"),
        ({"mon": "09:00-10:00"}, "list"),
        ({"mon": ["09:00-12:00", "11:00-13:00"]}, "overlap"),
        ({"mon": ["09:00-10:00"], "monday": []}, "twice"),
        (["mon"], "object"),
    ],
)
def test_bad_weekly_schedules_are_refused(weekly: object, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        normalise_weekly(weekly)  # type: ignore[arg-type]


def test_holidays_parse_sorted_without_repeats_and_refuse_other_shapes() -> None:
    assert parse_holidays(["2027-01-01", "2026-12-25", "2027-01-01"]) == (
        date(2026, 12, 25),
        date(2027, 1, 1),
    )
    with pytest.raises(ValidationError, match="YYYY-MM-DD"):
        parse_holidays(["25/12/2026"])
    with pytest.raises(ValidationError, match="YYYY-MM-DD"):
        parse_holidays([20261225])


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        business_hours(None, (), "Mars/Olympus_Mons")


def test_hours_document_full_and_bare_forms() -> None:
    full = parse_hours_document(
        {"time_zone": "Europe/Paris", "weekly": {"mon": ["09:00-17:00"]}, "holidays": ["2026-12-25"]}
    )
    assert full.weekly == {"mon": ("09:00-17:00",)} and full.weekly_given
    assert full.holidays == (date(2026, 12, 25),) and full.time_zone == "Europe/Paris"
    bare = parse_hours_document({"tue": ["10:00-11:00"]})
    assert bare.weekly == {"tue": ("10:00-11:00",)} and bare.holidays is None and bare.time_zone is None
    always = parse_hours_document({"weekly": None})
    assert always.weekly is None and always.weekly_given
    only_holidays = parse_hours_document({"holidays": []})
    assert not only_holidays.weekly_given and only_holidays.holidays == ()


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("09:00-17:00", "JSON object"),
        ({"weekly": {}, "extra": 1}, "unknown field"),
        ({"time_zone": "Nowhere/City"}, "unknown time zone"),
        ({"time_zone": 3}, "string"),
        ({"holidays": "2026-12-25"}, "list"),
    ],
)
def test_bad_hours_documents_are_refused(document: object, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        parse_hours_document(document)
