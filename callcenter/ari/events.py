"""Typed ARI events: frames of the events WebSocket parsed into frozen values (edge, pure).

:func:`parse_event` turns one frame (text, bytes or an already decoded mapping) into one of the event
classes below, an :class:`UnknownEvent` for a ``type`` we do not model, or raises
:class:`MalformedAriEventError` naming what is wrong. It never raises anything else. The shapes follow
the ARI data model (``rest-api/api-docs/events.json``) checked against frames recorded from a real
Asterisk 20 (``tests/data/ari_events/``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, IntFlag, StrEnum
from typing import ClassVar, Final, NoReturn, TypeAlias, TypedDict, TypeVar

from callcenter.errors import CallCenterError


class MalformedAriEventError(CallCenterError):
    """An ARI frame we cannot read: not JSON, not an object, a required key missing or of a wrong type.

    ``key`` is the dotted path of the offending key (``channel.dialplan.priority``) when there is one;
    ``event_type`` is the frame's ``type`` when it could be read.
    """

    def __init__(self, message: str, *, key: str | None = None, event_type: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.event_type = event_type


class ChannelState(StrEnum):
    """``Channel.state`` as Asterisk spells it (``ast_state2str``)."""

    DOWN = "Down"
    RSRVD = "Rsrvd"
    OFFHOOK = "OffHook"
    DIALING = "Dialing"
    # An inbound channel not yet answered is "Ring"; "Ringing" is an outbound channel alerting.
    RING = "Ring"
    RINGING = "Ringing"
    UP = "Up"
    BUSY = "Busy"
    DIALING_OFFHOOK = "Dialing Offhook"
    PRE_RING = "Pre-ring"
    # ast_state2str answers "Unknown (<n>)" for a state it has no name for; we fold those in here.
    UNKNOWN = "Unknown"


class DialStatus(StrEnum):
    """``Dial.dialstatus``: progress of one dial attempt (the values of app_dial's ``DIALSTATUS``)."""

    # The first Dial event of an attempt carries an empty dialstatus.
    PENDING = ""
    RINGING = "RINGING"
    PROCEEDING = "PROCEEDING"
    PROGRESS = "PROGRESS"
    ANSWER = "ANSWER"
    BUSY = "BUSY"
    NOANSWER = "NOANSWER"
    CANCEL = "CANCEL"
    CONGESTION = "CONGESTION"
    CHANUNAVAIL = "CHANUNAVAIL"
    DONTCALL = "DONTCALL"
    TORTURE = "TORTURE"
    INVALIDARGS = "INVALIDARGS"
    UNKNOWN = "UNKNOWN"


class PlaybackState(StrEnum):
    """``Playback.state``. A stopped playback reports ``done``, a missing sound file ``failed``."""

    QUEUED = "queued"
    PLAYING = "playing"
    CONTINUING = "continuing"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"


class RecordingState(StrEnum):
    """``LiveRecording.state``. Every way a recording ends in Asterisk 20 gives ``done``, cancel included."""

    QUEUED = "queued"
    RECORDING = "recording"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"
    UNKNOWN = "unknown"


class SoftHangupFlag(IntFlag):
    """Asterisk's ``AST_SOFTHANGUP_*`` bits, which ``ChannelHangupRequest.cause`` carries when ``soft``."""

    DEV = 1 << 0
    ASYNCGOTO = 1 << 1
    SHUTDOWN = 1 << 2
    TIMEOUT = 1 << 3
    APPUNLOAD = 1 << 4
    EXPLICIT = 1 << 5
    HANGUP_EXEC = 1 << 7


class HangupCause(IntEnum):
    """The Q.850 causes Asterisk reports most (``ChannelDestroyed.cause``); other codes stay plain ints."""

    NOT_DEFINED = 0
    UNALLOCATED = 1
    NO_ROUTE_DESTINATION = 3
    NORMAL_CLEARING = 16
    USER_BUSY = 17
    NO_USER_RESPONSE = 18
    NO_ANSWER = 19
    SUBSCRIBER_ABSENT = 20
    CALL_REJECTED = 21
    DESTINATION_OUT_OF_ORDER = 27
    NORMAL_UNSPECIFIED = 31
    NORMAL_CIRCUIT_CONGESTION = 34
    NETWORK_OUT_OF_ORDER = 38
    NORMAL_TEMPORARY_FAILURE = 41
    INTERWORKING = 127


class HangupCauseKind(StrEnum):
    """What the ``cause`` of a ``ChannelHangupRequest`` means."""

    #: No ``cause`` key at all: chan_sip's remote BYE on a channel alone in a holding bridge.
    ABSENT = "absent"
    #: A Q.850 cause (a hang-up request without ``soft``, e.g. a remote BYE with a bridged peer: 16).
    Q850 = "q850"
    #: ``soft: true``: ``cause`` is a bitmask of :class:`SoftHangupFlag`, not a Q.850 code.
    SOFT = "soft"


# ---------------------------------------------------------------------------------------------
# Nested values
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallerId:
    """A name and number pair (``caller``, ``connected``)."""

    name: str
    number: str


@dataclass(frozen=True, kw_only=True, slots=True)
class DialplanCep:
    """Where a channel is in the dialplan: context, extension, priority and the running application."""

    context: str
    exten: str
    priority: int
    app_name: str = ""
    app_data: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Channel:
    """A channel snapshot as events and ``GET /channels`` carry it.

    Asterisk 20 sends no ``linkedid`` in channel snapshots; it is only available through
    ``channelvars`` (``ari.conf`` ``channelvars = CHANNEL(linkedid)``) or a variable GET.
    """

    id: str
    name: str
    state: ChannelState
    caller: CallerId
    connected: CallerId
    dialplan: DialplanCep
    creationtime: datetime
    accountcode: str = ""
    language: str = ""
    protocol_id: str = ""
    caller_rdnis: str = ""
    channelvars: tuple[tuple[str, str], ...] = ()

    def var(self, name: str) -> str | None:
        """The value of channel variable ``name`` if ``channelvars`` carried it."""
        for key, value in self.channelvars:
            if key == name:
                return value
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class Bridge:
    """A bridge snapshot. ``channels`` are the ids in it after the event happened."""

    id: str
    technology: str
    bridge_type: str
    bridge_class: str
    creator: str
    name: str
    channels: tuple[str, ...]
    creationtime: datetime | None = None
    video_mode: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Playback:
    """A playback. A comma-separated media list keeps one id; ``next_media_uri`` names the next item."""

    id: str
    media_uri: str
    target_uri: str
    state: PlaybackState
    language: str = ""
    next_media_uri: str | None = None

    @property
    def channel_id(self) -> str | None:
        """The id of the channel played to, when the target is a channel (``channel:<id>``)."""
        return _target_id(self.target_uri, "channel:")


@dataclass(frozen=True, kw_only=True, slots=True)
class LiveRecording:
    """A live recording. Durations are whole seconds; ``talking``/``silence`` only with maxSilence."""

    name: str
    format: str
    target_uri: str
    state: RecordingState
    duration_s: int | None = None
    talking_duration_s: int | None = None
    silence_duration_s: int | None = None
    cause: str = ""

    @property
    def channel_id(self) -> str | None:
        """The id of the recorded channel, when the target is a channel (``channel:<id>``)."""
        return _target_id(self.target_uri, "channel:")


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device and its state (``DeviceStateChanged``)."""

    name: str
    state: str


def _target_id(uri: str, prefix: str) -> str | None:
    return uri[len(prefix) :] if uri.startswith(prefix) else None


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class AriEventBase:
    """Fields every ARI event has. ``ari_type`` is the wire ``type``."""

    ari_type: ClassVar[str] = ""

    application: str
    timestamp: datetime
    asterisk_id: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class StasisStart(AriEventBase):
    """A channel entered our Stasis application, with the ``Stasis(app,args...)`` arguments."""

    ari_type: ClassVar[str] = "StasisStart"

    channel: Channel
    args: tuple[str, ...]
    replace_channel: Channel | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StasisEnd(AriEventBase):
    """A channel left our application.

    For a channel that entered from the dialplan this is the last event we get: Asterisk sends no
    ``ChannelDestroyed`` for it, so this is the end of the call as far as we can see.
    """

    ari_type: ClassVar[str] = "StasisEnd"

    channel: Channel


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelCreated(AriEventBase):
    """A channel was created (seen only with ``subscribeAll``; never for our own originates)."""

    ari_type: ClassVar[str] = "ChannelCreated"

    channel: Channel


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelDestroyed(AriEventBase):
    """A channel is gone, with its Q.850 cause (only for channels we originated or subscribed to)."""

    ari_type: ClassVar[str] = "ChannelDestroyed"

    channel: Channel
    cause: int
    cause_txt: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelStateChange(AriEventBase):
    """A channel changed state (``channel.state`` is the new one)."""

    ari_type: ClassVar[str] = "ChannelStateChange"

    channel: Channel


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelHangupRequest(AriEventBase):
    """A hang-up was requested on a channel.

    ``cause`` and ``soft`` are kept as sent. Read them through :attr:`cause_kind`,
    :attr:`q850_cause` and :attr:`soft_flags`: with ``soft`` the cause is a bitmask (32 after our
    ``DELETE``, 4 on shutdown), and a remote BYE on chan_sip may send no cause at all.
    """

    ari_type: ClassVar[str] = "ChannelHangupRequest"

    channel: Channel
    cause: int | None = None
    soft: bool | None = None

    @property
    def cause_kind(self) -> HangupCauseKind:
        if self.cause is None:
            return HangupCauseKind.ABSENT
        return HangupCauseKind.SOFT if self.soft else HangupCauseKind.Q850

    @property
    def q850_cause(self) -> int | None:
        """The Q.850 cause, or ``None`` when there is none or ``cause`` holds soft-hang-up flags."""
        return self.cause if self.cause_kind is HangupCauseKind.Q850 else None

    @property
    def soft_flags(self) -> SoftHangupFlag | None:
        """The soft-hang-up bits when ``soft`` is true, else ``None``."""
        if self.cause_kind is not HangupCauseKind.SOFT or self.cause is None:
            return None
        return SoftHangupFlag(self.cause & _ALL_SOFT_FLAGS)


_ALL_SOFT_FLAGS: Final = sum(flag.value for flag in SoftHangupFlag)


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelEnteredBridge(AriEventBase):
    """A channel entered a bridge (the model allows the channel to be absent)."""

    ari_type: ClassVar[str] = "ChannelEnteredBridge"

    bridge: Bridge
    channel: Channel | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelLeftBridge(AriEventBase):
    """A channel left a bridge (also when ``addChannel`` moved it into another bridge)."""

    ari_type: ClassVar[str] = "ChannelLeftBridge"

    bridge: Bridge
    channel: Channel


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelDtmfReceived(AriEventBase):
    """One DTMF digit, sent when the digit ends; there is no begin event."""

    ari_type: ClassVar[str] = "ChannelDtmfReceived"

    channel: Channel
    digit: str
    duration_ms: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelDialplan(AriEventBase):
    """A channel moved in the dialplan (seen with ``subscribeAll``)."""

    ari_type: ClassVar[str] = "ChannelDialplan"

    channel: Channel
    dialplan_app: str
    dialplan_app_data: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelCallerId(AriEventBase):
    """A channel's caller id changed (also after setting ``CALLERID(name)`` by REST)."""

    ari_type: ClassVar[str] = "ChannelCallerId"

    channel: Channel
    caller_presentation: int
    caller_presentation_txt: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelConnectedLine(AriEventBase):
    """A channel's connected line changed."""

    ari_type: ClassVar[str] = "ChannelConnectedLine"

    channel: Channel


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelVarset(AriEventBase):
    """A variable was set; ``channel`` is ``None`` for a global variable."""

    ari_type: ClassVar[str] = "ChannelVarset"

    variable: str
    value: str
    channel: Channel | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelHold(AriEventBase):
    """A channel put the call on hold."""

    ari_type: ClassVar[str] = "ChannelHold"

    channel: Channel
    musicclass: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelUnhold(AriEventBase):
    """A channel took the call off hold."""

    ari_type: ClassVar[str] = "ChannelUnhold"

    channel: Channel


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelTalkingStarted(AriEventBase):
    """Talk detection (``TALK_DETECT``) heard speech start."""

    ari_type: ClassVar[str] = "ChannelTalkingStarted"

    channel: Channel


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelTalkingFinished(AriEventBase):
    """Talk detection heard speech stop; the wire key ``duration`` is in milliseconds."""

    ari_type: ClassVar[str] = "ChannelTalkingFinished"

    channel: Channel
    duration_ms: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Dial(AriEventBase):
    """Progress of a dial attempt.

    The dialled channel is under ``peer`` (not ``channel``); ``caller`` is absent for an ARI
    originate. ``dialstatus_raw`` keeps the wire value when it is not one we know.
    """

    ari_type: ClassVar[str] = "Dial"

    peer: Channel
    dialstatus: DialStatus
    dialstatus_raw: str
    caller: Channel | None = None
    forwarded: Channel | None = None
    forward: str = ""
    dialstring: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class PlaybackStarted(AriEventBase):
    """A playback (or the next item of a media list) started."""

    ari_type: ClassVar[str] = "PlaybackStarted"

    playback: Playback


@dataclass(frozen=True, kw_only=True, slots=True)
class PlaybackContinuing(AriEventBase):
    """An item of a media list ended and the next one follows (``media_uri`` is the one that ended)."""

    ari_type: ClassVar[str] = "PlaybackContinuing"

    playback: Playback


@dataclass(frozen=True, kw_only=True, slots=True)
class PlaybackFinished(AriEventBase):
    """A playback ended: ``done`` (also when stopped) or ``failed`` (missing file, channel hung up)."""

    ari_type: ClassVar[str] = "PlaybackFinished"

    playback: Playback


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordingStarted(AriEventBase):
    """A recording started; Asterisk sends it before the beep has played."""

    ari_type: ClassVar[str] = "RecordingStarted"

    recording: LiveRecording


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordingFinished(AriEventBase):
    """A recording ended; no field says why (max duration, silence, key, stop and cancel look alike)."""

    ari_type: ClassVar[str] = "RecordingFinished"

    recording: LiveRecording


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordingFailed(AriEventBase):
    """A recording failed (``recording.cause`` says why)."""

    ari_type: ClassVar[str] = "RecordingFailed"

    recording: LiveRecording


@dataclass(frozen=True, kw_only=True, slots=True)
class BridgeCreated(AriEventBase):
    """A bridge was created (not sent for ``POST /bridges``: only seen with ``subscribeAll``)."""

    ari_type: ClassVar[str] = "BridgeCreated"

    bridge: Bridge


@dataclass(frozen=True, kw_only=True, slots=True)
class BridgeDestroyed(AriEventBase):
    """A bridge the application was subscribed to was destroyed."""

    ari_type: ClassVar[str] = "BridgeDestroyed"

    bridge: Bridge


@dataclass(frozen=True, kw_only=True, slots=True)
class BridgeMerged(AriEventBase):
    """``bridge_from`` was merged into ``bridge``."""

    ari_type: ClassVar[str] = "BridgeMerged"

    bridge: Bridge
    bridge_from: Bridge


@dataclass(frozen=True, kw_only=True, slots=True)
class ApplicationReplaced(AriEventBase):
    """Another WebSocket took our application over (the newer connection wins); this one gets no more."""

    ari_type: ClassVar[str] = "ApplicationReplaced"


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceStateChanged(AriEventBase):
    """A device state changed (seen with ``subscribeAll``)."""

    ari_type: ClassVar[str] = "DeviceStateChanged"

    device_state: DeviceState


@dataclass(frozen=True, kw_only=True, slots=True)
class UnknownEvent:
    """A well-formed frame whose ``type`` we do not model: the link logs it and goes on.

    Asterisk 20.20 also answers text frames from the client with ``RESTResponse`` frames; those land
    here too. ``keys`` lists the frame's top-level keys for the log line.
    """

    raw_type: str
    application: str = ""
    keys: tuple[str, ...] = ()


AriEvent: TypeAlias = (
    StasisStart
    | StasisEnd
    | ChannelCreated
    | ChannelDestroyed
    | ChannelStateChange
    | ChannelHangupRequest
    | ChannelEnteredBridge
    | ChannelLeftBridge
    | ChannelDtmfReceived
    | ChannelDialplan
    | ChannelCallerId
    | ChannelConnectedLine
    | ChannelVarset
    | ChannelHold
    | ChannelUnhold
    | ChannelTalkingStarted
    | ChannelTalkingFinished
    | Dial
    | PlaybackStarted
    | PlaybackContinuing
    | PlaybackFinished
    | RecordingStarted
    | RecordingFinished
    | RecordingFailed
    | BridgeCreated
    | BridgeDestroyed
    | BridgeMerged
    | ApplicationReplaced
    | DeviceStateChanged
    | UnknownEvent
)

# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """Read an ARI time such as ``2026-11-23T18:47:33.542+0000`` into an aware datetime.

    :raises MalformedAriEventError: when the text is not an ISO 8601 time with an offset.
    """
    try:
        # Asterisk writes the offset without a colon (+0000); fromisoformat reads that since 3.11.
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedAriEventError(f"not an ARI time: {text!r}") from exc
    if parsed.tzinfo is None:
        raise MalformedAriEventError(f"ARI time without an offset: {text!r}")
    return parsed


def format_time(when: datetime) -> str:
    """Write an aware datetime the way Asterisk does: milliseconds and a ``+HHMM`` offset."""
    if when.tzinfo is None:
        raise ValueError("ARI times must be timezone-aware")
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}" + when.strftime("%z")


_MISSING: Final = object()


def _absent(value: object) -> bool:
    return value is _MISSING or value is None


class _Reader:
    """Typed access to one JSON object, raising :class:`MalformedAriEventError` with the key's path."""

    __slots__ = ("_body", "_path", "_event_type")

    def __init__(self, body: Mapping[str, object], path: str, event_type: str | None) -> None:
        self._body = body
        self._path = path
        self._event_type = event_type

    def fail(self, key: str, problem: str) -> NoReturn:
        where = self._path + key
        what = self._event_type or "ARI object"
        raise MalformedAriEventError(f"{what}: {problem} {where!r}", key=where, event_type=self._event_type)

    def _get(self, key: str) -> object:
        return self._body.get(key, _MISSING)

    # The fast paths (an exact str or dict) come first: every event of a call goes through them.

    def text(self, key: str) -> str:
        value = self._body.get(key, _MISSING)
        if type(value) is str:
            return value
        if value is _MISSING:
            self.fail(key, "missing key")
        if not isinstance(value, str):
            self.fail(key, "expected a string at")
        return value

    def opt_text(self, key: str, default: str = "") -> str:
        value = self._body.get(key)
        if type(value) is str:
            return value
        return default if value is None else self.text(key)

    def integer(self, key: str) -> int:
        value = self._get(key)
        if value is _MISSING:
            self.fail(key, "missing key")
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(key, "expected an integer at")
        return value

    def opt_integer(self, key: str) -> int | None:
        return None if _absent(self._get(key)) else self.integer(key)

    def opt_boolean(self, key: str) -> bool | None:
        value = self._get(key)
        if value is _MISSING or value is None:
            return None
        if not isinstance(value, bool):
            self.fail(key, "expected true or false at")
        return value

    def time(self, key: str) -> datetime:
        text = self.text(key)
        try:
            return parse_time(text)
        except MalformedAriEventError:
            self.fail(key, f"not an ISO 8601 time with an offset ({text!r}) at")

    def opt_time(self, key: str) -> datetime | None:
        return None if _absent(self._get(key)) else self.time(key)

    def child(self, key: str) -> _Reader:
        value = self._body.get(key, _MISSING)
        if type(value) is dict:
            return _Reader(value, f"{self._path}{key}.", self._event_type)
        if value is _MISSING:
            self.fail(key, "missing key")
        if not isinstance(value, Mapping):
            self.fail(key, "expected an object at")
        return _Reader(value, f"{self._path}{key}.", self._event_type)

    def opt_child(self, key: str) -> _Reader | None:
        return None if _absent(self._get(key)) else self.child(key)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._get(key)
        if value is _MISSING:
            self.fail(key, "missing key")
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.fail(key, "expected a list of strings at")
        return tuple(value)

    def string_map(self, key: str) -> tuple[tuple[str, str], ...]:
        value = self._get(key)
        if value is _MISSING or value is None:
            return ()
        if not isinstance(value, Mapping):
            self.fail(key, "expected an object at")
        pairs = tuple(value.items())
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs):
            self.fail(key, "expected string values at")
        return pairs


