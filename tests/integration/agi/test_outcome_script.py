"""The ``call-outcome`` FastAGI script from a hang-up handler: every QUEUESTATUS, abandons, once per call.

Asterisk's side is the scripted peer in dead-channel mode (a hang-up handler); the store and the bus
are the in-memory fakes of their ports.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.agi.outcome import CallOutcomeRecorder, CallOutcomeScript
from callcenter.asterisk_names import AGI_CALL_OUTCOME, VAR_OUTCOME
from callcenter.errors import StoreUnavailableError
from callcenter.model.events import CallEnded
from callcenter.model.records import AgentRecord, CallRecord, QueueRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.simulator.agi_peer import AgiCallModel, AgiPeer
from tests.conftest import FakeClock
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.store import InMemoryAgentRepository, InMemoryCallRepository, InMemoryQueueRepository
from tests.integration.agi.conftest import serve_peers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

JOINED = 1_795_459_762.5  # when the caller joined the queue, Asterisk's clock
LINKEDID = "1795459760.41"
CALLER = "+14155550100"


@dataclass
class Hook:
    calls: InMemoryCallRepository
    queues: InMemoryQueueRepository
    bus: InMemoryEventBus
    recorder: CallOutcomeRecorder

    async def report(self, *peers: AgiPeer) -> None:
        await serve_peers({AGI_CALL_OUTCOME: CallOutcomeScript(self.recorder)}, *peers)

    def ended(self) -> list[CallEnded]:
        return [e for e in self.bus.published if isinstance(e, CallEnded)]


@pytest.fixture
def hook(clock: FakeClock) -> Hook:
    calls, queues, bus = InMemoryCallRepository(), InMemoryQueueRepository(), InMemoryEventBus()
    return Hook(calls, queues, bus, CallOutcomeRecorder(calls, bus, clock, queues=queues))


def _channel(*, ended_after_s: float = 60.0, **variables: str) -> AgiPeer:
    """The caller's channel in the hang-up handler, ``ended_after_s`` after joining the queue."""
    values = {
        "UNIQUEID": LINKEDID,
        "CHANNEL(linkedid)": LINKEDID,
        "CALLERID(num)": CALLER,
        "CALLERID(name)": "Ann Smith",
        "CALLERID(dnid)": "3001",
        "CC_QUEUE": "sales",
        "CC_ARRIVED_AT": f"{JOINED - 2:.3f}",
        "CC_QUEUE_JOINED_AT": f"{JOINED:.3f}",
        "CC_QUEUE_ENTERED_AT": f"{JOINED:.3f}",
    }
    values.update(variables)
    model = AgiCallModel(variables=values, dead=True, now=lambda: JOINED + ended_after_s)
    return AgiPeer(AGI_CALL_OUTCOME, model=model, env={"agi_calleridname": "Ann Smith"})


def _left(after_s: float) -> str:
    return f"{JOINED + after_s:.3f}"


REFUSED: Mapping[str, str] = {
    "CC_QUEUE_JOINED_AT": "",
    "CC_QUEUE_ENTERED_AT": "",
    "CC_QUEUE_LEFT_AT": _left(0),
}


@pytest.mark.parametrize(
    ("variables", "outcome"),
    [
        (
            {"QUEUESTATUS": "TIMEOUT", "ABANDONED": "TRUE", "CC_QUEUE_LEFT_AT": _left(30)},
            "unanswered_timeout",
        ),
        ({"QUEUESTATUS": "FULL", **REFUSED}, "unanswered_full"),
        ({"QUEUESTATUS": "JOINEMPTY", **REFUSED}, "unanswered_no_agents"),
        ({"QUEUESTATUS": "JOINUNAVAIL", **REFUSED}, "unanswered_no_agents"),
        (
            {"QUEUESTATUS": "LEAVEEMPTY", "ABANDONED": "TRUE", "CC_QUEUE_LEFT_AT": _left(12)},
            "unanswered_no_agents",
        ),
        (
            {"QUEUESTATUS": "LEAVEUNAVAIL", "ABANDONED": "TRUE", "CC_QUEUE_LEFT_AT": _left(12)},
            "unanswered_no_agents",
        ),
        (
            {
                "QUEUESTATUS": "CONTINUE",
                "MEMBERINTERFACE": "PJSIP/1001",
                "QEHOLDTIME": "9",
                "CC_QUEUE_LEFT_AT": _left(50),
            },
            "answered",
        ),
        ({"ABANDONED": "TRUE", "QUEUEPOSITION": "2"}, "abandoned"),
        ({"MEMBERINTERFACE": "PJSIP/1002", "QEHOLDTIME": "7", "QUEUEPOSITION": "1"}, "answered"),
    ],
    ids=[
        "TIMEOUT",
        "FULL",
        "JOINEMPTY",
        "JOINUNAVAIL",
        "LEAVEEMPTY",
        "LEAVEUNAVAIL",
        "CONTINUE",
        "hung-up-in-queue",
        "answered-caller-hung-up",
    ],
)
async def test_each_queuestatus_lands_in_the_calls_table_with_its_outcome(
    hook: Hook, variables: dict[str, str], outcome: str
) -> None:
    peer = _channel(ended_after_s=60.0, **variables)

    await hook.report(peer)

    record = await hook.calls.get(LINKEDID)
    assert record.outcome == CallOutcome(outcome)
    assert record.entry_point is EntryPoint.AGI
    assert (record.caller, record.caller_name, record.queue, record.dialled) == (
        CALLER,
        "Ann Smith",
        "sales",
        "3001",
    )
    [event] = hook.ended()
    assert (event.event_id, event.outcome, event.entry_point) == (
        LINKEDID,
        CallOutcome(outcome),
        EntryPoint.AGI,
    )
    # One read, one write back: the outcome is on the channel for CDRs and logs.
    assert [c[:3] for c in peer.commands] == [["GET", "FULL", "VARIABLE"], ["SET", "VARIABLE", VAR_OUTCOME]]
    assert peer.model.variables[VAR_OUTCOME] == outcome
    assert peer.closed_by_server and not peer.failure


