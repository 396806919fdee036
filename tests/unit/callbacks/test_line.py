"""Kept places in the live line: their place (with ties), the view the queue reads, and its freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callcenter.callbacks.lifecycle import new_callback
from callcenter.callbacks.line import CallbackLine, KeptPlace, line_key
from callcenter.callbacks.policy import LiveCaller, due_callbacks, place_in_line
from callcenter.callbacks.promise import keep_place_window
from callcenter.model.callbacks import Actor, Callback
from callcenter.model.vocabulary import ActorKind, CallbackKind

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
IVR = Actor(ActorKind.CUSTOMER, "ivr")


def _kept(callback_id: str, *, enqueued: datetime, call_id: str | None) -> Callback:
    callback, _ = new_callback(
        callback_id=callback_id,
        queue="sales",
        number="+14155550100",
        kind=CallbackKind.KEEP_PLACE,
        window=keep_place_window(T0, T0 + timedelta(minutes=30)),
        at=T0,
        actor=IVR,
        call_id=call_id,
        enqueued_at=enqueued,
    )
    return callback


def test_a_kept_place_stands_where_its_call_stood() -> None:
    callback = _kept("cb-9", enqueued=T0 - timedelta(minutes=3), call_id="1700000000.42")
    assert line_key(callback) == (T0 - timedelta(minutes=3), "1700000000.42")
    without_call = _kept("cb-8", enqueued=T0 - timedelta(minutes=3), call_id=None)
    assert line_key(without_call) == (T0 - timedelta(minutes=3), "cb-8")


@pytest.mark.parametrize(
    ("kept_call", "live_call", "kept_first"),
    [
        ("1700000000.10", "1700000000.20", True),
        ("1700000000.30", "1700000000.20", False),
    ],
)
def test_ties_on_the_enqueue_time_go_by_call_id_in_the_due_policy(
    kept_call: str, live_call: str, kept_first: bool
) -> None:
    at = T0 - timedelta(minutes=2)
    callback = _kept("cb-1", enqueued=at, call_id=kept_call)
    live = [LiveCaller(call_id=live_call, enqueued_at=at)]
    decision = due_callbacks(live, [callback], free=1)
    assert decision.due == (("cb-1",) if kept_first else ())
    assert decision.live == (() if kept_first else (live_call,))
    assert place_in_line(live, [callback], line_key(callback)) == (1 if kept_first else 2)


def test_the_view_is_in_line_order_per_queue_and_empty_when_stale() -> None:
    line = CallbackLine(ttl_s=5)
    later = KeptPlace(key=(T0 - timedelta(minutes=1), "c2"), callback_id="cb-2", queue="sales")
    earlier = KeptPlace(key=(T0 - timedelta(minutes=4), "c1"), callback_id="cb-1", queue="sales")
    elsewhere = KeptPlace(key=(T0 - timedelta(minutes=9), "c0"), callback_id="cb-0", queue="support")
    assert line.waiting("sales", T0) == (), "never refreshed: nothing is kept back"
    line.replace([later, elsewhere, earlier], now=T0)
    assert [c for _, c in line.waiting("sales", T0)] == ["cb-1", "cb-2"]
    assert [c for _, c in line.waiting("support", T0)] == ["cb-0"]
    assert line.ids(T0) == frozenset({"cb-0", "cb-1", "cb-2"})

    line.remove("cb-1")  # being dialled
    assert [c for _, c in line.waiting("sales", T0)] == ["cb-2"]
    line.add(KeptPlace(key=(T0 - timedelta(minutes=2), "c3"), callback_id="cb-3", queue="sales"))
    assert [c for _, c in line.waiting("sales", T0)] == ["cb-3", "cb-2"], "a new kept place at its place"

    assert line.waiting("sales", T0 + timedelta(seconds=6)) == ()
    assert line.ids(T0 + timedelta(seconds=6)) is None
    line.replace([later], now=T0 + timedelta(seconds=6))
    assert [c for _, c in line.waiting("sales", T0 + timedelta(seconds=6))] == ["cb-2"]
    line.clear()
    assert line.waiting("sales", T0 + timedelta(seconds=6)) == ()


def test_the_dispatcher_is_told_when_an_agent_is_kept_back() -> None:
    line = CallbackLine()
    told: list[tuple[str, str]] = []
    line.listen(lambda queue, agent: told.append((queue, agent)))
    line.reserve("sales", "alice")
    assert told == [("sales", "alice")]