def _caller_id(r: _Reader) -> CallerId:
    return CallerId(name=r.text("name"), number=r.text("number"))


def _channel(r: _Reader) -> Channel:
    dialplan = r.child("dialplan")
    state_text = r.text("state")
    return Channel(
        id=r.text("id"),
        name=r.text("name"),
        state=_enum(ChannelState, state_text, ChannelState.UNKNOWN),
        caller=_caller_id(r.child("caller")),
        connected=_caller_id(r.child("connected")),
        dialplan=DialplanCep(
            context=dialplan.text("context"),
            exten=dialplan.text("exten"),
            priority=dialplan.integer("priority"),
            app_name=dialplan.opt_text("app_name"),
            app_data=dialplan.opt_text("app_data"),
        ),
        creationtime=r.time("creationtime"),
        accountcode=r.opt_text("accountcode"),
        language=r.opt_text("language"),
        protocol_id=r.opt_text("protocol_id"),
        caller_rdnis=r.opt_text("caller_rdnis"),
        channelvars=r.string_map("channelvars"),
    )


def _opt_channel(r: _Reader | None) -> Channel | None:
    return None if r is None else _channel(r)


def _bridge(r: _Reader) -> Bridge:
    return Bridge(
        id=r.text("id"),
        technology=r.text("technology"),
        bridge_type=r.text("bridge_type"),
        bridge_class=r.text("bridge_class"),
        creator=r.text("creator"),
        name=r.text("name"),
        channels=r.texts("channels"),
        creationtime=r.opt_time("creationtime"),
        video_mode=r.opt_text("video_mode"),
    )


