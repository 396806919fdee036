"""Agent schedules: shift parsing, overlaps and empty schedules refused, staffed agents per interval."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.capacity.schedules import (
    INTERVALS_PER_DAY,
    MAX_SHIFTS,
    MINUTES_PER_WEEK,
    Schedule,
    Shift,
    check_shifts,
    make_schedule,
    parse_shift,
    shift_of,
    slot_label,
    staffing,
)
from callcenter.errors import ValidationError


@pytest.mark.parametrize(
    ("text", "weekday", "start_min", "end_min", "normal", "length_min"),
    [
        ("mon 09:00-17:00", 0, 540, 1020, "mon 09:00-17:00", 480),
        ("  Tuesday 8:30 - 12:15 ", 1, 510, 735, "tue 08:30-12:15", 225),
        ("SUN 22:00-24:00", 6, 1320, 1440, "sun 22:00-24:00", 120),
        ("sat 22:00-00:00", 5, 1320, 1440, "sat 22:00-24:00", 120),
        ("fri 22:00-06:00", 4, 1320, 360, "fri 22:00-06:00", 480),
        ("wed 00:00-24:00", 2, 0, 1440, "wed 00:00-24:00", 1440),
        ("thu 09:00-08:59", 3, 540, 539, "thu 09:00-08:59", 1439),
    ],
)
def test_a_shift_is_read_from_its_text(
    text: str, weekday: int, start_min: int, end_min: int, normal: str, length_min: int
) -> None:
    shift = parse_shift(text)

    assert (shift.weekday, shift.start_min, shift.end_min) == (weekday, start_min, end_min)
    assert str(shift) == normal
    assert shift.length_min == length_min


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mon 09:00-09:00", "empty"),
        ("mon 00:00-00:00", "empty"),
        ("funday 09:00-17:00", "day must be one of"),
        ("mon 9-17", "reads like"),
        ("mon 25:00-26:00", "00:00 to 24:00"),
        ("mon 09:60-17:00", "00:00 to 24:00"),
        ("mon 24:00-02:00", "before 24:00"),
        ("mon 24:30-02:00", "00:00 to 24:00"),
        ("", "reads like"),
        ("mon 09:00-17:00 tue", "reads like"),
    ],
)
def test_a_shift_that_is_not_a_shift_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_shift(text)


@pytest.mark.parametrize("value", [None, 9, ["09:00"], "9h"])
def test_shift_parts_of_the_wrong_type_are_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        shift_of("mon", value, "17:00")
    with pytest.raises(ValidationError):
        shift_of(value, "09:00", "17:00")


def test_a_shift_built_directly_is_checked_too() -> None:
    with pytest.raises(ValidationError, match="weekday"):
        Shift(weekday=7, start_min=0, end_min=60)
    with pytest.raises(ValidationError, match="empty"):
        Shift(weekday=0, start_min=60, end_min=60)
    with pytest.raises(ValidationError, match="whole number"):
        Shift(weekday=True, start_min=0, end_min=60)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("mon 09:00-17:00", "mon 16:59-18:00"),
        ("mon 09:00-17:00", "mon 10:00-11:00"),
        ("mon 09:00-17:00", "mon 09:00-17:00"),
        ("fri 22:00-06:00", "sat 05:00-09:00"),
        ("sun 22:00-02:00", "mon 01:00-03:00"),
        ("sun 20:00-19:00", "mon 18:00-20:00"),
    ],
)
def test_overlapping_shifts_are_refused_naming_both(first: str, second: str) -> None:
    with pytest.raises(ValidationError, match="overlap") as raised:
        make_schedule("a1", [parse_shift(first), parse_shift(second)])

    message = str(raised.value)
    assert str(parse_shift(first)) in message and str(parse_shift(second)) in message


@pytest.mark.parametrize(
    "shifts",
    [
        ["mon 09:00-12:00", "mon 12:00-17:00"],
        ["fri 22:00-06:00", "sat 06:00-10:00"],
        ["sun 22:00-02:00", "mon 02:00-10:00", "sat 10:00-22:00"],
        [f"{day} 09:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")],
    ],
)
def test_shifts_that_only_touch_are_accepted_in_week_order(shifts: list[str]) -> None:
    schedule = make_schedule("a1", [parse_shift(s) for s in reversed(shifts)])

    assert list(schedule.shifts) == sorted(parse_shift(s) for s in shifts)


def test_an_empty_schedule_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least one shift"):
        make_schedule("a1", [])


def test_a_schedule_with_too_many_shifts_is_refused() -> None:
    shifts = [Shift(weekday=0, start_min=m, end_min=m + 10) for m in range(0, 10 * (MAX_SHIFTS + 1), 10)]

    with pytest.raises(ValidationError, match=f"at most {MAX_SHIFTS}"):
        check_shifts(shifts)


@pytest.mark.parametrize("agent_id", ["", "  ", None, 7])
def test_a_schedule_needs_an_agent(agent_id: object) -> None:
    with pytest.raises(ValidationError, match="agent_id"):
        make_schedule(agent_id, [parse_shift("mon 09:00-17:00")])


def test_hours_per_week_add_up_the_shifts() -> None:
    schedule = make_schedule("a1", [parse_shift("mon 09:00-17:30"), parse_shift("sun 22:00-02:00")])

    assert schedule.hours_per_week == 12.5


def _agent(agent_id: str, *shifts: str) -> Schedule:
    return make_schedule(agent_id, [parse_shift(s) for s in shifts])


def test_staffing_counts_agents_minute_by_minute_within_each_interval() -> None:
    schedules = [
        _agent("a1", "mon 09:10-17:00"),
        _agent("a2", "mon 09:00-12:05"),
        _agent("a3", "tue 09:00-17:00"),
    ]

    monday = staffing(schedules, 0)

    assert len(monday) == INTERVALS_PER_DAY
    assert monday[35].segments == ((0, 15),)
    assert monday[36].segments == ((1, 10), (2, 5))
    assert monday[36].mean_agents == pytest.approx(4 / 3)
    assert monday[37].segments == ((2, 15),)
    assert monday[48].segments == ((2, 5), (1, 10))
    assert monday[67].segments == ((1, 15),) and monday[68].segments == ((0, 15),)
    assert monday[37].max_agents == 2


def test_a_shift_over_midnight_staffs_the_next_morning_and_sunday_night_staffs_monday() -> None:
    schedules = [_agent("a1", "fri 22:00-06:00"), _agent("a2", "sun 23:00-01:30")]

    assert staffing(schedules, 4)[88].segments == ((1, 15),)
    assert staffing(schedules, 5)[23].segments == ((1, 15),)
    assert staffing(schedules, 5)[24].segments == ((0, 15),)
    assert staffing(schedules, 6)[95].segments == ((1, 15),)
    assert staffing(schedules, 0)[0].segments == ((1, 15),)
    assert staffing(schedules, 0)[5].segments == ((1, 15),) and staffing(schedules, 0)[6].segments == (
        (0, 15),
    )


def test_no_schedule_staffs_nobody() -> None:
    assert all(s.segments == ((0, 15),) for s in staffing([], 3))


def test_slot_labels_read_as_local_times() -> None:
    assert slot_label(0, 0) == "mon 00:00-00:15"
    assert slot_label(6, 95) == "sun 23:45-24:00"


@st.composite
def _week_shifts(draw: st.DrawFn) -> list[Shift]:
    """Non-overlapping shifts: cut points on the week's minutes, every other gap a shift."""
    cuts = sorted(draw(st.sets(st.integers(0, MINUTES_PER_WEEK - 1), min_size=2, max_size=12)))
    shifts = []
    for start, end in zip(cuts[::2], cuts[1::2], strict=False):
        if end - start >= 1440 or start == end:
            continue
        day, minute = divmod(start, 1440)
        end_minute = (minute + end - start) % 1440 or 1440
        shifts.append(Shift(weekday=day, start_min=minute, end_min=end_minute))
    return shifts


@given(st.lists(_week_shifts(), min_size=1, max_size=5))
def test_staffed_minutes_over_the_week_add_up_to_the_shifts(agents: list[list[Shift]]) -> None:
    schedules = [Schedule(agent_id=f"a{i}", shifts=check_shifts(s)) for i, s in enumerate(agents) if s]
    week = [interval for day in range(7) for interval in staffing(schedules, day)]

    assert all(sum(minutes for _, minutes in i.segments) == 15 for i in week)
    assert all(0 <= agents <= len(schedules) for i in week for agents, _ in i.segments)
    staffed = sum(agents * minutes for i in week for agents, minutes in i.segments)
    assert staffed == sum(s.length_min for schedule in schedules for s in schedule.shifts)
