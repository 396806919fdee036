"""Domain events survive the bus unchanged, and malformed ones are refused clearly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from callcenter.errors import ValidationError
from callcenter.model.events import AgentStateChanged, CallEnded, DomainEvent, decode_event, encode_event
from callcenter.model.vocabulary import AgentState, CallOutcome, EntryPoint

AT = datetime(2026, 11, 23, 18, 47, 33, 542000, tzinfo=UTC)

EVENTS: list[DomainEvent] = [
    CallEnded(
        event_id="call-1",
        occurred_at=AT,
        call_id="call-1",
        outcome=CallOutcome.ABANDONED,
        entry_point=EntryPoint.ARI,
        queue="sales",
        caller="+14155550100",
        wait_s=31.5,
        position=2,
    ),
    CallEnded(
        event_id="call-2",
        occurred_at=AT.astimezone(timezone(timedelta(hours=1))),
        call_id="call-2",
        outcome=CallOutcome.ANSWERED,
        entry_point=EntryPoint.AGI,
        agent_id="alice",
        talk_s=120.0,
        reconciled=True,
    ),
    AgentStateChanged(
        event_id="a-1",
        occurred_at=AT,
        agent_id="alice",
        state=AgentState.WRAP_UP,
        previous=AgentState.BUSY,
        reason="call ended",
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.event_id)
def test_encoded_event_decodes_to_an_equal_value(event: DomainEvent) -> None:
    assert decode_event(encode_event(event)) == event


def test_wire_form_is_stable_json_with_type_version_and_offset_time() -> None:
    body = json.loads(encode_event(EVENTS[0]))

    assert body["type"] == "call_ended"
    assert body["v"] == 1
    assert body["occurred_at"] == "2026-11-23T18:47:33.542000+00:00"
    assert body["outcome"] == "abandoned"
    assert encode_event(EVENTS[0]) == encode_event(decode_event(encode_event(EVENTS[0])))


def test_fields_added_later_with_defaults_may_be_missing_on_the_wire() -> None:
    body = json.loads(encode_event(EVENTS[0]))
    del body["reconciled"], body["agent_id"]

    event = decode_event(json.dumps(body))

    assert isinstance(event, CallEnded)
    assert event.reconciled is False and event.agent_id is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"type": "call_started", "v": 1}', "unknown event type"),
        ('{"type": "call_ended", "v": 99}', "unsupported event version"),
        ('{"type": "call_ended", "v": 1, "event_id": "x"}', "missing field"),
    ],
)
def test_malformed_events_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        decode_event(text)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("outcome", "lost"),
        ("outcome", 3),
        ("wait_s", "ten"),
        ("position", 1.5),
        ("reconciled", "yes"),
        ("occurred_at", "2026-11-23T18:47:33"),
    ],
)
def test_bad_field_values_are_refused_naming_the_field(field: str, value: object) -> None:
    body = json.loads(encode_event(EVENTS[0]))
    body[field] = value

    with pytest.raises(ValidationError, match=f"call_ended.{field}"):
        decode_event(json.dumps(body))


def test_naive_times_cannot_be_published() -> None:
    event = AgentStateChanged(
        event_id="a",
        occurred_at=datetime(2026, 1, 1),
        agent_id="alice",
        state=AgentState.AVAILABLE,
        previous=AgentState.LOGGED_OUT,
    )

    with pytest.raises(ValueError, match="timezone-aware"):
        encode_event(event)