def _playback(r: _Reader) -> Playback:
    next_media = r.opt_text("next_media_uri")
    return Playback(
        id=r.text("id"),
        media_uri=r.text("media_uri"),
        target_uri=r.text("target_uri"),
        state=_enum(PlaybackState, r.text("state"), PlaybackState.UNKNOWN),
        language=r.opt_text("language"),
        next_media_uri=next_media or None,
    )


def _recording(r: _Reader) -> LiveRecording:
    return LiveRecording(
        name=r.text("name"),
        format=r.text("format"),
        target_uri=r.text("target_uri"),
        state=_enum(RecordingState, r.text("state"), RecordingState.UNKNOWN),
        duration_s=r.opt_integer("duration"),
        # Absent when the recording ran with maxSilenceSeconds=0.
        talking_duration_s=r.opt_integer("talking_duration"),
        silence_duration_s=r.opt_integer("silence_duration"),
        cause=r.opt_text("cause"),
    )


_E = TypeVar("_E", bound=StrEnum)


def _enum(cls: type[_E], value: str, fallback: _E) -> _E:
    try:
        return cls(value)
    except ValueError:
        return fallback


class _Common(TypedDict):
    application: str
    timestamp: datetime
    asterisk_id: str


def _common(r: _Reader) -> _Common:
    return {
        "application": r.text("application"),
        "timestamp": r.time("timestamp"),
        "asterisk_id": r.opt_text("asterisk_id"),
    }


