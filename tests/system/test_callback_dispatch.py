"""The callback dispatcher end to end against the simulated Asterisk 20: agent first, whisper, the
customer dialled with the queue's business number, "press 1" confirmation, retries, busy, machine,
the next agent, do-not-call, quiet hours, expiry, late-promise alerts and cancel by API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import pytest

from callcenter.api.stats import render_wallboard
from callcenter.callbacks.attempts import customer_channel_id
from callcenter.callbacks.sources import SourcedRequest
from callcenter.model.callbacks import Actor
from callcenter.model.events import CallbackAttemptEnded, CallbackPromiseAtRisk, DomainEvent, decode_event
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import ActorKind, AgentState, AttemptResult, CallbackState, Role
from callcenter.simulator import SimulatedAsterisk
from callcenter.simulator.pbx import ChannelState, EndpointBehaviour, EndpointConfig, PbxChange
from callcenter.wiring.dispatch import DispatchRuntime
from tests.system.conftest import QUEUE, Apps, RunningApp, eventually

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]

CUSTOMER: Final = "+14155550100"
CUSTOMER_ENDPOINT: Final = f"PJSIP/{CUSTOMER}@trunk"
BUSINESS: Final = "+14155550199"
S = CallbackState

#: Short timings: rings, confirmation and retries take a second or two.
FAST: Final = {
    "dispatch_poll_s": "0.1",
    "dispatch_confirm_s": "1.5",
    "dispatch_agent_ring_s": "2",
    "dispatch_customer_ring_s": "2",
    "dispatch_retry_s": "0.5",
    "dispatch_retry_factor": "1",
    "dispatch_dial_from": "00:00",
    "dispatch_dial_until": "23:59",
    "dispatch_whisper": "false",
    "dispatch_customer_endpoint": "PJSIP/{number}@trunk",
    "dispatch_personal_s": "0",  # follow-ups are the queue's at once (any agent may call)
    "dispatch_disposition_wait_s": "0.3",
}


async def _start(apps: Apps, sim: SimulatedAsterisk, **overrides: str) -> RunningApp:
    running = await apps.start(**{**FAST, **overrides})
    await running.put_queue(QueueRecord(name=QUEUE, ring_timeout_s=2, wrap_up_s=1, business_number=BUSINESS))
    sim.set_sound("callback-confirm", 0.3)
    sim.set_sound("minutes", 0.5)
    dispatch = _dispatch(running)
    assert dispatch.link is not None
    await dispatch.link.wait_up(10.0)
    return running


def _dispatch(running: RunningApp) -> DispatchRuntime:
    assert running.services.dispatch is not None
    return running.services.dispatch


async def _follow_up(running: RunningApp, number: str = CUSTOMER) -> SourcedRequest:
    """A callback due now (an agent's follow-up at this moment)."""
    sources = _dispatch(running).sources
    return await sources.follow_up("boss", QUEUE, number, at=running.services.clock.now(), note="quote")


def _originates(sim: SimulatedAsterisk, endpoint: str | None = None) -> list[dict[str, str]]:
    return [
        r.query
        for r in sim.requests
        if r.method == "POST"
        and r.path.rstrip("/") == "/ari/channels"
        and (endpoint is None or r.query.get("endpoint") == endpoint)
    ]


async def _state(
    running: RunningApp, callback_id: str, *states: CallbackState, timeout_s: float = 15.0
) -> Any:
    store = _dispatch(running).store

    async def reached() -> bool:
        return (await store.get(callback_id)).state in states

    await eventually(reached, timeout_s=timeout_s, what=f"callback {callback_id} in {states}")
    return await store.get(callback_id)


async def _press_when_answered(sim: SimulatedAsterisk, channel_id: str, digit: str = "1") -> None:
    def answered() -> bool:
        channel = sim.channels.get(channel_id)
        return channel is not None and channel.state is ChannelState.UP and channel.app is not None

    await eventually(answered, timeout_s=10.0, what=f"{channel_id} answered")
    # The prompt is playing; a digit pressed during it counts.
    sim.press(channel_id, digit)


async def _events(running: RunningApp, kind: type[DomainEvent]) -> list[Any]:
    rows = await running.services.redis.xrange(running.keys.events) or []
    events = [decode_event(fields[b"event"]) for _, fields in rows if fields is not None]
    return [e for e in events if isinstance(e, kind)]


async def _agent(running: RunningApp, sim: SimulatedAsterisk, agent_id: str, **config: Any) -> str:
    endpoint = await running.add_agent(agent_id)
    sim.set_endpoint(endpoint, **{"answer_after_s": 0.2, **config})
    return endpoint


async def test_agent_first_success_presents_the_business_number_and_completes_after_the_call(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    running = await _start(apps, sim, dispatch_whisper="true")
    alice = await _agent(running, sim, "alice")
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.3)
    callback = (await _follow_up(running)).callback

    attempt_id = f"{callback.id}.a1"
    await _press_when_answered(sim, customer_channel_id(attempt_id))
    connected = await _state(running, callback.id, S.CONNECTED)
    assert connected.attempts == 1 and connected.first_dial_at is not None
    assert await running.agent_state("alice") is AgentState.PAUSED, "the agent is on the callback"

    agent_dial, customer_dial = _originates(sim)
    assert agent_dial["endpoint"] == alice and customer_dial["endpoint"] == CUSTOMER_ENDPOINT
    assert BUSINESS in customer_dial["callerId"], "the queue's business number is presented"
    assert customer_dial["channelId"] == customer_channel_id(attempt_id)
    agent_channel = agent_dial["channelId"]
    heard = [media for media, _ in sim.heard(agent_channel)]
    assert any("digits:0100" in m for m in heard), f"the agent heard who it is: {heard}"

    sim.hangup(customer_channel_id(attempt_id))
    done = await _state(running, callback.id, S.COMPLETED)
    assert done.state is S.COMPLETED
    await running.wait_agent("alice", AgentState.AVAILABLE)
    [attempt] = await _dispatch(running).store.attempts(callback.id)
    assert (attempt.result, attempt.agent_id) == (AttemptResult.CONNECTED, "alice")
    changes = await _dispatch(running).store.changes(callback.id)
    assert [c.state for c in changes] == [S.REQUESTED, S.SCHEDULED, S.DIALING, S.CONNECTED, S.COMPLETED]
    assert all(c.actor.name for c in changes), "every change names who caused it"


async def test_a_customer_pressing_1_during_the_confirmation_stops_it_before_the_bridge(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    """A real Asterisk 20 adds a channel to a bridge only once its playback ends (``addChannel``
    answers then; tests/real_asterisk/test_callbacks.py): the confirmation is stopped on the key."""
    running = await _start(apps, sim)
    sim.set_sound("callback-confirm", 30.0)
    await _agent(running, sim, "alice")
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    callback = (await _follow_up(running)).callback
    customer = customer_channel_id(f"{callback.id}.a1")
    await _press_when_answered(sim, customer)
    await _state(running, callback.id, S.CONNECTED)
    assert ("sound:callback-confirm", "stopped") in sim.heard(customer), sim.heard(customer)
    stopped = [r for r in sim.requests if r.method == "DELETE" and r.path.startswith("/ari/playbacks/")]
    assert stopped, "the confirmation was stopped over ARI"


async def test_customer_no_answer_then_retry_then_success(apps: Apps, sim: SimulatedAsterisk) -> None:
    running = await _start(apps, sim)
    await _agent(running, sim, "alice")
    sim.set_endpoint(CUSTOMER_ENDPOINT, behaviour=EndpointBehaviour.NO_ANSWER)
    callback = (await _follow_up(running)).callback
    waiting = await _state(running, callback.id, S.RETRY_WAIT)
    assert waiting.last_result is AttemptResult.NO_ANSWER

    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    await _press_when_answered(sim, customer_channel_id(f"{callback.id}.a2"))
    await _state(running, callback.id, S.CONNECTED)
    attempts = await _dispatch(running).store.attempts(callback.id)
    assert [a.result for a in attempts] == [AttemptResult.NO_ANSWER, AttemptResult.CONNECTED]
    ended = [e for e in await _events(running, CallbackAttemptEnded) if e.callback_id == callback.id]
    assert [e.result for e in ended] == [AttemptResult.NO_ANSWER, AttemptResult.CONNECTED]


async def test_no_key_pressed_is_machine_never_completed(apps: Apps, sim: SimulatedAsterisk) -> None:
    running = await _start(apps, sim, dispatch_max_attempts="1")
    await _agent(running, sim, "alice")
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    callback = (await _follow_up(running)).callback
    failed = await _state(running, callback.id, S.FAILED)
    assert failed.last_result is AttemptResult.MACHINE
    [attempt] = await _dispatch(running).store.attempts(callback.id)
    assert "no key" in attempt.cause
    await running.wait_agent("alice", AgentState.AVAILABLE)


async def test_busy_is_retried_then_fails_after_the_last_attempt(apps: Apps, sim: SimulatedAsterisk) -> None:
    running = await _start(apps, sim, dispatch_max_attempts="2")
    await _agent(running, sim, "alice")
    sim.set_endpoint(CUSTOMER_ENDPOINT, behaviour=EndpointBehaviour.BUSY)
    callback = (await _follow_up(running)).callback
    failed = await _state(running, callback.id, S.FAILED)
    attempts = await _dispatch(running).store.attempts(callback.id)
    assert [a.result for a in attempts] == [AttemptResult.BUSY, AttemptResult.BUSY]
    assert failed.last_result is AttemptResult.BUSY
    assert len(_originates(sim, CUSTOMER_ENDPOINT)) == 2


async def test_an_agent_who_does_not_answer_is_followed_by_the_next(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    running = await _start(apps, sim)
    await _agent(running, sim, "alice", behaviour=EndpointBehaviour.NO_ANSWER)
    bob = await _agent(running, sim, "bob")
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    callback = (await _follow_up(running)).callback
    await _press_when_answered(sim, customer_channel_id(f"{callback.id}.a1"))
    await _state(running, callback.id, S.CONNECTED)
    [attempt] = await _dispatch(running).store.attempts(callback.id)
    assert (attempt.agent_id, attempt.agent_tries) == ("bob", 2)
    assert [q["endpoint"] for q in _originates(sim)][-2:] == [bob, CUSTOMER_ENDPOINT]
    await running.wait_agent("alice", AgentState.AVAILABLE)


async def test_a_number_on_the_do_not_call_list_is_never_dialled(apps: Apps, sim: SimulatedAsterisk) -> None:
    running = await _start(apps, sim)
    store = _dispatch(running).store
    await store.block_number(CUSTOMER, by="test", reason="asked", at=running.services.clock.now())
    await _agent(running, sim, "alice")
    callback = (await _follow_up(running)).callback
    cancelled = await _state(running, callback.id, S.CANCELLED)
    assert cancelled.attempts == 0
    assert "do-not-call" in (await store.changes(callback.id))[-1].reason
    assert _originates(sim, CUSTOMER_ENDPOINT) == []


async def test_quiet_hours_defer_the_dial(apps: Apps, sim: SimulatedAsterisk) -> None:
    running = await _start(apps, sim)
    now = running.services.clock.now()
    # A dialling window that excludes the customer's present local hour (San Francisco).
    local = now.astimezone(ZoneInfo("America/Los_Angeles"))
    start = (local + timedelta(hours=2)).strftime("%H:00")
    end = (local + timedelta(hours=3)).strftime("%H:00")
    if end <= start:
        pytest.skip("the window would cross midnight at this hour")
    await running.stop()
    running = await _start(apps, sim, dispatch_dial_from=start, dispatch_dial_until=end)
    await _agent(running, sim, "alice")
    callback = (await _follow_up(running)).callback
    assert await _dispatch(running).dispatcher.tick() == 0
    assert (await _dispatch(running).store.get(callback.id)).state is S.SCHEDULED
    assert _originates(sim) == []


async def test_expiry_and_the_late_promise_alert(apps: Apps, sim: SimulatedAsterisk) -> None:
    # No agent: nothing can be dialled, so the promise is at risk, then the callback expires. The
    # once-a-second sweep alerts first; a callback already expired when first swept is expired only
    # (its customer must not be texted a new time just before it is dropped), so the expiry comes
    # a few sweeps after the request, even on a busy machine.
    running = await _start(apps, sim, dispatch_expire_after_s="4", dispatch_late_alert_s="7200")
    callback = (await _follow_up(running)).callback

    async def alerted() -> bool:
        return any(e.callback_id == callback.id for e in await _events(running, CallbackPromiseAtRisk))

    await eventually(alerted, timeout_s=10.0, what="the late-promise alert")
    [alert] = [e for e in await _events(running, CallbackPromiseAtRisk) if e.callback_id == callback.id]
    assert alert.expected_by is None, "no agent staffed: no expected dial time is made up"
    expired = await _state(running, callback.id, S.EXPIRED)
    assert expired.attempts == 0
    assert (await _dispatch(running).store.changes(callback.id))[-1].actor.name == "expiry"


async def test_a_late_promise_alert_says_when_the_callback_is_now_expected(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    """Issue #7: an agent is free and the queue's handle time known, but the customer's quiet hours
    hold the dial: the alert expects it when they end (not the promise plus a fixed slip)."""
    local = datetime.now(UTC).astimezone(ZoneInfo("America/Los_Angeles"))
    opens = (local + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    closes = opens + timedelta(hours=1)
    if closes.date() != local.date() or opens.date() != local.date():
        pytest.skip("the window would cross midnight at this hour")
    running = await _start(
        apps,
        sim,
        dispatch_dial_from=opens.strftime("%H:%M"),
        dispatch_dial_until=closes.strftime("%H:%M"),
        dispatch_late_alert_s="7200",
    )
    await running.answered_history()
    await _agent(running, sim, "alice")
    callback = (await _follow_up(running)).callback

    async def alerted() -> bool:
        return any(e.callback_id == callback.id for e in await _events(running, CallbackPromiseAtRisk))

    await eventually(alerted, timeout_s=10.0, what="the late-promise alert")
    [alert] = [e for e in await _events(running, CallbackPromiseAtRisk) if e.callback_id == callback.id]
    assert alert.expected_by == opens.astimezone(UTC), "dialled when the customer's quiet hours end"
    assert _originates(sim) == []

    # The supervisors' wallboard lists it, with the same expected time.
    stats = running.services.stats
    assert stats is not None

    async def listed() -> list[dict[str, Any]]:
        board = json.loads(render_wallboard(stats))
        return [r for r in board["at_risk"] if r["callback_id"] == callback.id]

    async def listed_with_expected_time() -> bool:
        # The board lists the promise by its own rule as soon as it follows the callback; the
        # expected time comes with the dispatcher's alert, which its consumer may fold a moment later.
        return any(r["expected_by"] is not None for r in await listed())

    await eventually(listed_with_expected_time, timeout_s=10.0, what="the promise at risk on the wallboard")
    [row] = await listed()
    assert (row["number"], row["queue"]) == (callback.number, callback.queue)
    assert datetime.fromisoformat(row["expected_by"]) == opens.astimezone(UTC)


async def test_cancel_by_api_stops_the_dispatch(apps: Apps, sim: SimulatedAsterisk) -> None:
    running = await _start(apps, sim)
    callback = (await _follow_up(running)).callback  # no agent yet: it waits
    response = await running.http.delete(
        f"/api/v1/callbacks/{callback.id}",
        json={"reason": "customer called us"},
        headers={"Authorization": f"Bearer {running.token}"},
    )
    assert response.status == 200, await response.text()
    await _agent(running, sim, "alice")
    assert await _dispatch(running).dispatcher.tick() == 0
    assert (await _dispatch(running).store.get(callback.id)).state is S.CANCELLED
    assert _originates(sim) == []


async def test_do_not_call_list_and_attempts_by_api(apps: Apps, sim: SimulatedAsterisk) -> None:
    running = await _start(apps, sim)
    auth = {"Authorization": f"Bearer {running.token}"}
    put = await running.http.put("/api/v1/do-not-call/%2B14155550100", json={"reason": "asked"}, headers=auth)
    assert put.status == 200, await put.text()
    assert (await put.json())["number"] == CUSTOMER
    bad = await running.http.put("/api/v1/do-not-call/not-a-number", headers=auth)
    assert (bad.status, (await bad.json())["error"]) == (400, "invalid_phone_number")
    listed = await running.http.get("/api/v1/do-not-call", headers=auth)
    assert [e["number"] for e in (await listed.json())["items"]] == [CUSTOMER]
    assert (await running.http.delete(f"/api/v1/do-not-call/{CUSTOMER}", headers=auth)).status == 204
    assert (await running.http.delete(f"/api/v1/do-not-call/{CUSTOMER}", headers=auth)).status == 404

    await _agent(running, sim, "alice")
    sim.set_endpoint(CUSTOMER_ENDPOINT, behaviour=EndpointBehaviour.BUSY)
    callback = (await _follow_up(running)).callback
    await _state(running, callback.id, S.RETRY_WAIT)
    status, body = await running.get(f"/callbacks/{callback.id}/attempts")
    assert status == 200, body
    [attempt] = body["attempts"]
    assert (attempt["result"], attempt["agent_id"]) == ("busy", "alice")
    assert "cause 17" in attempt["cause"]
    assert [s["source"] for s in body["sources"]] == ["agent_follow_up"]


def _auto_confirm(sim: SimulatedAsterisk, *, talk_s: float = 0.5) -> None:
    """Every customer who answers presses 1, talks ``talk_s`` and hangs up."""
    loop = asyncio.get_running_loop()

    def safely(action: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(Exception):  # the channel may be gone already
            action(*args)

    def on_change(change: PbxChange) -> None:
        if change.kind == "answered" and change.channel_id.startswith("cbcu-"):
            loop.call_later(0.2, safely, sim.press, change.channel_id, "1")
            loop.call_later(0.2 + talk_s, safely, sim.hangup, change.channel_id)

    sim.observe(on_change)


async def test_kept_places_are_dialled_in_line_order_not_request_order(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    running = await _start(apps, sim)
    sim.set_dial_policy(lambda e: EndpointConfig(answer_after_s=0.2) if e.endswith("@trunk") else None)
    _auto_confirm(sim)
    await _agent(running, sim, "alice")
    await running.services.queue.pause("alice", actor="test", reason="not yet")
    callbacks = running.services.callbacks
    assert callbacks is not None
    now = running.services.clock.now()
    ivr = Actor(ActorKind.CUSTOMER, "ivr")
    later = await callbacks.keep_place(
        QUEUE,
        "+14152000002",
        enqueued_at=now - timedelta(minutes=2),
        by=now + timedelta(minutes=30),
        actor=ivr,
    )
    earlier = await callbacks.keep_place(
        QUEUE,
        "+14152000001",
        enqueued_at=now - timedelta(minutes=5),
        by=now + timedelta(minutes=30),
        actor=ivr,
    )
    await running.services.queue.unpause("alice", actor="test")
    await _state(running, later.callback.id, S.COMPLETED, timeout_s=30.0)
    first = await _dispatch(running).store.get(earlier.callback.id)
    second = await _dispatch(running).store.get(later.callback.id)
    assert first.state is S.COMPLETED
    assert first.first_dial_at is not None and second.first_dial_at is not None
    assert first.first_dial_at < second.first_dial_at, "the earlier place is called first"
    customers = [q["endpoint"] for q in _originates(sim) if q["endpoint"].endswith("@trunk")]
    assert customers == ["PJSIP/+14152000001@trunk", "PJSIP/+14152000002@trunk"]


async def test_duplicate_requests_merge_into_one_callback_dialled_once(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    running = await _start(apps, sim)
    _auto_confirm(sim)
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    sources = _dispatch(running).sources
    now = running.services.clock.now()
    first = await sources.follow_up("boss", QUEUE, CUSTOMER, at=now)
    again = await sources.from_sms_reply(
        QUEUE, "(415) 555-0100", message_id="sms-1", received_at=now, text="call me"
    )
    assert again.callback.id == first.callback.id and not again.created
    await _agent(running, sim, "alice")
    await _state(running, first.callback.id, S.COMPLETED)
    assert len(_originates(sim, CUSTOMER_ENDPOINT)) == 1
    notes = await _dispatch(running).store.sources(first.callback.id)
    assert [(n.source.value, n.merged) for n in notes] == [("agent_follow_up", False), ("sms_reply", True)]


async def test_customer_first_dials_the_customer_then_the_agent(apps: Apps, sim: SimulatedAsterisk) -> None:
    running = await _start(apps, sim, dispatch_customer_first_queues=QUEUE)
    _auto_confirm(sim, talk_s=1.5)
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    alice = await _agent(running, sim, "alice")
    callback = (await _follow_up(running)).callback
    await _state(running, callback.id, S.COMPLETED)
    assert [q["endpoint"] for q in _originates(sim)] == [CUSTOMER_ENDPOINT, alice]
    [attempt] = await _dispatch(running).store.attempts(callback.id)
    assert (attempt.result, attempt.agent_id) == (AttemptResult.CONNECTED, "alice")


async def test_an_inbound_call_answered_closes_the_open_callback(apps: Apps, sim: SimulatedAsterisk) -> None:
    running = await _start(apps, sim)
    sources = _dispatch(running).sources
    later = running.services.clock.now() + timedelta(hours=1)
    callback = (await sources.follow_up("boss", QUEUE, CUSTOMER, at=later)).callback  # not due yet
    await _agent(running, sim, "alice")
    caller = sim.incoming_call(CUSTOMER, app_args=[QUEUE])

    async def bridged() -> bool:
        return any(caller in b.channels and b.bridge_type == "mixing" for b in sim.bridges.values())

    await eventually(bridged, timeout_s=10.0, what="the inbound call answered")
    sim.hangup(caller)
    closed = await _state(running, callback.id, S.COMPLETED_INBOUND)
    assert closed.attempts == 0
    change = (await _dispatch(running).store.changes(callback.id))[-1]
    assert change.actor.name == "inbound-call" and "answered" in change.reason
    assert _originates(sim, CUSTOMER_ENDPOINT) == []


async def test_a_follow_up_waits_for_its_agent_until_the_deadline(apps: Apps, sim: SimulatedAsterisk) -> None:
    running = await _start(apps, sim, dispatch_personal_s="3")
    _auto_confirm(sim)
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    await _agent(running, sim, "alice")
    await running.add_agent("bob", login=False)  # the owner is not there
    callback = (
        await _dispatch(running).sources.follow_up("bob", QUEUE, CUSTOMER, at=running.services.clock.now())
    ).callback
    assert await _dispatch(running).dispatcher.tick() == 0, (
        "alice does not take bob's follow-up before the deadline"
    )
    done = await _state(running, callback.id, S.COMPLETED)
    assert done.first_dial_at is not None and done.first_dial_at >= callback.window.start + timedelta(
        seconds=3
    )
    [attempt] = await _dispatch(running).store.attempts(callback.id)
    assert attempt.agent_id == "alice"


async def test_worklist_claim_and_release_by_agent_token(apps: Apps, sim: SimulatedAsterisk) -> None:
    running = await _start(apps, sim)
    _auto_confirm(sim)
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    await _agent(running, sim, "alice")
    await _agent(running, sim, "bob")
    for agent in ("alice", "bob"):
        await running.services.queue.pause(agent, actor="test", reason="reading the worklist")
    tokens = {}
    for agent in ("alice", "bob"):
        _, tokens[agent] = await running.services.auth.create_token(
            role=Role.AGENT, agent_id=agent, label=agent, expires_at=None, actor="test"
        )
    callback = (await _follow_up(running)).callback

    async def call(method: str, path: str, agent: str) -> tuple[int, Any]:
        response = await running.http.request(
            method, f"/api/v1{path}", headers={"Authorization": f"Bearer {tokens[agent]}"}
        )
        return response.status, (await response.json() if response.status != 204 else None)

    status, body = await call("GET", "/worklist", "alice")
    assert status == 200, body
    [item] = body["items"]
    assert (item["callback"]["id"], item["due"], item["claim"]) == (callback.id, True, None)
    assert item["reason"].startswith("agent follow-up") and item["sources"][0]["source"] == "agent_follow_up"
    assert (await call("GET", "/worklist?agent=bob", "alice"))[0] == 403

    status, claim = await call("POST", f"/callbacks/{callback.id}/claim", "alice")
    assert (status, claim["agent_id"]) == (200, "alice")
    status, body = await call("POST", f"/callbacks/{callback.id}/claim", "bob")
    assert (status, body["error"]) == (409, "conflict"), body
    # Bob is free, but the callback is alice's while her claim holds.
    await running.services.queue.unpause("bob", actor="test")
    assert await _dispatch(running).dispatcher.tick() == 0
    await running.services.queue.unpause("alice", actor="test")
    await _state(running, callback.id, S.COMPLETED)
    [attempt] = await _dispatch(running).store.attempts(callback.id)
    assert attempt.agent_id == "alice"
    assert (await call("POST", f"/callbacks/{callback.id}/claim", "alice"))[0] == 409, (
        "closed: nothing to claim"
    )
    assert (await call("DELETE", f"/callbacks/{callback.id}/claim", "alice"))[0] == 204
    assert (await call("DELETE", f"/callbacks/{callback.id}/claim", "alice"))[0] == 404


async def test_agent_starts_a_due_callback_and_gives_dispositions(apps: Apps, sim: SimulatedAsterisk) -> None:
    running = await _start(apps, sim, dispatch_disposition_wait_s="30")
    _auto_confirm(sim, talk_s=0.5)
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    sim.set_endpoint("PJSIP/+14152000009@trunk", answer_after_s=0.2)
    await _agent(running, sim, "alice")
    await running.services.queue.pause("alice", actor="test", reason="working the list")
    _, token = await running.services.auth.create_token(
        role=Role.AGENT, agent_id="alice", label="alice", expires_at=None, actor="test"
    )
    auth = {"Authorization": f"Bearer {token}"}
    sources = _dispatch(running).sources
    now = running.services.clock.now()
    due = (await sources.follow_up("alice", QUEUE, CUSTOMER, at=now)).callback
    not_due = (await sources.follow_up("alice", QUEUE, "+14152000009", at=now + timedelta(hours=2))).callback

    early = await running.http.post(f"/api/v1/callbacks/{not_due.id}/start", headers=auth)
    assert early.status == 409 and "not due" in (await early.json())["message"]

    started = await running.http.post(f"/api/v1/callbacks/{due.id}/start", headers=auth)
    assert started.status == 202, await started.text()
    assert (await started.json())["agent_id"] == "alice"
    await _state(running, due.id, S.CONNECTED)
    too_soon = await running.http.post(
        f"/api/v1/callbacks/{not_due.id}/disposition", json={"outcome": "resolved"}, headers=auth
    )
    assert too_soon.status == 409, "only a connected callback takes a disposition"
    bad = await running.http.post(
        f"/api/v1/callbacks/{due.id}/disposition", json={"outcome": "maybe"}, headers=auth
    )
    assert bad.status == 400
    later = now + timedelta(days=1)
    done = await running.http.post(
        f"/api/v1/callbacks/{due.id}/disposition",
        json={
            "outcome": "follow_up",
            "notes": "send the quote, call back",
            "follow_up_at": later.isoformat(),
        },
        headers=auth,
    )
    assert done.status == 200, await done.text()
    body = await done.json()
    assert body["callback"]["state"] == "completed"
    assert body["follow_up"]["state"] == "scheduled" and body["follow_up"]["due_at"] == later.isoformat()
    last = (await _dispatch(running).store.changes(due.id))[-1]
    assert (last.actor.name, last.reason) == (
        "alice",
        f"follow up at {later.isoformat()}: send the quote, call back",
    )
    # She was paused, working her list: she still is (issue #7: an agent's own pause is kept).
    await _state(running, due.id, S.COMPLETED)
    assert await running.agent_state("alice") is AgentState.PAUSED


async def test_wrong_number_fails_the_callback_and_only_the_agent_on_the_call_may_say_so(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    running = await _start(apps, sim, dispatch_disposition_wait_s="30")
    _auto_confirm(sim, talk_s=0.5)
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    await _agent(running, sim, "alice")
    await running.add_agent("bob", login=False)
    tokens = {}
    for agent in ("alice", "bob"):
        _, tokens[agent] = await running.services.auth.create_token(
            role=Role.AGENT, agent_id=agent, label=agent, expires_at=None, actor="test"
        )
    callback = (await _follow_up(running)).callback
    await _state(running, callback.id, S.CONNECTED)
    body = {"outcome": "wrong_number", "notes": "a pizzeria"}
    path = f"/api/v1/callbacks/{callback.id}/disposition"
    not_on_call = await running.http.post(
        path, json=body, headers={"Authorization": f"Bearer {tokens['bob']}"}
    )
    assert not_on_call.status == 409
    said = await running.http.post(path, json=body, headers={"Authorization": f"Bearer {tokens['alice']}"})
    assert said.status == 200, await said.text()
    failed = await _dispatch(running).store.get(callback.id)
    assert failed.state is S.FAILED
    assert (await _dispatch(running).store.changes(callback.id))[-1].reason == "wrong number: a pizzeria"
