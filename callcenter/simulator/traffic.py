"""Traffic model for the simulated Asterisk: arrivals, patience, handle times, agent answers (edge).

:class:`TrafficModel` is a pure generator over a seeded :class:`random.Random`: Poisson arrivals whose
rate follows an hourly profile (thinning), exponential caller patience, lognormal or exponential
handle times, and per-dial agent answer delays and no-answers. :func:`run_traffic` plays it against a
:class:`~callcenter.simulator.pbx.Pbx` through the control API only (calls arrive, callers abandon
when their patience runs out unless an agent was bridged to them, answered calls end after their
handle time), watching bridge membership in the simulator's state. It knows nothing of our backend.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from callcenter.simulator.pbx import EndpointBehaviour, EndpointConfig, Pbx, PbxChange, Timer

#: A business day (calls per hour, hour 0 to 23): quiet nights, a morning peak, a smaller afternoon one.
BUSINESS_DAY: tuple[float, ...] = (
    2, 1, 1, 1, 1, 2, 8, 30, 90, 140, 160, 150,
    120, 130, 150, 140, 110, 80, 40, 20, 10, 6, 4, 3,
)  # fmt: skip


class HandleDistribution(StrEnum):
    LOGNORMAL = "lognormal"
    EXPONENTIAL = "exponential"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficProfile:
    """The parameters of the traffic model.

    :param hourly_calls: arrival rate per hour of day (24 values, calls per hour, local to the clock).
    :param rate_scale: multiplies every hourly rate (load tests, demos).
    :param patience_mean_s: mean of the exponential time a caller waits before hanging up.
    :param handle_mean_s: mean talk time once an agent is bridged.
    :param handle_sigma: shape of the lognormal handle time (ignored for exponential).
    :param agent_answer_mean_s: mean of the exponential delay before an agent's phone answers.
    :param agent_no_answer_rate: share of agent legs that ring out without an answer.
    :param agent_hangs_up_share: share of answered calls that the agent, not the caller, ends.
    :param queues: (queue name, weight) pairs; the queue is the caller's Stasis argument.
    """

    hourly_calls: tuple[float, ...] = BUSINESS_DAY
    rate_scale: float = 1.0
    patience_mean_s: float = 60.0
    handle_mean_s: float = 180.0
    handle_distribution: HandleDistribution = HandleDistribution.LOGNORMAL
    handle_sigma: float = 0.6
    agent_answer_mean_s: float = 4.0
    agent_no_answer_rate: float = 0.1
    agent_hangs_up_share: float = 0.5
    queues: tuple[tuple[str, float], ...] = (("sales", 1.0),)
    exten: str = "3000"
    caller_prefix: str = "+1415555"

    def __post_init__(self) -> None:
        if len(self.hourly_calls) != 24 or any(r < 0 for r in self.hourly_calls):
            raise ValueError("hourly_calls needs 24 rates >= 0")
        if not 0 <= self.agent_no_answer_rate <= 1 or not 0 <= self.agent_hangs_up_share <= 1:
            raise ValueError("rates and shares are fractions from 0 to 1")
        if not self.queues or any(w < 0 for _, w in self.queues):
            raise ValueError("queues need at least one (name, weight >= 0)")

    @classmethod
    def flat(cls, calls_per_hour: float, **kwargs: object) -> TrafficProfile:
        """The same rate at every hour."""
        return cls(hourly_calls=(calls_per_hour,) * 24, **kwargs)  # type: ignore[arg-type]

    def rate_per_s(self, when: datetime) -> float:
        return self.hourly_calls[when.hour] * self.rate_scale / 3600.0


@dataclass(frozen=True, slots=True)
class Arrival:
    """One caller: when (seconds after the start), who, for which queue, and how they will behave."""

    offset_s: float
    caller: str
    queue: str
    patience_s: float
    handle_s: float
    agent_ends: bool


@dataclass(frozen=True, slots=True)
class AgentLeg:
    """How one dial to an agent goes: answered after ``answer_after_s``, or rings out."""

    answers: bool
    answer_after_s: float


class TrafficModel:
    """Random draws of the traffic; the same seed gives the same calls."""

    def __init__(self, profile: TrafficProfile | None = None, *, seed: int = 0) -> None:
        self.profile = profile or TrafficProfile()
        self._rng = random.Random(seed)
        # Agent legs draw from their own stream: how many dials the backend makes does not shift arrivals.
        self._agent_rng = random.Random(f"{seed}:agents")
        self._count = 0

    def arrivals(self, start: datetime) -> Iterator[Arrival]:
        """Arrivals from ``start`` on, as a non-homogeneous Poisson process (Lewis-Shedler thinning)."""
        profile = self.profile
        peak = max(profile.hourly_calls) * profile.rate_scale / 3600.0
        if peak <= 0:
            return
        names = [q for q, _ in profile.queues]
        weights = [w for _, w in profile.queues]
        t = 0.0
        while True:
            t += self._rng.expovariate(peak)
            if self._rng.random() * peak > profile.rate_per_s(start + timedelta(seconds=t)):
                continue
            self._count += 1
            yield Arrival(
                offset_s=t,
                caller=f"{profile.caller_prefix}{self._count % 10_000:04d}",
                queue=self._rng.choices(names, weights)[0],
                patience_s=self.patience_s(),
                handle_s=self.handle_s(),
                agent_ends=self._rng.random() < profile.agent_hangs_up_share,
            )

    def patience_s(self) -> float:
        return self._rng.expovariate(1.0 / self.profile.patience_mean_s)

    def handle_s(self) -> float:
        profile = self.profile
        if profile.handle_distribution is HandleDistribution.EXPONENTIAL:
            return self._rng.expovariate(1.0 / profile.handle_mean_s)
        # mu chosen so that the lognormal's mean is handle_mean_s.
        mu = math.log(profile.handle_mean_s) - profile.handle_sigma**2 / 2
        return self._rng.lognormvariate(mu, profile.handle_sigma)

    def agent_leg(self) -> AgentLeg:
        if self._agent_rng.random() < self.profile.agent_no_answer_rate:
            return AgentLeg(False, 0.0)
        return AgentLeg(True, self._agent_rng.expovariate(1.0 / self.profile.agent_answer_mean_s))


@dataclass(slots=True)
class TrafficStats:
    """What the driver did (callers' side only: outcomes are for the backend to decide)."""

    arrived: int = 0
    failed: int = 0  # Stasis() failed: no application connected
    abandoned: int = 0  # the caller's patience ran out before an agent was bridged
    answered: int = 0  # an agent leg was bridged with the caller
    completed: int = 0  # an answered call ended by the driver after its handle time
    agent_legs: int = 0
    agent_no_answers: int = 0


@dataclass(slots=True, eq=False)
class _Call:
    arrival: Arrival
    channel_id: str
    timer: Timer | None = None
    agent_id: str | None = None
    answered: bool = False
    timers: list[Timer] = field(default_factory=list)


class TrafficDriver:
    """Plays a :class:`TrafficModel` against a simulator, on the simulator's own time."""

    #: A caller left alone after the agent hung up hangs up this much later if nobody else does.
    CALLER_GIVES_UP_AFTER_AGENT_S = 2.0

    def __init__(self, sim: Pbx, model: TrafficModel, *, start: datetime | None = None) -> None:
        self.sim = sim
        self.model = model
        self.stats = TrafficStats()
        self._start = start
        self._calls: dict[str, _Call] = {}
        self._arrivals: Iterator[Arrival] | None = None
        self._next: Timer | None = None
        self._running = False
        self._t0 = 0.0
        #: Set once arrivals have stopped and every caller the driver brought in is gone.
        self.idle = asyncio.Event()

    def start(self) -> None:
        """Begin: schedule the first arrival, watch the simulator, answer agent dials per the model."""
        self._running = True
        self._t0 = self.sim.scheduler.monotonic()
        self._arrivals = self.model.arrivals(self._start or self.sim.scheduler.now())
        self.sim.observe(self._on_change)
        self.sim.set_dial_policy(self._dial_policy)
        self._schedule_next()

    def stop_arrivals(self) -> None:
        """No more callers; those already in keep waiting, abandoning and ending as drawn."""
        self._running = False
        if self._next is not None:
            self._next.cancel()
        if not self._calls:
            self.idle.set()

    def stop(self) -> None:
        """No more arrivals or caller actions; calls in progress are left as they are."""
        self.stop_arrivals()
        for call in self._calls.values():
            for timer in call.timers:
                timer.cancel()
        self._calls.clear()
        self.sim.unobserve(self._on_change)
        self.sim.set_dial_policy(None)
        self.idle.set()

    def _schedule_next(self) -> None:
        if not self._running or self._arrivals is None:
            return
        arrival = next(self._arrivals, None)
        if arrival is None:
            return
        delay = arrival.offset_s - (self.sim.scheduler.monotonic() - self._t0)
        self._next = self.sim.call_later(delay, functools.partial(self._arrive, arrival))

    def _arrive(self, arrival: Arrival) -> None:
        if not self._running:
            return
        self.stats.arrived += 1
        channel_id = self.sim.incoming_call(
            arrival.caller, exten=self.model.profile.exten, app_args=[arrival.queue]
        )
        if not channel_id.entered_stasis or channel_id not in self.sim.channels:
            self.stats.failed += 1
        else:
            call = _Call(arrival, channel_id)
            call.timers.append(
                self.sim.call_later(arrival.patience_s, functools.partial(self._patience_out, call))
            )
            self._calls[channel_id] = call
        self._schedule_next()

    def _patience_out(self, call: _Call) -> None:
        if call.answered or call.channel_id not in self.sim.channels:
            return
        self.stats.abandoned += 1
        self.sim.hangup(call.channel_id)

    def _dial_policy(self, endpoint: str) -> EndpointConfig | None:
        configured = self.sim.endpoints.get(endpoint)
        if configured is None or configured.behaviour is not EndpointBehaviour.ANSWER:
            return None  # busy, unavailable or unknown endpoints keep their configured behaviour
        self.stats.agent_legs += 1
        leg = self.model.agent_leg()
        if not leg.answers:
            self.stats.agent_no_answers += 1
            return EndpointConfig(behaviour=EndpointBehaviour.NO_ANSWER, context=configured.context)
        return EndpointConfig(
            behaviour=EndpointBehaviour.ANSWER,
            answer_after_s=leg.answer_after_s,
            ring_after_s=min(configured.ring_after_s, leg.answer_after_s),
            context=configured.context,
        )

    def _on_change(self, change: PbxChange) -> None:
        # Called synchronously from inside the simulator: only schedule, never act re-entrantly.
        if change.kind == "entered_bridge" and change.bridge_id is not None:
            self._check_bridge(change.bridge_id)
        elif change.kind == "gone":
            call = self._calls.pop(change.channel_id, None)
            if call is not None:
                for timer in call.timers:
                    timer.cancel()
                if not self._running and not self._calls:
                    self.idle.set()
                return
            for call in self._calls.values():
                if call.agent_id == change.channel_id:
                    give_up = functools.partial(self._caller_gives_up, call)
                    call.timers.append(self.sim.call_later(self.CALLER_GIVES_UP_AFTER_AGENT_S, give_up))

    def _check_bridge(self, bridge_id: str) -> None:
        bridge = self.sim.bridges.get(bridge_id)
        if bridge is None or bridge.bridge_type != "mixing":
            return
        members = [self.sim.channels[c] for c in bridge.channels if c in self.sim.channels]
        agents = [c for c in members if c.originated]
        for member in members:
            call = self._calls.get(member.id)
            if call is None or call.answered or not agents:
                continue
            call.answered = True
            call.agent_id = agents[0].id
            self.stats.answered += 1
            for timer in call.timers:
                timer.cancel()
            call.timers = [
                self.sim.call_later(call.arrival.handle_s, functools.partial(self._end_call, call))
            ]

    def _end_call(self, call: _Call) -> None:
        order = (
            (call.agent_id, call.channel_id) if call.arrival.agent_ends else (call.channel_id, call.agent_id)
        )
        for target in order:
            if target is not None and target in self.sim.channels:
                self.stats.completed += 1
                self.sim.hangup(target)
                return

    def _caller_gives_up(self, call: _Call) -> None:
        if call.channel_id in self.sim.channels:
            self.sim.hangup(call.channel_id)


async def run_traffic(
    sim: Pbx, model: TrafficModel, stop: asyncio.Event, *, start: datetime | None = None, drain: bool = True
) -> TrafficStats:
    """Drive ``model``'s traffic into ``sim`` until ``stop`` is set; returns what happened.

    Timing uses the simulator's scheduler: wall-clock with ``realtime=True``, otherwise virtual time
    that the caller moves with ``sim.advance``.

    :param drain: after ``stop``, keep playing the callers already in (patience, handle times) and
        return once they are all gone; otherwise drop them as they are.
    """
    driver = TrafficDriver(sim, model, start=start)
    driver.start()
    try:
        await stop.wait()
        if drain:
            driver.stop_arrivals()
            await driver.idle.wait()
    finally:
        driver.stop()
    return driver.stats
