"""Every frame a real Asterisk 20 sent parses into typed events; bad frames give one typed error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.ari.events import (
    KNOWN_EVENT_TYPES,
    ApplicationReplaced,
    AriEvent,
    ChannelCallerId,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    ChannelHangupRequest,
    ChannelState,
    ChannelTalkingFinished,
    ChannelVarset,
    DeviceStateChanged,
    Dial,
    DialStatus,
    HangupCauseKind,
    MalformedAriEventError,
    PlaybackContinuing,
    PlaybackFinished,
    PlaybackState,
    RecordingFailed,
    RecordingFinished,
    RecordingState,
    SoftHangupFlag,
    StasisStart,
    UnknownEvent,
    format_time,
    parse_bridge,
    parse_channel,
    parse_event,
    parse_time,
)
from callcenter.errors import CallCenterError

DATA = Path(__file__).parents[2] / "data" / "ari_events"
EVENT_FILES = sorted(p for p in DATA.glob("*.jsonl") if "rest_log" not in p.name)


def lines(name: str) -> list[str]:
    return [line for line in (DATA / name).read_text().splitlines() if line.strip()]


def events(name: str) -> list[AriEvent]:
    return [parse_event(line) for line in lines(name)]


def first(name: str, cls: type[Any], index: int = 0) -> Any:
    return [e for e in events(name) if isinstance(e, cls)][index]


def raw_event(name: str, event_type: str) -> dict[str, Any]:
    for line in lines(name):
        body = json.loads(line)
        if body["type"] == event_type:
            assert isinstance(body, dict)
            return body
    raise AssertionError(f"no {event_type} in {name}")


def test_the_captures_are_there() -> None:
    assert len(EVENT_FILES) >= 20


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: p.name)
def test_every_captured_frame_parses_with_its_key_fields(path: Path) -> None:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        body = json.loads(line)
        event = parse_event(line)
        where = f"{path.name}:{number}"
        if body["type"] not in KNOWN_EVENT_TYPES:
            assert isinstance(event, UnknownEvent), where
            assert event.raw_type == body["type"], where
            continue
        assert not isinstance(event, UnknownEvent), where
        assert event.ari_type == body["type"], where
        assert event.application == body["application"], where
        assert event.timestamp == parse_time(body["timestamp"]), where
        assert event.timestamp.tzinfo is not None, where
        assert event.asterisk_id == body.get("asterisk_id", ""), where
        channel = getattr(event, "channel", None) or getattr(event, "peer", None)
        raw_channel = body.get("channel") or body.get("peer")
        if raw_channel is not None:
            assert channel is not None, where
            assert channel.id == raw_channel["id"], where
            assert channel.name == raw_channel["name"], where
            assert channel.caller.number == raw_channel["caller"]["number"], where
            assert channel.dialplan.priority == raw_channel["dialplan"]["priority"], where
            assert channel.creationtime == parse_time(raw_channel["creationtime"]), where


def test_bytes_and_decoded_mappings_parse_like_text() -> None:
    line = lines("ari_abandon.jsonl")[0]

    assert parse_event(line.encode()) == parse_event(line) == parse_event(json.loads(line))


def test_asterisk_timestamps_become_aware_datetimes_with_milliseconds() -> None:
    event = first("ari_abandon.jsonl", StasisStart)

    assert event.timestamp == datetime(2026, 11, 23, 18, 48, 12, 786000, tzinfo=UTC)
    assert event.channel.creationtime == datetime(2026, 11, 23, 18, 48, 12, 283000, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["2026-11-23T18:47:33.542+0000", "2026-11-23T19:22:55.107+0000", "2026-11-23T20:47:33.001+0200"]
)
def test_times_format_back_exactly_as_asterisk_writes_them(text: str) -> None:
    assert format_time(parse_time(text)) == text


@pytest.mark.parametrize("text", ["2026-11-23T18:47:33.542", "yesterday", "", "2026-11-23T25:00:00+0000"])
def test_times_without_offset_or_not_times_are_refused(text: str) -> None:
    with pytest.raises(MalformedAriEventError):
        parse_time(text)


def test_stasis_start_carries_channel_snapshot_and_args() -> None:
    caller = first("ari_abandon.jsonl", StasisStart)
    agent = first("ari_agent_answer.jsonl", StasisStart, 1)
    again = first("ari_continue.jsonl", StasisStart, 1)

    assert caller.args == ()
    assert caller.channel.id == "1795459692.1"
    assert caller.channel.name == "SIP/sipp-00000001"
    assert caller.channel.state is ChannelState.UP
    assert (caller.channel.caller.name, caller.channel.caller.number) == ("sipp", "sipp")
    assert caller.channel.dialplan.exten == "100"
    assert caller.channel.dialplan.app_data == "callcenter"
    assert caller.channel.protocol_id == "1-14374@127.0.0.1"
    assert caller.channel.language == "en"
    assert agent.args == ("agent", "1795461546.38")
    assert again.args == ("again",)
    assert (again.channel.dialplan.context, again.channel.dialplan.priority) == ("lab-continue", 4)


def test_hangup_request_without_cause_is_absent_not_zero() -> None:
    """A remote BYE on chan_sip alone in a holding bridge sends neither ``cause`` nor ``soft``."""
    event = first("ari_abandon.jsonl", ChannelHangupRequest)

    assert (event.cause, event.soft) == (None, None)
    assert event.cause_kind is HangupCauseKind.ABSENT
    assert event.q850_cause is None
    assert event.soft_flags is None


def test_hangup_request_after_our_delete_carries_the_explicit_soft_flag_not_a_q850_cause() -> None:
    event = first("ari_answered_bridge.jsonl", ChannelHangupRequest)

    assert (event.cause, event.soft) == (32, True)
    assert event.cause_kind is HangupCauseKind.SOFT
    assert event.soft_flags == SoftHangupFlag.EXPLICIT
    assert event.q850_cause is None


def test_hangup_request_with_bridged_peer_carries_q850_normal_clearing() -> None:
    event = first("ari_agent_answer.jsonl", ChannelHangupRequest)

    assert (event.cause, event.soft) == (16, None)
    assert event.cause_kind is HangupCauseKind.Q850
    assert event.q850_cause == 16
    assert event.soft_flags is None


def test_hangup_request_on_core_restart_is_the_shutdown_flag() -> None:
    event = first("ws_restart_run3_events.jsonl", ChannelHangupRequest)

    assert event.soft_flags == SoftHangupFlag.SHUTDOWN
    assert event.q850_cause is None


def test_dial_carries_the_dialled_channel_under_peer_and_no_caller_for_originate() -> None:
    dials = [e for e in events("ari_agent_noanswer.jsonl") if isinstance(e, Dial)]

    assert [d.dialstatus for d in dials] == [DialStatus.PENDING, DialStatus.RINGING]
    assert all(d.caller is None for d in dials)
    assert dials[0].peer.state is ChannelState.DOWN
    assert dials[1].peer.state is ChannelState.RINGING
    assert dials[0].dialstring == "sipp-uas"
    assert dials[0].dialstatus_raw == ""


def test_dial_with_caller_under_subscribe_all() -> None:
    dial = first("combined_queue_abandon_ari_subscribeAll.jsonl", Dial)

    assert dial.caller is not None
    assert dial.peer.id != dial.caller.id


def test_agent_ring_timeout_is_only_channel_destroyed_cause_19_while_ringing() -> None:
    destroyed = first("ari_agent_noanswer.jsonl", ChannelDestroyed)

    assert (destroyed.cause, destroyed.cause_txt) == (19, "User alerting, no answer")
    assert destroyed.channel.state is ChannelState.RINGING


def test_playback_events_keep_list_items_and_failures() -> None:
    continuing = first("ari_playback.jsonl", PlaybackContinuing)
    finished = [e for e in events("ari_playback.jsonl") if isinstance(e, PlaybackFinished)]

    assert continuing.playback.state is PlaybackState.CONTINUING
    assert continuing.playback.media_uri == "sound:hello-world"
    assert continuing.playback.next_media_uri == "sound:goodbye"
    assert continuing.playback.channel_id == "1795461406.25"
    assert {f.playback.state for f in finished} == {PlaybackState.DONE, PlaybackState.FAILED}
    assert all(f.playback.next_media_uri is None for f in finished if "goodbye" in f.playback.media_uri)


def test_recording_finished_durations_are_optional_whole_seconds() -> None:
    with_silence = first("ari_rec_audio.jsonl", RecordingFinished).recording
    pound = first("ari_rec_pound.jsonl", RecordingFinished).recording

    assert (with_silence.duration_s, with_silence.talking_duration_s, with_silence.silence_duration_s) == (
        3,
        3,
        0,
    )
    assert (pound.duration_s, pound.talking_duration_s, pound.silence_duration_s) == (2, None, None)
    assert pound.state is RecordingState.DONE
    assert pound.channel_id == "1795461478.31"


def test_dtmf_varset_bridge_callerid_and_device_state_fields() -> None:
    dtmf = first("ari_dtmf_info.jsonl", ChannelDtmfReceived)
    varset = first("ari_abandon.jsonl", ChannelVarset)
    entered = first("ari_answered_bridge.jsonl", ChannelEnteredBridge)
    caller_id = first("ari_resync.jsonl", ChannelCallerId)
    device = first("combined_queue_abandon_ari_subscribeAll.jsonl", DeviceStateChanged)

    assert (dtmf.digit, dtmf.duration_ms) == ("1", 250)
    assert varset.variable == "RTPAUDIOQOS"
    assert varset.value.startswith("ssrc=")
    assert varset.channel is not None
    assert entered.bridge.bridge_type == "holding"
    assert entered.bridge.technology == "holding_bridge"
    assert entered.channel is not None
    assert entered.bridge.channels == (entered.channel.id,)
    assert (caller_id.caller_presentation, caller_id.channel.caller.name) == (0, "Resynced")
    assert (device.device_state.name, device.device_state.state) == ("Queue:support", "RINGING")
    assert device.application == "observer"


def test_rest_response_frames_are_unknown_events_not_errors() -> None:
    """Asterisk 20.20 answers client text frames with ``RESTResponse`` frames on the events socket."""
    event = parse_event(lines("ws_restart_run3_events.jsonl")[0])

    assert event == UnknownEvent(
        raw_type="RESTResponse",
        application="callcenter",
        keys=tuple(sorted(json.loads(lines("ws_restart_run3_events.jsonl")[0]))),
    )


def test_channel_and_bridge_objects_of_rest_replies_parse_for_resync() -> None:
    replies = [json.loads(line) for line in lines("ari_resync_rest_log.jsonl")]
    listed_channels = next(
        r["body"] for r in replies if r["method"] == "GET" and r["path"] == "/ari/channels"
    )
    listed_bridges = next(r["body"] for r in replies if r["method"] == "GET" and r["path"] == "/ari/bridges")

    channels = [parse_channel(c) for c in listed_channels]
    bridges = [parse_bridge(b) for b in listed_bridges]

    assert [c.id for c in channels] == [c["id"] for c in listed_channels]
    assert [b.channels for b in bridges] == [tuple(b["channels"]) for b in listed_bridges]
    assert any("1795461602.51" in b.channels for b in bridges)


# ---------------------------------------------------------------------------------------------
# Synthetic frames: optional keys, quirks, unknown values
# ---------------------------------------------------------------------------------------------


def test_global_varset_has_no_channel() -> None:
    body = raw_event("ari_continue.jsonl", "ChannelVarset")
    del body["channel"]

    event = parse_event(body)

    assert isinstance(event, ChannelVarset)
    assert event.channel is None


def test_unknown_enum_values_fold_into_unknown_and_dialstatus_keeps_the_raw_text() -> None:
    dial = raw_event("ari_agent_noanswer.jsonl", "Dial")
    dial["dialstatus"] = "SOMETHING_NEW"
    dial["peer"]["state"] = "Unknown (12)"

    event = parse_event(dial)

    assert isinstance(event, Dial)
    assert (event.dialstatus, event.dialstatus_raw) == (DialStatus.UNKNOWN, "SOMETHING_NEW")
    assert event.peer.state is ChannelState.UNKNOWN


def test_channelvars_are_readable_by_name() -> None:
    body = raw_event("ari_abandon.jsonl", "StasisStart")
    body["channel"]["channelvars"] = {"CHANNEL(linkedid)": "1795459692.0", "QUEUE": "sales"}

    event = parse_event(body)

    assert isinstance(event, StasisStart)
    assert event.channel.var("CHANNEL(linkedid)") == "1795459692.0"
    assert event.channel.var("NOPE") is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "type": "ApplicationReplaced",
                "application": "callcenter",
                "timestamp": "2026-11-23T18:47:33.542+0000",
            },
            ApplicationReplaced,
        ),
        (
            {
                "type": "RecordingFailed",
                "application": "callcenter",
                "timestamp": "2026-11-23T18:47:33.542+0000",
                "recording": {
                    "name": "vm-x",
                    "format": "wav",
                    "state": "failed",
                    "target_uri": "channel:1.2",
                    "cause": "No space",
                },
            },
            RecordingFailed,
        ),
    ],
)
def test_documented_events_not_in_the_captures_parse(body: dict[str, Any], expected: type[Any]) -> None:
    event = parse_event(body)

    assert isinstance(event, expected)
    if isinstance(event, RecordingFailed):
        assert (event.recording.state, event.recording.cause) == (RecordingState.FAILED, "No space")


def test_talking_finished_duration_is_in_milliseconds() -> None:
    body = raw_event("ari_abandon.jsonl", "StasisEnd")
    body.update(type="ChannelTalkingFinished", duration=1250)

    event = parse_event(body)

    assert isinstance(event, ChannelTalkingFinished)
    assert event.duration_ms == 1250


def test_an_unknown_type_is_a_value_naming_the_type() -> None:
    event = parse_event('{"type":"ChannelFutureThing","application":"callcenter","x":1}')

    assert event == UnknownEvent(
        raw_type="ChannelFutureThing", application="callcenter", keys=("application", "type", "x")
    )


def _without(name: str, event_type: str, *path: str) -> dict[str, Any]:
    body = raw_event(name, event_type)
    node = body
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return body


def _with(name: str, event_type: str, value: object, *path: str) -> dict[str, Any]:
    body = raw_event(name, event_type)
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("frame", "key"),
    [
        ("not json", None),
        (b"\xff\xfe\x00", None),
        ("[1, 2]", None),
        ('"StasisStart"', None),
        ("[" * 100_000, None),
        ('{"no_type": 1}', "type"),
        ('{"type": 5}', "type"),
        (_without("ari_abandon.jsonl", "StasisStart", "channel"), "channel"),
        (_without("ari_abandon.jsonl", "StasisStart", "args"), "args"),
        (_without("ari_abandon.jsonl", "StasisStart", "timestamp"), "timestamp"),
        (_without("ari_abandon.jsonl", "StasisStart", "application"), "application"),
        (
            _without("ari_abandon.jsonl", "StasisStart", "channel", "dialplan", "priority"),
            "channel.dialplan.priority",
        ),
        (_without("ari_abandon.jsonl", "StasisEnd", "channel", "caller", "number"), "channel.caller.number"),
        (
            _with("ari_abandon.jsonl", "StasisStart", "3", "channel", "dialplan", "priority"),
            "channel.dialplan.priority",
        ),
        (_with("ari_abandon.jsonl", "StasisStart", "sales", "args"), "args"),
        (_with("ari_abandon.jsonl", "StasisStart", [1], "args"), "args"),
        (_with("ari_abandon.jsonl", "StasisStart", "2026-11-23T18:48:12.786", "timestamp"), "timestamp"),
        (
            _with("ari_abandon.jsonl", "StasisStart", "soon", "channel", "creationtime"),
            "channel.creationtime",
        ),
        (_with("ari_abandon.jsonl", "StasisStart", [], "channel"), "channel"),
        (
            _with("ari_abandon.jsonl", "StasisStart", {"a": 1}, "channel", "channelvars"),
            "channel.channelvars",
        ),
        (_without("ari_agent_noanswer.jsonl", "Dial", "peer"), "peer"),
        (_without("ari_agent_noanswer.jsonl", "Dial", "dialstatus"), "dialstatus"),
        (_without("ari_agent_noanswer.jsonl", "ChannelDestroyed", "cause"), "cause"),
        (_with("ari_agent_noanswer.jsonl", "ChannelDestroyed", True, "cause"), "cause"),
        (_with("ari_answered_bridge.jsonl", "ChannelHangupRequest", "yes", "soft"), "soft"),
        (
            _without("ari_answered_bridge.jsonl", "ChannelEnteredBridge", "bridge", "channels"),
            "bridge.channels",
        ),
        (_without("ari_playback.jsonl", "PlaybackStarted", "playback", "id"), "playback.id"),
        (
            _with("ari_rec_audio.jsonl", "RecordingFinished", 3.5, "recording", "duration"),
            "recording.duration",
        ),
        (_without("ari_dtmf_info.jsonl", "ChannelDtmfReceived", "digit"), "digit"),
    ],
)
def test_malformed_frames_raise_the_typed_error_naming_the_key(frame: object, key: str | None) -> None:
    with pytest.raises(MalformedAriEventError) as caught:
        parse_event(frame)  # type: ignore[arg-type]

    assert caught.value.key == key
    assert isinstance(caught.value, CallCenterError)
    if key is not None:
        assert key in str(caught.value)


def test_the_error_names_the_event_type_when_it_was_readable() -> None:
    with pytest.raises(MalformedAriEventError) as caught:
        parse_event(_without("ari_agent_noanswer.jsonl", "Dial", "peer"))

    assert caught.value.event_type == "Dial"


# ---------------------------------------------------------------------------------------------
# Fuzzing: nothing but the typed error ever escapes
# ---------------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
TEMPLATES = [
    json.loads(line) for path in EVENT_FILES for line in path.read_text().splitlines() if line.strip()
]


def _parse_or_typed_error(frame: object) -> None:
    try:
        parse_event(frame)  # type: ignore[arg-type]
    except MalformedAriEventError:
        pass


@given(st.text() | st.binary())
def test_arbitrary_text_or_bytes_never_raise_anything_else(frame: str | bytes) -> None:
    _parse_or_typed_error(frame)


@given(
    st.sampled_from(sorted(KNOWN_EVENT_TYPES) + ["Nope"]),
    st.dictionaries(st.text(max_size=12), JSON, max_size=6),
)
def test_objects_of_known_types_with_random_keys_never_raise_anything_else(
    event_type: str, fields: dict[str, Any]
) -> None:
    _parse_or_typed_error({**fields, "type": event_type})


def _paths(node: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found: list[tuple[str | int, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*prefix, key))
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.append((*prefix, index))
            found += _paths(value, (*prefix, index))
    return found


@settings(max_examples=300)
@given(st.sampled_from(TEMPLATES), st.data())
def test_real_frames_with_one_value_broken_never_raise_anything_else(
    template: dict[str, Any], data: Any
) -> None:
    body = json.loads(json.dumps(template))
    path = data.draw(st.sampled_from(_paths(body)))
    parent: Any = body
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(JSON)

    _parse_or_typed_error(body)
    _parse_or_typed_error(json.dumps(body))