def _stasis_start(r: _Reader) -> StasisStart:
    return StasisStart(
        **_common(r),
        channel=_channel(r.child("channel")),
        # Stasis(app) with no arguments gives an empty list, never a missing key.
        args=r.texts("args"),
        replace_channel=_opt_channel(r.opt_child("replace_channel")),
    )


def _stasis_end(r: _Reader) -> StasisEnd:
    return StasisEnd(**_common(r), channel=_channel(r.child("channel")))


def _channel_created(r: _Reader) -> ChannelCreated:
    return ChannelCreated(**_common(r), channel=_channel(r.child("channel")))


def _channel_destroyed(r: _Reader) -> ChannelDestroyed:
    return ChannelDestroyed(
        **_common(r),
        channel=_channel(r.child("channel")),
        cause=r.integer("cause"),
        cause_txt=r.text("cause_txt"),
    )


def _channel_state_change(r: _Reader) -> ChannelStateChange:
    return ChannelStateChange(**_common(r), channel=_channel(r.child("channel")))


def _channel_hangup_request(r: _Reader) -> ChannelHangupRequest:
    # ChannelHangupRequest: "cause" and "soft" are both optional and are modelled as sent.
    return ChannelHangupRequest(
        **_common(r),
        channel=_channel(r.child("channel")),
        cause=r.opt_integer("cause"),
        soft=r.opt_boolean("soft"),
    )


