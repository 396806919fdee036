"""Slot capacity: offered only where staffed time exceeds the inbound need, and over-commitment named."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.callbacks.slots import (
    IntervalLoad,
    SlotSettings,
    inbound_agents,
    offerable,
    over_committed,
    slot_capacities,
)
from callcenter.capacity.erlang import Workload, agents_required
from callcenter.errors import ValidationError
from callcenter.queue.hours import ALWAYS_OPEN, business_hours

DAY = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday
SETTINGS = SlotSettings(callback_handle_s=300.0, safety_margin=0.1, min_lead_s=600.0)


def _loads(
    staffed: float, arrivals: float, *, count: int = 96, aht_s: float | None = 240.0
) -> list[IntervalLoad]:
    return [
        IntervalLoad(
            start=DAY + timedelta(minutes=15 * i),
            staffed_agents=staffed,
            arrivals=arrivals,
            aht_s=aht_s,
            patience_s=120.0,
        )
        for i in range(count)
    ]


def test_capacity_is_the_free_agent_time_after_inbound_need_and_margin_in_callbacks() -> None:
    loads = _loads(staffed=10.0, arrivals=20.0, count=1)
    need = agents_required(
        Workload(arrival_rate_per_s=20.0 / 900, aht_s=240.0, patience_s=120.0),
        target_service_level=0.8,
        answer_within_s=20.0,
    ).agents
    (slot,) = slot_capacities(loads, booked={}, hours=ALWAYS_OPEN, answer_within_s=20.0, settings=SETTINGS)
    free_s = (10 - need) * 900.0
    assert slot.free_agent_s == free_s
    assert slot.capacity == math.floor(free_s * 0.9 / 300.0)
    assert slot.capacity > 0


def test_no_spare_agents_means_no_capacity() -> None:
    loads = _loads(staffed=2.0, arrivals=60.0, count=1)
    (slot,) = slot_capacities(loads, booked={}, hours=ALWAYS_OPEN, answer_within_s=20.0, settings=SETTINGS)
    assert (slot.free_agent_s, slot.capacity) == (0.0, 0)


def test_unknown_handle_time_offers_nothing_rather_than_a_wrong_promise() -> None:
    loads = _loads(staffed=10.0, arrivals=5.0, count=1, aht_s=None)
    (slot,) = slot_capacities(loads, booked={}, hours=ALWAYS_OPEN, answer_within_s=20.0, settings=SETTINGS)
    assert slot.capacity == 0 and "unknown" in slot.note


def test_quiet_interval_needs_no_inbound_agent() -> None:
    load = _loads(staffed=1.0, arrivals=0.0, count=1)[0]
    assert inbound_agents(load, answer_within_s=20.0, target_service_level=0.8) == 0


def test_booked_callbacks_use_up_the_slot_and_a_full_slot_is_not_offered() -> None:
    loads = _loads(staffed=3.0, arrivals=0.0, count=2)
    first = DAY
    capacities = slot_capacities(
        loads, booked={first: 8}, hours=ALWAYS_OPEN, answer_within_s=20.0, settings=SETTINGS
    )
    assert capacities[0].capacity == math.floor(3 * 900 * 0.9 / 300)  # 8
    assert capacities[0].remaining == 0
    offered = offerable(capacities, now=DAY - timedelta(hours=1), settings=SETTINGS)
    assert [c.start for c in offered] == [DAY + timedelta(minutes=15)]


def test_slots_outside_business_hours_or_too_soon_are_not_offered() -> None:
    hours = business_hours({"mon": ["09:00-17:00"]}, (), "UTC")
    loads = _loads(staffed=3.0, arrivals=0.0)
    capacities = slot_capacities(loads, booked={}, hours=hours, answer_within_s=20.0, settings=SETTINGS)
    now = DAY + timedelta(hours=9, minutes=5)
    offered = offerable(capacities, now=now, settings=SETTINGS)
    assert offered[0].start == DAY + timedelta(hours=9, minutes=15)
    assert offered[-1].end == DAY + timedelta(hours=17)
    assert all(c.capacity == 0 for c in capacities if c.start < DAY + timedelta(hours=9))


def test_longer_slots_sum_their_intervals_and_skip_a_trailing_part() -> None:
    settings = SlotSettings(length_min=60, callback_handle_s=300.0, safety_margin=0.0)
    loads = _loads(staffed=1.0, arrivals=0.0, count=6)
    capacities = slot_capacities(loads, booked={}, hours=ALWAYS_OPEN, answer_within_s=20.0, settings=settings)
    assert len(capacities) == 1
    assert capacities[0].end - capacities[0].start == timedelta(hours=1)
    assert capacities[0].capacity == 12


def test_over_commitment_after_staffing_drops_is_named() -> None:
    loads = _loads(staffed=3.0, arrivals=0.0, count=1)
    before = slot_capacities(
        loads, booked={DAY: 6}, hours=ALWAYS_OPEN, answer_within_s=20.0, settings=SETTINGS
    )
    assert over_committed(before) == ()
    after = slot_capacities(
        _loads(staffed=1.0, arrivals=0.0, count=1),
        booked={DAY: 6},
        hours=ALWAYS_OPEN,
        answer_within_s=20.0,
        settings=SETTINGS,
    )
    (slot,) = over_committed(after)
    assert (slot.booked, slot.capacity) == (6, 2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("length_min", 10),
        ("length_min", 0),
        ("callback_handle_s", 0.0),
        ("safety_margin", 1.0),
        ("target_service_level", 1.0),
    ],
)
def test_bad_settings_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError):
        SlotSettings(**{field: value})  # type: ignore[arg-type]


@given(
    st.floats(0, 40),
    st.floats(0, 200),
    st.floats(60, 900),
    st.floats(0, 0.9),
)
def test_capacity_never_exceeds_the_staffed_time_and_more_staff_never_lowers_it(
    staffed: float, arrivals: float, handle_s: float, margin: float
) -> None:
    settings = SlotSettings(callback_handle_s=handle_s, safety_margin=margin)
    (slot,) = slot_capacities(
        _loads(staffed, arrivals, count=1),
        booked={},
        hours=ALWAYS_OPEN,
        answer_within_s=20.0,
        settings=settings,
    )
    (more,) = slot_capacities(
        _loads(staffed + 1, arrivals, count=1),
        booked={},
        hours=ALWAYS_OPEN,
        answer_within_s=20.0,
        settings=settings,
    )
    assert 0 <= slot.capacity * handle_s <= staffed * 900.0 * (1 - margin) + 1e-6
    assert more.capacity >= slot.capacity