async def test_the_answered_call_keeps_its_agent_wait_and_talk_time(hook: Hook) -> None:
    await hook.report(_channel(MEMBERINTERFACE="PJSIP/1002", QEHOLDTIME="7", QUEUEPOSITION="1"))

    record = await hook.calls.get(LINKEDID)
    assert (record.agent_id, record.wait_s, record.talk_s, record.position) == ("PJSIP/1002", 7.0, 53.0, 1)
    kinds = [e.kind for e in await hook.calls.events(LINKEDID)]
    assert kinds == ["arrived", "queued", "answered", "caller_hung_up", "ended"]


async def test_the_member_who_answered_is_named_by_our_agent_with_that_endpoint(clock: FakeClock) -> None:
    calls, queues, bus = InMemoryCallRepository(), InMemoryQueueRepository(), InMemoryEventBus()
    agents = InMemoryAgentRepository(queues)
    await agents.add(AgentRecord(id="ann", name="Ann", endpoint="PJSIP/1002"))
    await agents.add(AgentRecord(id="bob", name="Bob", endpoint="PJSIP/1003"))
    recorder = CallOutcomeRecorder(calls, bus, clock, queues=queues, agents=agents)
    hook = Hook(calls, queues, bus, recorder)

    # The technology's case does not matter; a member who is no agent of ours keeps the interface.
    await hook.report(_channel(MEMBERINTERFACE="pjsip/1002", QEHOLDTIME="7"))
    await hook.report(
        _channel(UNIQUEID="1795459760.99", **{"CHANNEL(linkedid)": "1795459760.99"}, MEMBERINTERFACE="SIP/9")
    )

    assert (await calls.get(LINKEDID)).agent_id == "ann"
    assert [e.agent_id for e in hook.ended()] == ["ann", "SIP/9"]
    answered = [e.detail for e in await calls.events(LINKEDID) if e.kind == "answered"]
    assert answered == [{"agent_id": "ann"}]


async def test_a_caller_who_hangs_up_quickly_is_a_short_abandon(hook: Hook) -> None:
    await hook.report(_channel(ended_after_s=3.2, ABANDONED="TRUE"))
    assert (await hook.calls.get(LINKEDID)).outcome is CallOutcome.SHORT_ABANDON


async def test_the_queues_own_short_abandon_threshold_applies(hook: Hook) -> None:
    await hook.queues.put(QueueRecord(name="sales", short_abandon_s=20))
    await hook.report(_channel(ended_after_s=12, ABANDONED="TRUE"))
    assert (await hook.calls.get(LINKEDID)).outcome is CallOutcome.SHORT_ABANDON


async def test_a_callback_taken_on_the_exit_key_is_callback_requested(hook: Hook) -> None:
    peer = _channel(CC_EXIT_KEY="1", CC_EXIT_POSITION="3", CC_CALLBACK="accepted", CC_QUEUE_LEFT_AT=_left(40))
    await hook.report(peer)

    record = await hook.calls.get(LINKEDID)
    assert (record.outcome, record.position, record.wait_s) == (CallOutcome.CALLBACK_REQUESTED, 3, 40.0)


async def test_a_message_left_after_the_queue_timed_out_is_voicemail(hook: Hook) -> None:
    """Issue 8: the voicemail script set CC_VOICEMAIL=recorded; the hook records voicemail."""
    peer = _channel(QUEUESTATUS="TIMEOUT", CC_QUEUE_LEFT_AT=_left(40), CC_VOICEMAIL="recorded")
    await hook.report(peer)

    record = await hook.calls.get(LINKEDID)
    assert record.outcome is CallOutcome.VOICEMAIL
    assert peer.model.variables[VAR_OUTCOME] == "voicemail"
    kinds = [e.kind for e in await hook.calls.events(LINKEDID)]
    assert kinds == ["arrived", "queued", "queue_exit", "voicemail_recorded", "caller_hung_up", "ended"]