def _channel_entered_bridge(r: _Reader) -> ChannelEnteredBridge:
    return ChannelEnteredBridge(
        **_common(r), bridge=_bridge(r.child("bridge")), channel=_opt_channel(r.opt_child("channel"))
    )


def _channel_left_bridge(r: _Reader) -> ChannelLeftBridge:
    return ChannelLeftBridge(
        **_common(r), bridge=_bridge(r.child("bridge")), channel=_channel(r.child("channel"))
    )


def _channel_dtmf_received(r: _Reader) -> ChannelDtmfReceived:
    return ChannelDtmfReceived(
        **_common(r),
        channel=_channel(r.child("channel")),
        digit=r.text("digit"),
        duration_ms=r.integer("duration_ms"),
    )


def _channel_dialplan(r: _Reader) -> ChannelDialplan:
    return ChannelDialplan(
        **_common(r),
        channel=_channel(r.child("channel")),
        dialplan_app=r.text("dialplan_app"),
        dialplan_app_data=r.text("dialplan_app_data"),
    )


def _channel_caller_id(r: _Reader) -> ChannelCallerId:
    return ChannelCallerId(
        **_common(r),
        channel=_channel(r.child("channel")),
        caller_presentation=r.integer("caller_presentation"),
        caller_presentation_txt=r.text("caller_presentation_txt"),
    )


