"""The traffic model's statistics with fixed seeds (pure: no event loop, no sockets).

Bounds are four standard errors wide: a correct model fails them about once in 15,000 seeds, and each
test uses one fixed seed, so they are deterministic.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from datetime import UTC, datetime

import pytest

from callcenter.simulator.traffic import Arrival, HandleDistribution, TrafficModel, TrafficProfile

MIDNIGHT = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def _arrivals(model: TrafficModel, hours: float) -> list[Arrival]:
    out = []
    for arrival in model.arrivals(MIDNIGHT):
        if arrival.offset_s > hours * 3600:
            break
        out.append(arrival)
    return out


@pytest.mark.parametrize(("calls_per_hour", "hours"), [(720.0, 50.0), (36.0, 500.0), (7200.0, 5.0)])
def test_arrival_count_is_rate_times_time(calls_per_hour: float, hours: float) -> None:
    count = len(_arrivals(TrafficModel(TrafficProfile.flat(calls_per_hour), seed=1), hours))
    expected = calls_per_hour * hours
    assert abs(count - expected) <= 4 * math.sqrt(expected)


def test_arrivals_are_poisson_with_exponential_gaps() -> None:
    offsets = [a.offset_s for a in _arrivals(TrafficModel(TrafficProfile.flat(3600), seed=2), 10)]
    gaps = [b - a for a, b in zip(offsets, offsets[1:], strict=False)]
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1.0, rel=0.04)
    assert statistics.pstdev(gaps) / mean == pytest.approx(1.0, rel=0.05)  # coefficient of variation 1


def test_hourly_profile_shapes_arrivals_by_hour_of_day() -> None:
    profile = TrafficProfile(hourly_calls=(0.0,) * 12 + (600.0,) * 6 + (150.0,) * 6)
    per_hour = Counter(int(a.offset_s // 3600) % 24 for a in _arrivals(TrafficModel(profile, seed=3), 24 * 5))
    assert all(per_hour[h] == 0 for h in range(12))
    for hour in range(12, 24):
        expected = profile.hourly_calls[hour] * 5
        assert abs(per_hour[hour] - expected) <= 4 * math.sqrt(expected), hour


def test_rate_scale_multiplies_every_hour() -> None:
    profile = TrafficProfile(hourly_calls=(100.0,) * 24, rate_scale=3.0)
    count = len(_arrivals(TrafficModel(profile, seed=4), 24))
    assert abs(count - 7200) <= 4 * math.sqrt(7200)


def test_no_traffic_means_no_arrivals() -> None:
    assert list(TrafficModel(TrafficProfile.flat(0.0), seed=5).arrivals(MIDNIGHT)) == []


def test_patience_is_exponential_with_the_configured_mean() -> None:
    model = TrafficModel(TrafficProfile(patience_mean_s=45.0), seed=6)
    draws = [model.patience_s() for _ in range(20_000)]
    assert statistics.fmean(draws) == pytest.approx(45.0, abs=4 * 45.0 / math.sqrt(20_000))
    assert statistics.median(draws) == pytest.approx(45.0 * math.log(2), rel=0.05)


@pytest.mark.parametrize(
    ("distribution", "sigma", "cv"),
    [
        (HandleDistribution.LOGNORMAL, 0.6, math.sqrt(math.exp(0.36) - 1)),
        (HandleDistribution.EXPONENTIAL, 0.6, 1.0),
    ],
)
def test_handle_times_have_the_configured_mean_and_spread(
    distribution: HandleDistribution, sigma: float, cv: float
) -> None:
    profile = TrafficProfile(handle_mean_s=180.0, handle_distribution=distribution, handle_sigma=sigma)
    model = TrafficModel(profile, seed=7)
    draws = [model.handle_s() for _ in range(20_000)]
    assert statistics.fmean(draws) == pytest.approx(180.0, abs=4 * 180.0 * cv / math.sqrt(20_000))
    assert statistics.pstdev(draws) / statistics.fmean(draws) == pytest.approx(cv, rel=0.06)


def test_agent_legs_ring_out_at_the_no_answer_rate_and_answer_after_the_mean_delay() -> None:
    model = TrafficModel(TrafficProfile(agent_no_answer_rate=0.2, agent_answer_mean_s=5.0), seed=8)
    legs = [model.agent_leg() for _ in range(20_000)]
    share = sum(not leg.answers for leg in legs) / len(legs)
    assert share == pytest.approx(0.2, abs=4 * math.sqrt(0.2 * 0.8 / 20_000))
    delays = [leg.answer_after_s for leg in legs if leg.answers]
    assert statistics.fmean(delays) == pytest.approx(5.0, abs=4 * 5.0 / math.sqrt(len(delays)))


def test_queues_are_drawn_by_weight_and_callers_numbered() -> None:
    profile = TrafficProfile.flat(3600, queues=(("sales", 3.0), ("support", 1.0)))
    arrivals = _arrivals(TrafficModel(profile, seed=9), 5)
    share = sum(a.queue == "sales" for a in arrivals) / len(arrivals)
    assert share == pytest.approx(0.75, abs=4 * math.sqrt(0.75 * 0.25 / len(arrivals)))
    assert arrivals[0].caller == "+14155550001"
    assert len({a.caller for a in arrivals[:9999]}) == min(len(arrivals), 9999)


def test_same_seed_same_calls_and_agent_draws_do_not_shift_arrivals() -> None:
    first = TrafficModel(TrafficProfile.flat(600), seed=10)
    second = TrafficModel(TrafficProfile.flat(600), seed=10)
    for _ in range(50):
        second.agent_leg()  # a backend dialling more agents must not change who calls when
    assert _arrivals(first, 3) == _arrivals(second, 3)
    assert _arrivals(TrafficModel(TrafficProfile.flat(600), seed=11), 3) != _arrivals(
        TrafficModel(TrafficProfile.flat(600), seed=10), 3
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hourly_calls": (1.0,) * 23},
        {"hourly_calls": (-1.0,) + (1.0,) * 23},
        {"agent_no_answer_rate": 1.5},
        {"queues": ()},
    ],
)
def test_profile_rejects_impossible_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TrafficProfile(**kwargs)  # type: ignore[arg-type]
