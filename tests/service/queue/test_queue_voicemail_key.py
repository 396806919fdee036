"""A waiting caller who presses the voicemail key, over the queue's typed fakes (issue 8).

``QueueService.choose_voicemail``: the caller leaves the line, an agent ringing for them is released,
the voicemail taker gets the holding bridge to take them out of; the outcome is ``voicemail`` once the
recording starts and an abandon when they hang up before the beep.
"""

from __future__ import annotations

from callcenter.model.vocabulary import CallOutcome
from callcenter.queue.detection import VoicemailRecorded
from callcenter.queue.ports import VoicemailRequest
from tests.service.queue.conftest import CALLER, Harness, MakeHarness, agent


class RecordingTaker:
    """A voicemail taker that records what it was handed."""

    def __init__(self) -> None:
        self.requests: list[VoicemailRequest] = []

    def start(self, request: VoicemailRequest) -> bool:
        self.requests.append(request)
        return True


async def _waiting(make_harness: MakeHarness) -> tuple[Harness, RecordingTaker]:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    taker = RecordingTaker()
    h.service.use_voicemail(taker)
    return h, taker


async def test_a_waiting_caller_who_chooses_voicemail_leaves_the_line_and_the_agent_ringing_is_released(
    make_harness: MakeHarness,
) -> None:
    h, taker = await _waiting(make_harness)
    await h.arrive()
    leg = h.leg("alice")  # alice is being rung for the caller
    await h.later(20)

    assert await h.service.choose_voicemail("c1")
    await h.service.flush()

    [request] = taker.requests
    assert (request.call_id, request.channel_id, request.queue, request.caller) == (
        "c1",
        "c1",
        "sales",
        CALLER,
    )
    assert request.reason == "caller_chose" and request.holding_bridge_id == "bridge-1"
    assert (leg,) in h.control.of("hangup"), "the agent ringing for them is released"
    assert (await h.service.live("sales")).view.waiting == ()

    await h.service.handle(VoicemailRecorded(call_id="c1", at=h.clock.now()))
    await h.later(30)
    await h.caller_hangs_up()
    [ended] = h.ended()
    assert (ended.outcome, ended.wait_s) == (CallOutcome.VOICEMAIL, 20.0)


async def test_a_caller_who_hangs_up_before_the_beep_abandoned(make_harness: MakeHarness) -> None:
    h, _ = await _waiting(make_harness)
    await h.service.pause("alice", actor="test")
    await h.arrive()
    await h.later(30)
    assert await h.service.choose_voicemail("c1")
    await h.caller_hangs_up()
    [ended] = h.ended()
    assert ended.outcome is CallOutcome.ABANDONED


async def test_no_voicemail_for_a_caller_already_answered_or_where_no_taker_runs(
    make_harness: MakeHarness,
) -> None:
    h, taker = await _waiting(make_harness)
    await h.arrive()
    await h.agent_answers("alice")
    assert not await h.service.choose_voicemail("c1")
    assert taker.requests == []

    bare = await make_harness(agents=[agent("bob")], logged_in=[])
    await bare.arrive("c2")
    assert not await bare.service.choose_voicemail("c2")