def _channel_connected_line(r: _Reader) -> ChannelConnectedLine:
    return ChannelConnectedLine(**_common(r), channel=_channel(r.child("channel")))


def _channel_varset(r: _Reader) -> ChannelVarset:
    return ChannelVarset(
        **_common(r),
        variable=r.text("variable"),
        value=r.text("value"),
        # ChannelVarset without "channel" reports a global variable.
        channel=_opt_channel(r.opt_child("channel")),
    )


def _channel_hold(r: _Reader) -> ChannelHold:
    return ChannelHold(
        **_common(r), channel=_channel(r.child("channel")), musicclass=r.opt_text("musicclass")
    )


def _channel_unhold(r: _Reader) -> ChannelUnhold:
    return ChannelUnhold(**_common(r), channel=_channel(r.child("channel")))


def _channel_talking_started(r: _Reader) -> ChannelTalkingStarted:
    return ChannelTalkingStarted(**_common(r), channel=_channel(r.child("channel")))


def _channel_talking_finished(r: _Reader) -> ChannelTalkingFinished:
    return ChannelTalkingFinished(
        **_common(r), channel=_channel(r.child("channel")), duration_ms=r.integer("duration")
    )


def _dial(r: _Reader) -> Dial:
    raw_status = r.text("dialstatus")
    return Dial(
        **_common(r),
        # Dial: the dialled channel is under "peer"; "caller" is absent for an ARI originate.
        peer=_channel(r.child("peer")),
        dialstatus=_enum(DialStatus, raw_status, DialStatus.UNKNOWN),
        dialstatus_raw=raw_status,
        caller=_opt_channel(r.opt_child("caller")),
        forwarded=_opt_channel(r.opt_child("forwarded")),
        forward=r.opt_text("forward"),
        dialstring=r.opt_text("dialstring"),
    )


