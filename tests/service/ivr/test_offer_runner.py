"""The offer runner beside the real queue service: a flow per waiting caller, started when they join
the line (or adopted after a restart), stopped when they leave it; a callback taken ends the call
``callback_requested``."""

from __future__ import annotations

from datetime import timedelta

from callcenter.ari.offers import AriCallbackOffers
from callcenter.callbacks.service import CallbackService
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import CallbackKind, CallOutcome
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.callbacks import FlatDayPlanner, InMemoryCallbackRepository
from tests.fakes.voice import ScriptedVoiceChannel
from tests.service.ivr.conftest import FakeEstimator
from tests.service.queue.conftest import Harness, MakeHarness, agent
from tests.waiting import eventually

QUEUE = QueueRecord(name="sales", max_wait_s=300)


class Channels:
    """Opens the scripted channel of each call id; unknown ids get a silent, holding one."""

    def __init__(self, **scripts: ScriptedVoiceChannel) -> None:
        self.scripts = scripts
        self.opened: list[str] = []

    def __call__(self, channel_id: str) -> ScriptedVoiceChannel:
        self.opened.append(channel_id)
        return self.scripts.setdefault(channel_id, ScriptedVoiceChannel(hold=True))


async def _setup(
    make_harness: MakeHarness, channels: Channels
) -> tuple[Harness, AriCallbackOffers, InMemoryCallbackRepository]:
    harness = await make_harness(queues=(QUEUE,), agents=(agent("a1"),), logged_in=("a1",))
    repo = InMemoryCallbackRepository()
    desk = CallbackService(
        repo,
        FlatDayPlanner(harness.store.queues),
        harness.store.queues,
        InMemoryEventBus(),
        harness.clock,
        estimates=FakeEstimator(),
    )
    offers = AriCallbackOffers(channels, harness.service, desk, harness.store.queues, every_s=60.0)
    return harness, offers, repo


async def _busy_agent(harness: Harness) -> None:
    await harness.arrive("c0", caller="+14155550111")
    await harness.agent_answers("a1", "c0")


async def test_given_caller_joins_when_they_keep_their_place_then_the_call_ends_callback_requested(
    make_harness: MakeHarness,
) -> None:
    channels = Channels(c1=ScriptedVoiceChannel(["1", "1"]))
    harness, offers, repo = await _setup(make_harness, channels)
    await _busy_agent(harness)
    harness.service.add_step_hook(offers.on_step)
    await harness.arrive("c1")
    await eventually(lambda: "c1" not in offers.running, what="the flow of c1 done")
    assert channels.scripts["c1"].closed and "confirm-by" in channels.scripts["c1"].sounds()
    (callback,) = repo.callbacks.values()
    assert callback.kind is CallbackKind.KEEP_PLACE and callback.call_id == "c1"
    assert callback.enqueued_at == harness.call("c1").queued_at
    assert any(c.name == "hangup" and "c1" in c.args for c in harness.control.commands)
    await harness.caller_hangs_up("c1")
    assert harness.outcome("c1") is CallOutcome.CALLBACK_REQUESTED
    assert "callback_accepted" in await harness.timeline("c1")


async def test_the_flow_stops_when_the_caller_is_answered_or_hangs_up(make_harness: MakeHarness) -> None:
    channels = Channels()
    harness, offers, _ = await _setup(make_harness, channels)
    await _busy_agent(harness)
    harness.service.add_step_hook(offers.on_step)
    await harness.arrive("c1")
    await harness.arrive("c2")
    await eventually(lambda: {"c1", "c2"} <= offers.running, what="two flows")
    await harness.caller_hangs_up("c2")
    await eventually(lambda: "c2" not in offers.running, what="c2's flow stopped")
    await harness.agent_hangs_up("a1", "c0")
    harness.clock.advance(15)
    await harness.service.tick()
    await harness.agent_answers("a1", "c1")
    await eventually(lambda: not offers.running, what="c1's flow stopped")
    assert harness.outcome("c2") in (CallOutcome.ABANDONED, CallOutcome.SHORT_ABANDON)
    await offers.close()


async def test_callers_restored_after_a_restart_are_adopted_once(make_harness: MakeHarness) -> None:
    channels = Channels()
    harness, offers, _ = await _setup(make_harness, channels)
    await _busy_agent(harness)
    await harness.arrive("c1")  # queued before this runner existed (another process, say)
    harness.clock.advance(timedelta(seconds=5).total_seconds())
    assert await offers.adopt(harness.service) == 1
    assert await offers.adopt(harness.service) == 0  # already running
    await eventually(lambda: channels.opened == ["c1"], what="c1's channel opened")
    await offers.close()
    assert not offers.running
