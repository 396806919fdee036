"""Each metric of the dictionary on hand-made event sequences (live statistics, pure)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callcenter.model.events import (
    AgentQueuesChanged,
    AgentStateChanged,
    CallEnded,
    CallLeftQueue,
    CallQueued,
    DomainEvent,
)
from callcenter.model.vocabulary import AgentState, CallOutcome, EntryPoint
from callcenter.stats.definitions import METRICS, MetricKind, StatsConfig
from callcenter.stats.live import LiveStats

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DOC = Path(__file__).parents[3] / "docs" / "metrics.md"


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def ended(
    call_id: str,
    outcome: CallOutcome,
    end_s: float,
    *,
    queue: str | None = "sales",
    caller: str = "",
    wait_s: float = 0.0,
    talk_s: float = 0.0,
    agent: str | None = None,
) -> CallEnded:
    return CallEnded(
        event_id=call_id,
        occurred_at=at(end_s),
        call_id=call_id,
        outcome=outcome,
        entry_point=EntryPoint.ARI,
        queue=queue,
        caller=caller or f"+1415555{abs(hash(call_id)) % 10000:04d}",
        wait_s=wait_s,
        talk_s=talk_s,
        agent_id=agent,
    )


def queued(call_id: str, s: float, queue: str = "sales") -> CallQueued:
    return CallQueued(event_id=f"queued:{call_id}", occurred_at=at(s), call_id=call_id, queue=queue)


def left(call_id: str, s: float, queue: str = "sales", agent: str | None = None) -> CallLeftQueue:
    return CallLeftQueue(
        event_id=f"left:{call_id}", occurred_at=at(s), call_id=call_id, queue=queue, agent_id=agent
    )


def state(agent: str, new: AgentState, old: AgentState, s: float) -> AgentStateChanged:
    return AgentStateChanged(
        event_id=f"a:{agent}:{s}", occurred_at=at(s), agent_id=agent, state=new, previous=old
    )


def member(agent: str, *queues: str) -> AgentQueuesChanged:
    return AgentQueuesChanged(event_id=f"q:{agent}", occurred_at=at(0), agent_id=agent, queues=queues)


def live(events: list[DomainEvent], config: StatsConfig | None = None) -> LiveStats:
    stats = LiveStats(config=config or StatsConfig())
    for event in events:
        stats.apply(event)
    return stats


def overall(events: list[DomainEvent], now_s: float = 3600, **config: object) -> dict[str, object]:
    return dict(live(events, StatsConfig(**config)).snapshot(at(now_s)).overall)  # type: ignore[arg-type]


def test_calls_waiting_and_longest_wait_follow_queue_and_leave() -> None:
    stats = live([queued("c1", 0), queued("c2", 30), queued("c3", 40, queue="support")])

    snap = stats.snapshot(at(100))
    assert snap.overall["calls_waiting"] == 3
    assert snap.overall["longest_wait_s"] == 100.0
    assert snap.queues["sales"]["calls_waiting"] == 2
    assert snap.queues["support"]["longest_wait_s"] == 60.0
    assert [w.call_id for w in snap.waiting] == ["c1", "c2", "c3"]

    stats.apply(left("c1", 101, agent="alice"))
    stats.apply(ended("c3", CallOutcome.ABANDONED, 110, queue="support", wait_s=70))
    snap = stats.snapshot(at(120))
    assert snap.overall["calls_waiting"] == 1
    assert snap.overall["longest_wait_s"] == 90.0
    assert snap.queues["support"]["calls_waiting"] == 0
    assert snap.queues["support"]["longest_wait_s"] == 0.0


def test_a_repeated_queued_event_after_the_call_ended_does_not_resurrect_it() -> None:
    stats = live(
        [queued("c1", 0), ended("c1", CallOutcome.ANSWERED, 60, wait_s=5, talk_s=50), queued("c1", 0)]
    )

    assert stats.snapshot(at(100)).overall["calls_waiting"] == 0


def test_agents_by_state_per_queue_and_overall_counted_once() -> None:
    events: list[DomainEvent] = [
        member("alice", "sales", "support"),
        member("bob", "sales"),
        member("carol", "support"),
        state("alice", AgentState.AVAILABLE, AgentState.LOGGED_OUT, 1),
        state("bob", AgentState.AVAILABLE, AgentState.LOGGED_OUT, 1),
        state("bob", AgentState.BUSY, AgentState.AVAILABLE, 5),
        state("carol", AgentState.PAUSED, AgentState.LOGGED_OUT, 2),
    ]
    snap = live(events).snapshot(at(10))

    assert (snap.overall["agents_logged_in"], snap.overall["agents_available"]) == (3, 1)
    assert (snap.overall["agents_busy"], snap.overall["agents_paused"]) == (1, 1)
    assert snap.queues["sales"]["agents_logged_in"] == 2
    assert snap.queues["support"]["agents_paused"] == 1
    assert snap.queues["support"]["agents_busy"] == 0


@pytest.mark.parametrize(
    ("wait_s", "in_sl"), [(0.0, 1), (19.9, 1), (20.0, 1), (20.1, 0), (300.0, 0)], ids=str
)
def test_service_level_threshold_is_inclusive(wait_s: float, in_sl: int) -> None:
    figures = overall([ended("c1", CallOutcome.ANSWERED, 100, wait_s=wait_s, talk_s=10)])

    assert figures["calls_answered_in_sl"] == in_sl
    assert figures["service_level_answered"] == float(in_sl)


def test_service_level_both_ways_and_abandon_rates() -> None:
    events: list[DomainEvent] = [
        ended("a1", CallOutcome.ANSWERED, 100, wait_s=5, talk_s=60),
        ended("a2", CallOutcome.ANSWERED, 200, wait_s=15, talk_s=120),
        ended("a3", CallOutcome.ANSWERED, 300, wait_s=45, talk_s=30),
        ended("ab1", CallOutcome.ABANDONED, 310, wait_s=50),
        ended("sa1", CallOutcome.SHORT_ABANDON, 320, wait_s=2),
        ended("vm1", CallOutcome.VOICEMAIL, 330, wait_s=90),
        ended("ivr", CallOutcome.IVR_HANGUP, 340, queue=None),
    ]
    f = overall(events)

    assert f["calls_offered"] == 7
    assert f["calls_answered"] == 3
    assert f["calls_missed"] == 4
    assert f["calls_abandoned"] == 1
    assert f["calls_short_abandoned"] == 1
    assert f["service_level"] == pytest.approx(2 / 4)  # 2 in 20 s over 3 answered + 1 abandoned
    assert f["service_level_answered"] == pytest.approx(round(2 / 3, 4))
    assert f["abandon_rate"] == pytest.approx(round(1 / 6, 4))  # short abandon left out
    assert f["short_abandon_rate"] == pytest.approx(round(1 / 7, 4))
    assert f["missed_rate"] == pytest.approx(round(4 / 7, 4))
    assert f["asa_s"] == pytest.approx(round(65 / 3, 1))
    assert f["aht_s"] == pytest.approx(70.0)


def test_per_queue_thresholds_and_the_overall_sum() -> None:
    events: list[DomainEvent] = [
        ended("s1", CallOutcome.ANSWERED, 100, wait_s=25, talk_s=10),
        ended("p1", CallOutcome.ANSWERED, 100, queue="support", wait_s=25, talk_s=10),
        ended("ivr", CallOutcome.IVR_HANGUP, 100, queue=None),
    ]
    snap = live(events, StatsConfig(thresholds={"support": 30})).snapshot(at(200))

    assert snap.queues["sales"]["service_level_answered"] == 0.0
    assert snap.queues["support"]["service_level_answered"] == 1.0
    assert snap.overall["calls_offered"] == 3
    assert snap.queues["sales"]["calls_offered"] == 1
    assert "" not in snap.queues


def test_no_calls_gives_null_rates_not_zeros() -> None:
    f = overall([])

    for name in ("service_level", "service_level_answered", "abandon_rate", "missed_rate", "asa_s", "aht_s"):
        assert f[name] is None, name
    assert f["missed_closure_rate"] is None
    assert f["calls_offered"] == 0


def test_missed_call_closure_within_the_window_and_who_closed_it() -> None:
    events: list[DomainEvent] = [
        ended("m1", CallOutcome.ABANDONED, 100, caller="+14155550100", wait_s=40),
        ended("m2", CallOutcome.UNANSWERED_TIMEOUT, 200, caller="+14155550199", wait_s=600),
        ended("m3", CallOutcome.ABANDONED, 250, caller="anonymous", wait_s=30),
        # The caller of m1 rings back and is answered at 1000 s (ends 1100 s after 100 s of talk).
        ended("r1", CallOutcome.ANSWERED, 1100, caller="+14155550100", wait_s=3, talk_s=100, agent="bob"),
    ]
    stats = live(events, StatsConfig(closure_window_s=3600))
    snap = stats.snapshot(at(1200))

    assert snap.overall["calls_missed"] == 3
    assert snap.overall["missed_closable"] == 2  # the withheld number cannot be called back
    assert snap.overall["missed_closed"] == 1
    assert snap.overall["missed_closure_rate"] == 0.5
    closed = stats.book.missed["m1"]
    assert (closed.closed_at, closed.closed_by_agent, closed.closed_by_call) == (at(1000), "bob", "r1")
    assert [m.call_id for m in snap.open_missed] == ["m2"]


def test_a_closure_after_the_window_closes_the_call_but_does_not_count() -> None:
    events: list[DomainEvent] = [
        ended("m1", CallOutcome.ABANDONED, 0, caller="+14155550100", wait_s=40),
        ended("r1", CallOutcome.ANSWERED, 7300, caller="+14155550100", wait_s=3, talk_s=100, agent="bob"),
    ]
    stats = live(events, StatsConfig(closure_window_s=3600))

    assert stats.snapshot(at(7400)).overall["missed_closed"] == 0
    assert stats.book.missed["m1"].closed_at is not None


def test_an_answered_call_does_not_close_a_missed_call_that_ended_after_it_was_answered() -> None:
    events: list[DomainEvent] = [
        ended("m1", CallOutcome.ABANDONED, 500, caller="+14155550100", wait_s=40),
        ended("r1", CallOutcome.ANSWERED, 520, caller="+14155550100", wait_s=3, talk_s=100, agent="bob"),
    ]

    assert overall(events)["missed_closed"] == 0


def test_revenue_at_risk_needs_an_average_value() -> None:
    events: list[DomainEvent] = [
        ended("m1", CallOutcome.ABANDONED, 100, wait_s=40),
        ended("m2", CallOutcome.VOICEMAIL, 100, wait_s=40),
        ended("a1", CallOutcome.ANSWERED, 100, wait_s=4, talk_s=5),
    ]

    assert overall(events)["revenue_at_risk"] is None
    assert overall(events, conversion_rate=0.25, average_value=80.0)["revenue_at_risk"] == 40.0


def test_repeated_events_count_once() -> None:
    call = ended("a1", CallOutcome.ANSWERED, 100, wait_s=4, talk_s=5)

    assert overall([call, call, call])["calls_offered"] == 1


def test_the_day_rolls_over_at_local_midnight() -> None:
    paris = ZoneInfo("Europe/Paris")
    stats = LiveStats(config=StatsConfig(), zone=paris)
    # 22:00 UTC is 23:00 in Paris (UTC+1 in November): still the 23rd there.
    stats.apply(ended("late", CallOutcome.ANSWERED, 13 * 3600, wait_s=1, talk_s=5))
    assert stats.snapshot(at(13.9 * 3600)).overall["calls_offered"] == 1
    # 23:06 UTC is 00:06 on the 24th in Paris: a new day, though still the 23rd in UTC.
    assert stats.snapshot(at(14.1 * 3600)).overall["calls_offered"] == 0


def test_charts_of_the_day_have_one_point_per_interval() -> None:
    events: list[DomainEvent] = [
        queued("c1", 0),
        queued("c2", 10),
        ended("c1", CallOutcome.ANSWERED, 100, wait_s=5, talk_s=60),
        ended("c2", CallOutcome.ABANDONED, 1000, wait_s=990),
    ]
    day = live(events).snapshot(at(1100)).day

    assert [(p.start, p.offered, p.answered, p.abandoned, p.peak_waiting) for p in day] == [
        (T0, 1, 1, 0, 2),
        (at(900), 1, 0, 1, 0),
    ]
    assert day[0].service_level == 1.0 and day[1].service_level == 0.0


def test_the_dictionary_page_defines_every_metric_exactly_once() -> None:
    text = DOC.read_text()
    defined = re.findall(r"^\| `([a-z0-9_]+)` \|", text, flags=re.MULTILINE)

    assert sorted(defined) == sorted(m.name for m in METRICS)
    assert len(defined) == len(set(defined))


def test_live_json_shows_every_counted_and_live_metric_and_no_pending_one() -> None:
    snap = live([]).snapshot(at(0))
    shown = {m.name for m in METRICS if m.kind in (MetricKind.COUNTED, MetricKind.LIVE)}

    assert set(snap.overall) == shown


def test_an_agents_own_figures_count_their_answered_calls_today() -> None:
    stats = live(
        [
            ended("a1", CallOutcome.ANSWERED, 100, wait_s=4, talk_s=60, agent="bob"),
            ended("a2", CallOutcome.ANSWERED, 200, wait_s=4, talk_s=120, agent="bob"),
            ended("a2", CallOutcome.ANSWERED, 200, wait_s=4, talk_s=120, agent="bob"),  # a repeat
            ended("a3", CallOutcome.ANSWERED, 300, wait_s=4, talk_s=30, agent="alice"),
            ended("m1", CallOutcome.ABANDONED, 300, wait_s=40),
        ]
    )

    assert stats.agent_figures("bob", at(400)) == {
        "agent_calls_answered": 2,
        "agent_talk_s": 180.0,
        "agent_aht_s": 90.0,
    }
    assert stats.agent_figures("carol", at(400))["agent_aht_s"] is None
    assert stats.agent_figures("bob", at(24 * 3600))["agent_calls_answered"] == 0  # the next day