def _playback_started(r: _Reader) -> PlaybackStarted:
    return PlaybackStarted(**_common(r), playback=_playback(r.child("playback")))


def _playback_continuing(r: _Reader) -> PlaybackContinuing:
    return PlaybackContinuing(**_common(r), playback=_playback(r.child("playback")))


def _playback_finished(r: _Reader) -> PlaybackFinished:
    return PlaybackFinished(**_common(r), playback=_playback(r.child("playback")))


def _recording_started(r: _Reader) -> RecordingStarted:
    return RecordingStarted(**_common(r), recording=_recording(r.child("recording")))


def _recording_finished(r: _Reader) -> RecordingFinished:
    return RecordingFinished(**_common(r), recording=_recording(r.child("recording")))


def _recording_failed(r: _Reader) -> RecordingFailed:
    return RecordingFailed(**_common(r), recording=_recording(r.child("recording")))


def _bridge_created(r: _Reader) -> BridgeCreated:
    return BridgeCreated(**_common(r), bridge=_bridge(r.child("bridge")))


def _bridge_destroyed(r: _Reader) -> BridgeDestroyed:
    return BridgeDestroyed(**_common(r), bridge=_bridge(r.child("bridge")))


def _bridge_merged(r: _Reader) -> BridgeMerged:
    return BridgeMerged(
        **_common(r), bridge=_bridge(r.child("bridge")), bridge_from=_bridge(r.child("bridge_from"))
    )