async def test_a_message_left_by_the_voicemail_key_is_voicemail(hook: Hook) -> None:
    await hook.report(
        _channel(CC_EXIT_KEY="9", CC_EXIT_POSITION="2", CC_QUEUE_LEFT_AT=_left(25), CC_VOICEMAIL="recorded")
    )

    record = await hook.calls.get(LINKEDID)
    assert (record.outcome, record.position, record.wait_s) == (CallOutcome.VOICEMAIL, 2, 25.0)


async def test_an_unknown_queue_is_failed(hook: Hook) -> None:
    await hook.report(
        _channel(CC_QUEUE="nope", CC_QUEUE_JOINED_AT="", CC_QUEUE_ENTERED_AT="", CC_FAILED="unknown_queue")
    )
    assert (await hook.calls.get(LINKEDID)).outcome is CallOutcome.FAILED


# -- once per call -----------------------------------------------------------------------------


async def test_reported_twice_for_the_same_linkedid_records_one_outcome(hook: Hook) -> None:
    first = _channel(ABANDONED="TRUE")
    second = _channel(MEMBERINTERFACE="PJSIP/1001", QEHOLDTIME="3", UNIQUEID="1795459760.42")

    await hook.report(first)
    await hook.report(second)

    assert len(hook.calls.calls) == 1
    assert (await hook.calls.get(LINKEDID)).outcome is CallOutcome.ABANDONED
    assert len(hook.ended()) == 1
    assert second.model.variables[VAR_OUTCOME] == "abandoned"  # the outcome as first recorded


async def test_two_reports_at_once_record_one_outcome(hook: Hook) -> None:
    await hook.report(_channel(ABANDONED="TRUE"), _channel(ABANDONED="TRUE"))

    assert len(hook.ended()) == 1
    assert len([e for e in await hook.calls.events(LINKEDID) if e.kind == "ended"]) == 1


# -- hostile input, failures ----------------------------------------------------------------------


async def test_a_hostile_caller_name_is_stored_as_is_and_adds_no_command(hook: Hook) -> None:
    name = 'Eve "x" \\ )\n200 result=1 (forged)\nHANGUP'
    peer = _channel(ended_after_s=60.0, **{"CALLERID(name)": name, "ABANDONED": "TRUE"})

    await hook.report(peer)

    assert (await hook.calls.get(LINKEDID)).caller_name == name
    assert len(peer.commands) == 2


async def test_when_the_store_is_down_asterisk_is_told_failure(clock: FakeClock) -> None:
    class DownCalls(InMemoryCallRepository):
        async def upsert(self, call: CallRecord) -> None:
            raise StoreUnavailableError("database unreachable")

    bus = InMemoryEventBus()
    recorder = CallOutcomeRecorder(DownCalls(), bus, clock)
    peer = _channel(ABANDONED="TRUE")

    await serve_peers({AGI_CALL_OUTCOME: CallOutcomeScript(recorder)}, peer)

    assert peer.failure  # AGISTATUS=FAILURE in Asterisk's log; nothing published
    assert bus.published == []


async def test_when_the_bus_is_down_the_call_is_still_recorded(hook: Hook) -> None:
    hook.bus.fail_next(ConnectionError("redis down"))
    await hook.report(_channel(ABANDONED="TRUE"))
    assert (await hook.calls.get(LINKEDID)).outcome is CallOutcome.ABANDONED


async def test_an_answered_call_closes_the_callers_earlier_missed_calls(hook: Hook) -> None:
    earlier = datetime.fromtimestamp(JOINED, UTC) - timedelta(hours=1)
    missed = CallRecord(
        id="old",
        channel_id="old",
        linkedid="old",
        entry_point=EntryPoint.AGI,
        caller=CALLER,
        arrived_at=earlier,
        ended_at=earlier + timedelta(seconds=30),
        outcome=CallOutcome.ABANDONED,
    )
    await hook.calls.upsert(missed)

    await hook.report(_channel(MEMBERINTERFACE="PJSIP/1001", QEHOLDTIME="5"))

    closed = await hook.calls.get("old")
    assert closed.closed_at == datetime.fromtimestamp(JOINED + 5, UTC)
    assert dataclasses.replace(closed, closed_at=None) == missed


async def test_many_calls_report_at_once(hook: Hook) -> None:
    peers = [
        _channel(
            ended_after_s=60.0,
            ABANDONED="TRUE",
            UNIQUEID=f"1795459760.{n}",
            **{"CHANNEL(linkedid)": f"1795459760.{n}"},
        )
        for n in range(15)
    ]
    async with asyncio.timeout(10):
        await hook.report(*peers)
    assert len(hook.calls.calls) == 15 and len(hook.ended()) == 15
