"""Erlang C and Erlang A: known values, brute-force cross-checks and properties."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from callcenter.capacity.erlang import (
    MAX_AGENTS,
    QueueMetrics,
    QueueModel,
    Workload,
    agents_required,
    erlang_a,
    erlang_b,
    erlang_c,
    queue_metrics,
)
from callcenter.errors import ValidationError

#: Absolute accuracy we promise on probabilities: logs of scale near 1e3 leave about 1e-11.
TOL = 1e-9

#: The pyworkforce / ANCHORS.md §2.2 example: 100 calls per 30 minutes, 3-minute handle time.
EXAMPLE = Workload.per_interval(calls=100, interval_s=1800, aht_s=180)


def _exact_erlang_b(agents: int, load: Fraction) -> Fraction:
    terms = [load**k / math.factorial(k) for k in range(agents + 1)]
    return terms[-1] / sum(terms)


def _exact_erlang_c(agents: int, load: Fraction) -> Fraction:
    tail = load**agents / math.factorial(agents) * agents / (agents - load)
    return tail / (sum(load**k / math.factorial(k) for k in range(agents)) + tail)


# --- Erlang B and C: known values ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("agents", "load", "expected"),
    [(5, 5.0, 0.28487), (1, 1.0, 0.5), (0, 3.0, 1.0), (10, 10.0, 0.21458), (4, 0.0, 0.0)],
)
def test_erlang_b_matches_the_table(agents: int, load: float, expected: float) -> None:
    assert erlang_b(agents, load) == pytest.approx(expected, abs=5e-6)


@pytest.mark.parametrize(("agents", "load"), [(1, "1/2"), (7, "5"), (14, "10"), (30, "57/2"), (60, "40")])
def test_erlang_b_and_c_equal_the_exact_factorial_formulas(agents: int, load: str) -> None:
    exact = Fraction(load)
    assert erlang_b(agents, float(exact)) == pytest.approx(float(_exact_erlang_b(agents, exact)), rel=1e-12)
    workload = Workload(arrival_rate_per_s=float(exact) / 100.0, aht_s=100.0)
    metrics = erlang_c(workload, agents, answer_within_s=15.0)
    p_wait = float(_exact_erlang_c(agents, exact))
    drain_per_s = (agents - float(exact)) / 100.0
    assert metrics.p_wait == pytest.approx(p_wait, rel=1e-12)
    assert metrics.service_level == pytest.approx(1 - p_wait * math.exp(-drain_per_s * 15.0), rel=1e-12)
    assert metrics.asa_s == pytest.approx(p_wait / drain_per_s, rel=1e-12)


@pytest.mark.parametrize(
    ("agents", "service_level", "occupancy", "p_wait", "asa_s"),
    [
        (13, 0.796, 0.769, 0.2853, 17.12),
        (14, 0.888, 0.714, 0.1741, 7.84),
        (15, 0.941, 0.667, 0.1020, 3.67),
    ],
)
def test_the_worked_example_of_100_calls_per_half_hour(
    agents: int, service_level: float, occupancy: float, p_wait: float, asa_s: float
) -> None:
    metrics = erlang_c(EXAMPLE, agents, answer_within_s=20.0)
    assert metrics.offered_load_erlangs == pytest.approx(10.0)
    assert metrics.service_level == pytest.approx(service_level, abs=5e-4)
    assert metrics.service_level_answered == metrics.service_level
    assert metrics.occupancy == pytest.approx(occupancy, abs=5e-4)
    assert metrics.p_wait == pytest.approx(p_wait, abs=5e-5)
    assert metrics.asa_s == pytest.approx(asa_s, abs=5e-3)
    assert metrics.mean_wait_s == metrics.asa_s and metrics.p_abandon == 0.0 and metrics.stable


def test_the_worked_example_needs_14_agents_for_80_percent_in_20_seconds() -> None:
    staffing = agents_required(
        EXAMPLE, target_service_level=0.8, answer_within_s=20.0, model=QueueModel.ERLANG_C
    )
    assert staffing.agents == 14
    assert staffing.metrics == erlang_c(EXAMPLE, 14, answer_within_s=20.0)
    assert (
        agents_required(
            EXAMPLE, target_service_level=0.9, answer_within_s=20.0, model=QueueModel.ERLANG_C
        ).agents
        == 15
    )


@pytest.mark.parametrize("load", [14.0, 15.0, 40.0])
def test_unstable_erlang_c_reports_certain_waits_without_crashing(load: float) -> None:
    workload = Workload(arrival_rate_per_s=load / 180.0, aht_s=180.0)
    metrics = erlang_c(workload, 14)
    assert (metrics.p_wait, metrics.service_level, metrics.occupancy, metrics.stable) == (
        1.0,
        0.0,
        1.0,
        False,
    )
    assert math.isinf(metrics.asa_s) and math.isinf(metrics.mean_wait_s)


def test_a_quiet_interval_needs_no_agent() -> None:
    quiet = Workload(arrival_rate_per_s=0.0, aht_s=180.0, patience_s=60.0)
    for model in QueueModel:
        metrics = queue_metrics(quiet, 3, model=model)
        assert (metrics.p_wait, metrics.service_level, metrics.occupancy) == (0.0, 1.0, 0.0)
        assert agents_required(quiet, target_service_level=0.8, answer_within_s=20.0, model=model).agents == 0


# --- Erlang A against a brute-force birth–death chain and the offered-wait density --------------


def _brute_force_erlang_a(
    arrival_rate: float, aht_s: float, patience_s: float, agents: int, t: float
) -> dict[str, float]:
    """The M/M/s+M chain truncated far out, and SL/ASA by Simpson on the offered-wait density."""
    mu, theta = 1 / aht_s, 1 / patience_s
    log_p = [0.0]
    for j in range(1, agents + 20_000):
        rate = j * mu if j <= agents else agents * mu + (j - agents) * theta
        log_p.append(log_p[-1] + math.log(arrival_rate / rate))
    top = max(log_p)
    weights = [math.exp(x - top) for x in log_p]
    norm = math.fsum(weights)
    p = [w / norm for w in weights]
    queue_mean = math.fsum((j - agents) * p[j] for j in range(agents, len(p)))
    p_abandon = theta * queue_mean / arrival_rate

    # Offered wait V has density λ·π(s-1)·exp(b(1 - e^{-θx}) - sμx) for x > 0.
    b = arrival_rate / theta

    def phi(x: float) -> float:
        return b * -math.expm1(-theta * x) - agents * mu * x

    peak = max(0.0, math.log(arrival_rate / (agents * mu)) / theta)
    end = max(peak, 1.0)
    while phi(end) > phi(peak) - 60:
        end *= 2

    def simpson(f: Callable[[float], float], upper: float, steps: int = 40_000) -> float:
        h = upper / steps
        inner = math.fsum((4 if i % 2 else 2) * f(i * h) for i in range(1, steps))
        return (f(0.0) + inner + f(upper)) * h / 3

    def density(x: float) -> float:
        return arrival_rate * p[agents - 1] * math.exp(phi(x))

    answered_within = simpson(lambda x: density(x) * math.exp(-theta * x), t)
    answered_wait = simpson(lambda x: x * density(x) * math.exp(-theta * x), end)
    return {
        "p_wait": math.fsum(p[agents:]),
        "p_abandon": p_abandon,
        "mean_wait_s": queue_mean / arrival_rate,
        "asa_s": answered_wait / (1 - p_abandon),
        "service_level": math.fsum(p[:agents]) + answered_within,
    }


@pytest.mark.parametrize(
    ("arrival_rate", "aht_s", "patience_s", "agents", "t"),
    [
        (100 / 1800, 180.0, 120.0, 14, 20.0),  # the worked example, impatient callers
        (0.1, 180.0, 300.0, 10, 60.0),  # load 1.8 per agent
        (0.2, 180.0, 300.0, 10, 20.0),  # load 3.6 per agent: most callers abandon
        (1.5, 200.0, 100.0, 300, 30.0),  # critically loaded, many agents
        (0.01, 60.0, 5.0, 1, 3.0),  # one agent, very impatient callers
    ],
)
def test_erlang_a_equals_the_brute_force_chain(
    arrival_rate: float, aht_s: float, patience_s: float, agents: int, t: float
) -> None:
    workload = Workload(arrival_rate_per_s=arrival_rate, aht_s=aht_s, patience_s=patience_s)
    metrics = erlang_a(workload, agents, answer_within_s=t)
    expected = _brute_force_erlang_a(arrival_rate, aht_s, patience_s, agents, t)
    assert metrics.p_wait == pytest.approx(expected["p_wait"], rel=1e-9)
    assert metrics.p_abandon == pytest.approx(expected["p_abandon"], rel=1e-9)
    assert metrics.mean_wait_s == pytest.approx(expected["mean_wait_s"], rel=1e-9)
    assert metrics.asa_s == pytest.approx(expected["asa_s"], rel=1e-7)
    assert metrics.service_level == pytest.approx(expected["service_level"], rel=1e-7, abs=1e-12)
    assert metrics.service_level_answered == pytest.approx(metrics.service_level / (1 - metrics.p_abandon))
    assert metrics.occupancy == pytest.approx(
        workload.offered_load_erlangs * (1 - metrics.p_abandon) / agents
    )


def test_erlang_a_with_infinite_patience_is_erlang_c() -> None:
    metrics = erlang_a(EXAMPLE, 14)
    assert metrics.model is QueueModel.ERLANG_A
    assert metrics.service_level == erlang_c(EXAMPLE, 14).service_level


@pytest.mark.parametrize("load", [1.0, 1000.0, 1990.0, 1999.9, 2000.0, 2500.0, 10_000.0])
@pytest.mark.parametrize("patience_s", [1.0, 300.0, 1e5])
def test_two_thousand_agents_give_finite_measures_at_any_load(load: float, patience_s: float) -> None:
    workload = Workload(arrival_rate_per_s=load / 180.0, aht_s=180.0, patience_s=patience_s)
    abandoning = erlang_a(workload, MAX_AGENTS)
    _assert_sane(abandoning)
    assert math.isfinite(abandoning.asa_s) and math.isfinite(abandoning.mean_wait_s)
    patient = erlang_c(workload, MAX_AGENTS)
    _assert_sane(patient)
    assert patient.stable is (load < MAX_AGENTS)


# --- properties ---------------------------------------------------------------------------------


def _assert_sane(metrics: QueueMetrics) -> None:
    for value in (
        metrics.p_wait,
        metrics.service_level,
        metrics.service_level_answered,
        metrics.p_abandon,
        metrics.occupancy,
    ):
        assert 0.0 <= value <= 1.0
    assert metrics.asa_s >= 0.0 and metrics.mean_wait_s >= 0.0
    assert not math.isnan(metrics.asa_s) and not math.isnan(metrics.mean_wait_s)


agents_st = st.integers(1, MAX_AGENTS)
per_agent_load = st.floats(0.01, 5.0)
aht_st = st.floats(10.0, 3600.0)
patience_st = st.floats(1.0, 1e4)
within_st = st.floats(0.0, 3600.0)


def _workload(agents: int, rho: float, aht_s: float, patience_s: float = math.inf) -> Workload:
    return Workload(arrival_rate_per_s=rho * agents / aht_s, aht_s=aht_s, patience_s=patience_s)


@settings(max_examples=150, deadline=None)
@given(agents_st, st.floats(0.01, 0.95), aht_st, within_st)
def test_erlang_a_tends_to_erlang_c_as_patience_grows(
    agents: int, rho: float, aht_s: float, t: float
) -> None:
    c = erlang_c(_workload(agents, rho, aht_s), agents, answer_within_s=t)
    a = erlang_a(_workload(agents, rho, aht_s, patience_s=1e8 * aht_s / agents), agents, answer_within_s=t)
    nearer = erlang_a(_workload(agents, rho, aht_s, patience_s=10 * aht_s), agents, answer_within_s=t)
    assert a.p_wait == pytest.approx(c.p_wait, rel=1e-4, abs=1e-12)
    assert a.service_level == pytest.approx(c.service_level, rel=1e-4, abs=1e-12)
    assert a.asa_s == pytest.approx(c.asa_s, rel=1e-4, abs=1e-9 * aht_s)
    assert a.p_abandon < 1e-6
    assert abs(a.service_level - c.service_level) <= abs(nearer.service_level - c.service_level) + TOL
    # Impatience only helps those who stay: fewer wait, and not for longer.
    assert nearer.p_wait <= c.p_wait * (1 + 1e-9) and nearer.asa_s <= c.asa_s * (1 + 1e-9) + 1e-12


@settings(max_examples=200, deadline=None)
@given(agents_st, per_agent_load, aht_st, patience_st, within_st)
def test_erlang_a_measures_are_probabilities_and_consistent(
    agents: int, rho: float, aht_s: float, patience_s: float, t: float
) -> None:
    metrics = erlang_a(_workload(agents, rho, aht_s, patience_s), agents, answer_within_s=t)
    _assert_sane(metrics)
    assert metrics.stable and math.isfinite(metrics.asa_s)
    # Carried load cannot exceed the agents: P(abandon) >= 1 - 1/ρ.
    assert metrics.p_abandon >= 1 - 1 / rho - TOL
    # The mean wait over all arrivals includes the answered callers' waits.
    assert metrics.mean_wait_s >= (1 - metrics.p_abandon) * metrics.asa_s * (1 - 1e-9)
    assert metrics.service_level <= 1 - metrics.p_abandon + TOL


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, MAX_AGENTS - 1),
    per_agent_load,
    aht_st,
    patience_st,
    within_st,
    st.sampled_from(QueueModel),
)
def test_service_level_rises_with_agents(
    agents: int, rho: float, aht_s: float, patience_s: float, t: float, model: QueueModel
) -> None:
    workload = _workload(agents, rho, aht_s, patience_s)
    fewer = queue_metrics(workload, agents, answer_within_s=t, model=model)
    more = queue_metrics(workload, agents + 1, answer_within_s=t, model=model)
    assert more.service_level >= fewer.service_level - TOL
    assert more.p_wait <= fewer.p_wait + TOL
    assert more.asa_s <= fewer.asa_s * (1 + 1e-12) + 1e-12


@settings(max_examples=150, deadline=None)
@given(
    agents_st,
    per_agent_load,
    st.floats(1.01, 2.0),
    aht_st,
    patience_st,
    within_st,
    st.sampled_from(QueueModel),
)
def test_service_level_falls_with_load(
    agents: int, rho: float, factor: float, aht_s: float, patience_s: float, t: float, model: QueueModel
) -> None:
    lighter = queue_metrics(_workload(agents, rho, aht_s, patience_s), agents, answer_within_s=t, model=model)
    heavier = queue_metrics(
        _workload(agents, rho * factor, aht_s, patience_s), agents, answer_within_s=t, model=model
    )
    assert heavier.service_level <= lighter.service_level + TOL
    assert heavier.p_abandon >= lighter.p_abandon - TOL


@settings(max_examples=100, deadline=None)
@given(agents_st, per_agent_load, aht_st, patience_st, within_st, st.floats(1.0, 600.0))
def test_service_level_rises_with_the_answer_time(
    agents: int, rho: float, aht_s: float, patience_s: float, t: float, extra: float
) -> None:
    workload = _workload(agents, rho, aht_s, patience_s)
    sooner = erlang_a(workload, agents, answer_within_s=t)
    later = erlang_a(workload, agents, answer_within_s=t + extra)
    assert later.service_level >= sooner.service_level - TOL
    assert later.service_level <= 1 - later.p_abandon + TOL


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.05, 15.0),
    aht_st,
    st.one_of(patience_st, st.just(math.inf)),
    st.floats(5.0, 120.0),
    st.floats(0.5, 0.95),
    st.sampled_from(QueueModel),
)
def test_agents_required_is_the_smallest_staffing_meeting_the_target(
    arrival_rate: float, aht_s: float, patience_s: float, t: float, target: float, model: QueueModel
) -> None:
    workload = Workload(arrival_rate_per_s=arrival_rate, aht_s=aht_s, patience_s=patience_s)
    assume(queue_metrics(workload, MAX_AGENTS, answer_within_s=t, model=model).service_level >= target)
    staffing = agents_required(workload, target_service_level=target, answer_within_s=t, model=model)
    assert staffing.metrics.agents == staffing.agents
    assert staffing.metrics.service_level >= target
    if staffing.agents > 1:
        below = queue_metrics(workload, staffing.agents - 1, answer_within_s=t, model=model)
        assert below.service_level < target


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: Workload(arrival_rate_per_s=-0.1, aht_s=180.0),
        lambda: Workload(arrival_rate_per_s=math.nan, aht_s=180.0),
        lambda: Workload(arrival_rate_per_s=math.inf, aht_s=180.0),
        lambda: Workload(arrival_rate_per_s=0.1, aht_s=0.0),
        lambda: Workload(arrival_rate_per_s=0.1, aht_s=-180.0),
        lambda: Workload(arrival_rate_per_s=0.1, aht_s=180.0, patience_s=0.0),
        lambda: Workload(arrival_rate_per_s=0.1, aht_s=180.0, patience_s=-math.inf),
        lambda: Workload(arrival_rate_per_s=0.1, aht_s=180.0, patience_s=math.nan),
        lambda: Workload(arrival_rate_per_s="0.1", aht_s=180.0),  # type: ignore[arg-type]
        lambda: Workload.per_interval(calls=10, interval_s=0.0, aht_s=180.0),
        lambda: Workload.per_interval(calls=-1, interval_s=900.0, aht_s=180.0),
        lambda: erlang_c(EXAMPLE, 0),
        lambda: erlang_a(EXAMPLE, -3),
        lambda: erlang_a(EXAMPLE, MAX_AGENTS + 1),
        lambda: erlang_c(EXAMPLE, 14.0),  # type: ignore[arg-type]
        lambda: erlang_c(EXAMPLE, True),
        lambda: erlang_a(EXAMPLE, 14, answer_within_s=-1.0),
        lambda: erlang_a(EXAMPLE, 14, answer_within_s=math.nan),
        lambda: erlang_b(3, -1.0),
        lambda: erlang_b(3, math.inf),
        lambda: erlang_a(Workload(arrival_rate_per_s=10.0, aht_s=180.0, patience_s=1e9), 100),
        lambda: erlang_a(Workload(arrival_rate_per_s=1e-3, aht_s=1.0, patience_s=1e7), 2000),
        lambda: agents_required(EXAMPLE, target_service_level=1.0, answer_within_s=20.0),
        lambda: agents_required(EXAMPLE, target_service_level=0.0, answer_within_s=20.0),
        lambda: agents_required(EXAMPLE, target_service_level=math.nan, answer_within_s=20.0),
        lambda: agents_required(EXAMPLE, target_service_level=0.8, answer_within_s=20.0, max_agents=0),
    ],
)
def test_bad_input_is_refused_with_a_validation_error(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError):
        call()


@pytest.mark.parametrize("model", list(QueueModel))
def test_a_target_out_of_reach_of_2000_agents_is_refused(model: QueueModel) -> None:
    flood = Workload(arrival_rate_per_s=3000 / 180.0, aht_s=180.0, patience_s=600.0)
    with pytest.raises(ValidationError, match="2000 agents"):
        agents_required(flood, target_service_level=0.8, answer_within_s=20.0, model=model)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.1, 60.0),
    st.floats(30.0, 900.0),
    st.one_of(st.just(math.inf), st.floats(10.0, 600.0)),
    st.floats(0.5, 0.95),
    st.floats(0.0, 120.0),
    st.sampled_from(list(QueueModel)),
)
def test_the_staffing_found_is_the_smallest_that_meets_the_target(
    load: float, aht_s: float, patience_s: float, target: float, t: float, model: QueueModel
) -> None:
    """Whatever the search order, the answer is the first staffing of a plain count upwards."""
    workload = Workload(arrival_rate_per_s=load / aht_s, aht_s=aht_s, patience_s=patience_s)
    max_agents = 200
    first = next(
        (
            n
            for n in range(1, max_agents + 1)
            if queue_metrics(workload, n, answer_within_s=t, model=model).service_level >= target
        ),
        None,
    )
    if first is None:
        with pytest.raises(ValidationError, match="below the target"):
            agents_required(
                workload, target_service_level=target, answer_within_s=t, model=model, max_agents=max_agents
            )
        return
    staffing = agents_required(
        workload, target_service_level=target, answer_within_s=t, model=model, max_agents=max_agents
    )
    assert staffing.agents == first
    assert staffing.metrics == queue_metrics(workload, first, answer_within_s=t, model=model)