def _application_replaced(r: _Reader) -> ApplicationReplaced:
    return ApplicationReplaced(**_common(r))


def _device_state_changed(r: _Reader) -> DeviceStateChanged:
    device = r.child("device_state")
    return DeviceStateChanged(
        **_common(r), device_state=DeviceState(name=device.text("name"), state=device.text("state"))
    )


_PARSERS: Final[Mapping[str, Callable[[_Reader], AriEvent]]] = {
    cls.ari_type: parser
    for cls, parser in (
        (StasisStart, _stasis_start),
        (StasisEnd, _stasis_end),
        (ChannelCreated, _channel_created),
        (ChannelDestroyed, _channel_destroyed),
        (ChannelStateChange, _channel_state_change),
        (ChannelHangupRequest, _channel_hangup_request),
        (ChannelEnteredBridge, _channel_entered_bridge),
        (ChannelLeftBridge, _channel_left_bridge),
        (ChannelDtmfReceived, _channel_dtmf_received),
        (ChannelDialplan, _channel_dialplan),
        (ChannelCallerId, _channel_caller_id),
        (ChannelConnectedLine, _channel_connected_line),
        (ChannelVarset, _channel_varset),
        (ChannelHold, _channel_hold),
        (ChannelUnhold, _channel_unhold),
        (ChannelTalkingStarted, _channel_talking_started),
        (ChannelTalkingFinished, _channel_talking_finished),
        (Dial, _dial),
        (PlaybackStarted, _playback_started),
        (PlaybackContinuing, _playback_continuing),
        (PlaybackFinished, _playback_finished),
        (RecordingStarted, _recording_started),
        (RecordingFinished, _recording_finished),
        (RecordingFailed, _recording_failed),
        (BridgeCreated, _bridge_created),
        (BridgeDestroyed, _bridge_destroyed),
        (BridgeMerged, _bridge_merged),
        (ApplicationReplaced, _application_replaced),
        (DeviceStateChanged, _device_state_changed),
    )
}

#: The wire ``type`` of every event :func:`parse_event` models.
KNOWN_EVENT_TYPES: Final = frozenset(_PARSERS)


def parse_event(raw: str | bytes | bytearray | Mapping[str, object]) -> AriEvent:
    """Parse one frame of the ARI events WebSocket.

    :param raw: the frame's text or bytes, or a mapping already decoded from JSON.
    :returns: the typed event, or :class:`UnknownEvent` for a well-formed frame of a type we do not
        model (log it and skip it).
    :raises MalformedAriEventError: for anything else: not JSON, not an object, no string ``type``,
        or a required key missing or of the wrong type (the error names the key). Nothing else.
    """
    body = _decode(raw) if isinstance(raw, str | bytes | bytearray) else raw
    if not isinstance(body, Mapping):
        raise MalformedAriEventError(f"ARI frame is not a JSON object but {type(body).__name__}")
    reader = _Reader(body, "", None)
    event_type = reader.text("type")
    parser = _PARSERS.get(event_type)
    if parser is None:
        application = body.get("application")
        return UnknownEvent(
            raw_type=event_type,
            application=application if isinstance(application, str) else "",
            keys=tuple(sorted(str(key) for key in body)),
        )
    return parser(_Reader(body, "", event_type))


def parse_channel(raw: Mapping[str, object]) -> Channel:
    """Parse a channel object as ``GET /channels`` or ``POST /channels`` return it (for resync).

    :raises MalformedAriEventError: naming the missing or mistyped key.
    """
    return _channel(_Reader(raw, "", "Channel"))


def parse_bridge(raw: Mapping[str, object]) -> Bridge:
    """Parse a bridge object as ``GET /bridges`` returns it.

    :raises MalformedAriEventError: naming the missing or mistyped key.
    """
    return _bridge(_Reader(raw, "", "Bridge"))


def _decode(raw: str | bytes | bytearray) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and UnicodeDecodeError; very deep nesting recurses out.
        raise MalformedAriEventError(f"ARI frame is not JSON: {exc}") from exc
