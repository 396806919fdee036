"""The simulated callback day: deterministic, fair between variants, and our slots never overbooked."""

from __future__ import annotations

import dataclasses

import pytest

from callcenter.callbacks import simulate as sim
from callcenter.callbacks.simulate import CallbackPolicy, CallbackSimConfig, Variant, simulate_callbacks
from callcenter.errors import ValidationError

CONFIG = CallbackSimConfig(days=1, seed=3)


def test_the_same_seed_gives_the_same_day_and_both_variants_meet_the_same_callers() -> None:
    first = {v: f.as_json() for v, f in simulate_callbacks(CONFIG).items()}
    again = {v: f.as_json() for v, f in simulate_callbacks(CONFIG).items()}
    assert first == again
    assert first[Variant.OURS]["arrivals"] == first[Variant.NAIVE]["arrivals"] > 500


def test_figures_add_up() -> None:
    for figures in simulate_callbacks(CONFIG).values():
        assert figures.accepted <= figures.offers <= figures.arrivals
        assert figures.keep_place + figures.slots == figures.accepted
        assert figures.kept_keep_place + figures.kept_slots == figures.kept <= figures.accepted
        assert figures.answered + figures.abandoned <= figures.arrivals - figures.accepted


def test_our_bookings_never_exceed_the_slot_capacity(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[dict[object, int], dict[object, int]]] = []
    real = sim._run_day

    def spy(run: sim._Day, draws: list[sim._Draw]) -> None:
        real(run, draws)
        if run.variant is Variant.OURS:
            seen.append((dict(run.capacity), dict(run.booked)))

    monkeypatch.setattr(sim, "_run_day", spy)
    simulate_callbacks(
        dataclasses.replace(CONFIG, policy=CallbackPolicy.SLOTS, accept_probability=1.0, days=2)
    )
    assert seen and any(booked for _, booked in seen)
    for capacity, booked in seen:
        assert all(count <= capacity[start] for start, count in booked.items())


@pytest.mark.parametrize(
    ("policy", "absent"), [(CallbackPolicy.KEEP_PLACE, "slots"), (CallbackPolicy.SLOTS, "keep_place")]
)
def test_a_policy_offers_only_its_choice(policy: CallbackPolicy, absent: str) -> None:
    for figures in simulate_callbacks(dataclasses.replace(CONFIG, policy=policy)).values():
        assert getattr(figures, absent) == 0


def test_nobody_accepting_makes_no_callback() -> None:
    for figures in simulate_callbacks(dataclasses.replace(CONFIG, accept_probability=0.0)).values():
        assert figures.offers > 0 and figures.accepted == 0 and figures.as_json()["kept_rate"] is None


@pytest.mark.parametrize(
    ("field", "value"), [("agents", 0), ("accept_probability", 1.5), ("days", 0), ("aht_s", 0.0)]
)
def test_bad_configurations_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError):
        CallbackSimConfig(**{field: value})  # type: ignore[arg-type]
