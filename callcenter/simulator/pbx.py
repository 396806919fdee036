"""State and event emission of the simulated Asterisk 20: channels, bridges, media, dialplan (edge).

:class:`Pbx` holds what a real Asterisk holds for our Stasis application and emits the ARI events a
real Asterisk 20.20 emits for each change, with the keys, value types, order and quirks recorded in
``tests/data/ari/`` (chan_sip captures; see their README beside the originals). Validation of REST
arguments and the error bodies live in :mod:`callcenter.simulator.ari_app`, as they live in
``res/ari/resource_*.c`` in Asterisk; this module assumes valid objects.

Time comes from a :class:`Scheduler`: :class:`VirtualScheduler` (the default, for tests: nothing
happens until :meth:`Pbx.run_timers` moves simulated time) or :class:`LoopScheduler` (wall-clock
timers on the running event loop, for the demo and the benchmark).

Events are serialised once, by string assembly around each channel's cached JSON snapshot, and handed
to the sink (one callable per registered application) that :mod:`ari_app` installs per WebSocket.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import json
import math
import random
import struct
import uuid
import wave
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from callcenter.asterisk_names import STASIS_APP
from callcenter.clock import Clock, SystemClock
from callcenter.errors import CallCenterError

#: ``asterisk_id`` of every event (the entity id of the recorded Asterisk).
DEFAULT_ASTERISK_ID = "02:fc:00:00:00:01"
ASTERISK_VERSION = "20.20.1"

#: Causes as ``ast_cause2str`` spells them (main/channel.c); ``ChannelDestroyed.cause_txt``.
CAUSE_TEXT: dict[int, str] = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    26: "Answered elsewhere",
    27: "Destination out of order",
    28: "Invalid number format",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    44: "Requested channel not available",
    58: "Bearer capability not available",
    127: "Interworking, unspecified",
}

#: Soft-hangup flags that ``ChannelHangupRequest.cause`` carries instead of a Q.850 cause.
SOFTHANGUP_SHUTDOWN = 4  # AST_SOFTHANGUP_SHUTDOWN: ``core restart now``
SOFTHANGUP_EXPLICIT = 32  # AST_SOFTHANGUP_EXPLICIT: ``DELETE /channels/{id}``

#: Lengths (seconds) of Asterisk core sounds our product and tests play, from the files of Debian's
#: ``asterisk-core-sounds-en-wav`` 1.6.1 (8 kHz WAV). A sound in neither table is a missing file:
#: ``PlaybackFinished`` ``failed`` right after ``PlaybackStarted`` (``Pbx.default_sound_s`` changes that).
CORE_SOUNDS: dict[str, float] = {
    "tt-allbusy": 8.969,
    "im-sorry": 1.022,
    "please-try-call-later": 2.166,
    "vm-goodbye": 0.865,
    "auth-thankyou": 0.96,
    "one-moment-please": 1.583,
    "pls-hold-while-try": 2.425,
    "queue-thankyou": 1.592,
    "queue-holdtime": 2.79,
    "queue-youarenext": 5.362,
    "queue-thereare": 2.257,
    "queue-callswaiting": 2.473,
    "queue-minutes": 0.875,
    "queue-seconds": 1.12,
    "queue-less-than": 1.05,
    "queue-periodic-announce": 7.837,
    "queue-reporthold": 1.093,
    "vm-intro": 5.654,
    "vm-msgsaved": 2.169,
    "vm-review": 7.746,
    "vm-nobodyavail": 2.788,
    "vm-rec-name": 4.286,
    "vm-sorry": 3.072,
    "you-entered": 0.972,
    "please-try-again": 1.245,
    "invalid": 4.112,
    "transfer": 2.392,
    "tt-weasels": 2.951,
    "tt-monkeys": 16.18,
    "beeperr": 0.36,
    "silence/1": 1.0,
}
#: The sounds a :class:`Pbx` knows: the core sounds above, and for those the captures played, the
#: duration measured on the wire (``PlaybackStarted`` to ``PlaybackFinished``).
DEFAULT_SOUNDS: dict[str, float] = {
    **CORE_SOUNDS,
    "hello-world": 1.42,
    "goodbye": 0.94,
    "beep": 0.44,
    "demo-congrats": 30.0,
}
#: ``digits:1234`` took 3.345 s and ``number:42`` 1.72 s in the captures.
DIGIT_SAY_S = 0.836
NUMBER_WORD_S = 0.86
#: Skip of ``forward``/``reverse`` playback controls (ARI ``skipms`` default).
PLAYBACK_SKIP_S = 3.0
#: ``beep=true`` on a recording plays a 0.44 s beep before the max-duration clock starts.
BEEP_S = 0.44
#: Stored recordings are 16-bit signed PCM, 8 kHz, mono WAV (16000 bytes/s), whatever the call's codec.
PCM_BYTES_PER_S = 16000

DTMF_DIGITS = frozenset("0123456789*#ABCD")
RECORDING_FORMATS = frozenset(
    {"wav", "gsm", "ulaw", "alaw", "sln", "sln16", "g722", "g729", "wav16", "wav49"}
)

_QOS_SUFFIXES = ("", "JITTER", "LOSS", "RTT", "MES")
_QOS_VALUES = {
    "": "ssrc=0;themssrc=0;lp=0;rxjitter=0.000000;rxcount=0;txjitter=0.000000;txcount=0;rlp=0;"
    "rtt=0.000000;rxmes=0.000000;txmes=0.000000",
    "JITTER": "minrxjitter=000.000000;maxrxjitter=000.000000;avgrxjitter=000.000000;"
    "stdevrxjitter=000.000000;mintxjitter=000.000000;maxtxjitter=000.000000;avgtxjitter=000.000000;"
    "stdevtxjitter=000.000000;",
    "LOSS": "  minrxlost=000.000000;  maxrxlost=000.000000;  avgrxlost=000.000000;  stdevrxlost=000.000000;"
    "  mintxlost=000.000000;  maxtxlost=000.000000;  avgtxlost=000.000000;  stdevtxlost=000.000000;",
    "RTT": "     minrtt=000.000000;     maxrtt=000.000000;     avgrtt=000.000000;     stdevrtt=000.000000;",
    "MES": "   minrxmes=000.000000;   maxrxmes=000.000000;   avgrxmes=000.000000;   stdevrxmes=000.000000;"
    "   mintxmes=000.000000;   maxtxmes=000.000000;   avgtxmes=000.000000;   stdevtxmes=000.000000;",
}


#: JSON of the values set on every call (QoS reports, cleared bridge peers): encoded once.
_QUOTED_VALUES = {v: json.dumps(v) for v in (*_QOS_VALUES.values(), "", "SUCCESS")}


class SimulatorError(CallCenterError):
    """The simulator's control API was used wrongly (unknown channel, bad digit, wrong time mode)."""


class ChannelState(StrEnum):
    """``Channel.state`` as Asterisk spells it."""

    DOWN = "Down"
    RING = "Ring"  # an inbound channel before Answer(): not "Ringing"
    RINGING = "Ringing"  # an outbound channel that got 180
    UP = "Up"


class EndpointBehaviour(StrEnum):
    """What an endpoint does when we originate a call to it."""

    ANSWER = "answer"  # rings, then answers after ``answer_after_s``
    NO_ANSWER = "no_answer"  # rings until the originate ``timeout`` (ChannelDestroyed cause 19, Ringing)
    BUSY = "busy"  # answers 486: Dial BUSY, ChannelDestroyed cause 17
    NO_RESPONSE = "no_response"  # the INVITE gets no answer at all (ari_agent_no_uas): cause 19 in Down
    UNAVAILABLE = "unavailable"  # not registered: POST /channels fails, 500 {"error": "Allocation failed"}


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointConfig:
    """How a registered endpoint behaves when dialled.

    :param answer_after_s: seconds from the originate to the answer (``ANSWER``).
    :param ring_after_s: seconds from the originate to the 180 (or to the 486 for ``BUSY``).
    :param context: the dialplan context the endpoint's channels report (its ``context=`` setting).
    """

    behaviour: EndpointBehaviour = EndpointBehaviour.ANSWER
    answer_after_s: float = 1.0
    ring_after_s: float = 0.0
    context: str = "default"


#: A dial policy may override an endpoint's configuration per originate (the traffic model draws
#: answer delays and no-answers this way); ``None`` keeps the configured behaviour.
DialPolicy = Callable[[str], EndpointConfig | None]


@dataclass(frozen=True, slots=True)
class PbxChange:
    """A state change reported to observers (the traffic driver watches bridges through these).

    ``kind`` is one of ``stasis_start``, ``stasis_end``, ``entered_bridge``, ``left_bridge``,
    ``answered`` (an originated channel answered) and ``gone`` (the channel no longer exists).
    """

    kind: str
    channel_id: str
    bridge_id: str | None = None


@dataclass(frozen=True, slots=True)
class DialplanVisit:
    """One dialplan application a channel executed outside our Stasis app."""

    channel_id: str
    context: str
    exten: str
    priority: int
    app: str
    data: str


@dataclass(frozen=True, slots=True)
class MediaHeard:
    """One media item played to a channel, and how far: what the far end heard (control API).

    ``result`` is ``complete`` (played to its end), ``missing`` (no such file: nothing heard),
    ``cut`` (the channel hung up mid-item) or ``stopped`` (the playback was stopped, or the channel
    left Stasis).
    """

    channel_id: str
    media_uri: str
    result: str


@runtime_checkable
class SettableClock(Clock, Protocol):
    """A clock the virtual scheduler can move (``tests.conftest.FakeClock`` is one)."""

    def set(self, when: datetime) -> None: ...


# --------------------------------------------------------------------------------------------- time


class Timer:
    """A scheduled callback; :meth:`cancel` is idempotent."""

    __slots__ = ("when", "callback", "cancelled", "_handle")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False
        self._handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        self.cancelled = True
        if self._handle is not None:
            self._handle.cancel()


class Scheduler(Protocol):
    """Where the simulator reads the time and schedules what happens later."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float:
        """Seconds on a monotonic scale, for measuring durations."""
        ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer: ...


class VirtualScheduler:
    """Simulated time that moves only in :meth:`run_until` (deterministic tests).

    Timers fire in due order; equal due times fire in scheduling order. If ``clock`` can be set, it is
    kept in step, so a ``FakeClock`` shared with the code under test shows the same time.
    """

    def __init__(self, start: datetime | None = None, clock: SettableClock | None = None) -> None:
        if start is None:
            start = clock.now() if clock is not None else datetime(2026, 11, 23, 18, 47, 23, tzinfo=UTC)
        self._start = start
        self._clock = clock
        self._t = 0.0
        self._seq = 0
        self._heap: list[tuple[float, int, Timer]] = []

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        return self._t

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self._t + max(delay_s, 0.0), callback)
        self._seq += 1
        heapq.heappush(self._heap, (timer.when, self._seq, timer))
        return timer

    def next_due(self) -> float | None:
        """Simulated seconds of the next live timer, or ``None``."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def fire_next(self, until: float) -> bool:
        """Fire the earliest timer due at or before ``until``; False when there is none."""
        due = self.next_due()
        if due is None or due > until:
            return False
        _, _, timer = heapq.heappop(self._heap)
        self._set_time(timer.when)
        timer.callback()
        return True

    def set_time(self, t: float) -> None:
        self._set_time(max(t, self._t))

    def _set_time(self, t: float) -> None:
        self._t = t
        if self._clock is not None:
            self._clock.set(self.now())


class LoopScheduler:
    """Wall-clock timers on the running event loop (demo and benchmark)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()

    def now(self) -> datetime:
        return self._clock.now()

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        loop = asyncio.get_running_loop()
        timer = Timer(loop.time() + delay_s, callback)
        timer._handle = loop.call_later(max(delay_s, 0.0), callback)
        return timer


def ari_timestamp(when: datetime) -> str:
    """``2026-11-23T18:47:33.542+0000``: milliseconds and an offset without a colon, as Asterisk sends."""
    utc = when.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}+0000"


# --------------------------------------------------------------------------------------------- state


@dataclass(slots=True, eq=False)
class Channel:
    """One channel, with the fields of ARI's ``Channel`` model and the simulator's bookkeeping."""

    id: str
    name: str
    tech: str
    resource: str
    state: ChannelState
    protocol_id: str
    caller_name: str
    caller_number: str
    connected_name: str
    connected_number: str
    context: str
    exten: str
    priority: int
    app_name: str
    app_data: str
    creationtime: str
    language: str = "en"
    accountcode: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    app: str | None = None  # the Stasis application this channel belongs to
    in_stasis: bool = False
    explicit_sub: bool = False  # originated with app=: subscribed until destroyed, not just in Stasis
    originated: bool = False
    bridge_id: str | None = None
    qos_reported: bool = False  # RTPAUDIOQOS* already set (they are set once per channel)
    media: deque[Playback | LiveRecording] = field(default_factory=deque)
    talk_s: float | None = None  # caller audio for recordings: None = no RTP at all (like SIPp)
    talk_pcm: bytes | None = None
    dial_timers: list[Timer] = field(default_factory=list)
    dialplan_timer: Timer | None = None
    dialstring: str = ""
    _json: str | None = None

    @property
    def subscribed(self) -> bool:
        """Whether events about this channel reach its application."""
        return self.app is not None and (self.in_stasis or self.explicit_sub)

    def touch(self) -> None:
        """Forget the cached snapshot after a change of a snapshot field."""
        self._json = None

    def json(self) -> str:
        """The channel snapshot as ARI serialises it, cached until the next change."""
        if self._json is None:
            self._json = json.dumps(
                {
                    "id": self.id,
                    "name": self.name,
                    "state": self.state.value,
                    "protocol_id": self.protocol_id,
                    "caller": {"name": self.caller_name, "number": self.caller_number},
                    "connected": {"name": self.connected_name, "number": self.connected_number},
                    "accountcode": self.accountcode,
                    "dialplan": {
                        "context": self.context,
                        "exten": self.exten,
                        "priority": self.priority,
                        "app_name": self.app_name,
                        "app_data": self.app_data,
                    },
                    "creationtime": self.creationtime,
                    "language": self.language,
                },
                separators=(",", ":"),
            )
        return self._json


@dataclass(slots=True, eq=False)
class Bridge:
    """A Stasis bridge (``bridge_class`` stasis, ``creator`` Stasis)."""

    id: str
    bridge_type: str  # "holding" or "mixing"
    name: str
    creationtime: str
    channels: list[str] = field(default_factory=list)
    technology: str = "simple_bridge"
    moh_class: str | None = None
    # Which app is subscribed through which channel: a channel subscribes its app on entering and
    # unsubscribes when moved out, but not when it leaves by hanging up (ari_bridge_move).
    subs: dict[str, set[str]] = field(default_factory=dict)

    def json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "technology": self.technology,
                "bridge_type": self.bridge_type,
                "bridge_class": "stasis",
                "creator": "Stasis",
                "name": self.name,
                "channels": self.channels,
                "creationtime": self.creationtime,
                "video_mode": "talker",
            },
            separators=(",", ":"),
        )

    def subscribed_apps(self) -> list[str]:
        return [app for app, refs in self.subs.items() if refs]


@dataclass(slots=True, eq=False)
class Playback:
    """A playback on a channel; one id for the whole media list."""

    id: str
    channel_id: str
    media: list[str]
    language: str
    index: int = 0
    state: str = "queued"
    timer: Timer | None = None
    remaining_s: float = 0.0
    started_at: float = 0.0

    def json(self, state: str | None = None) -> str:
        body: dict[str, object] = {"id": self.id, "media_uri": self.media[self.index]}
        if self.index + 1 < len(self.media):
            body["next_media_uri"] = self.media[self.index + 1]
        body["target_uri"] = f"channel:{self.channel_id}"
        body["language"] = self.language
        body["state"] = state or self.state
        return json.dumps(body, separators=(",", ":"))


@dataclass(slots=True, eq=False)
class LiveRecording:
    """A recording in progress (``/recordings/live/{name}``)."""

    name: str
    format: str
    channel_id: str
    max_duration_s: int
    max_silence_s: int
    beep: bool
    terminate_on: str  # "none", "any", "*" or "#"
    if_exists: str
    state: str = "queued"
    recorded_s: float = 0.0  # time recorded so far, pauses excluded
    resumed_at: float | None = None  # monotonic time the current unpaused stretch began
    timer: Timer | None = None
    duration: int | None = None
    talking: int | None = None
    muted: bool = False
    cause: str | None = None

    def json(self) -> str:
        body: dict[str, object] = {
            "name": self.name,
            "format": self.format,
            "state": self.state,
            "target_uri": f"channel:{self.channel_id}",
        }
        if self.duration is not None:
            body["duration"] = self.duration
            # res_stasis_recording reports the energy split only when silence detection ran.
            if self.talking is not None:
                body["talking_duration"] = self.talking
                body["silence_duration"] = self.duration - self.talking
        if self.cause is not None:
            body["cause"] = self.cause
        return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class StoredRecording:
    """A finished recording on the spool: the bytes ``GET /recordings/stored/{name}/file`` returns."""

    name: str
    format: str
    data: bytes

    @property
    def duration_s(self) -> float:
        return max(len(self.data) - 44, 0) / PCM_BYTES_PER_S


@dataclass(slots=True)
class _AppRegistration:
    sink: Callable[[str], None]


@dataclass(frozen=True, slots=True)
class EventFilter:
    """An application's event filter, each list as Asterisk keeps it: the objects given (``{"type": ...}``)."""

    allowed: tuple[dict[str, object], ...] = ()
    disallowed: tuple[dict[str, object], ...] = ()


def _filter_list(
    body: object, key: str, current: tuple[dict[str, object], ...]
) -> tuple[dict[str, object], ...] | None:
    """One list of an eventFilter body (res/stasis/app.c ``app_event_filter_set``); ``None``: refused."""
    if body is None:
        return ()  # no body resets both lists
    value: object = body
    if isinstance(body, dict):
        if not body:
            return ()  # an empty object resets this list
        if key not in body:
            return current  # the other list was given: this one is left as it is
        value = body[key]  # JSON null here is refused, like any other non-array
    if not isinstance(value, list):
        return None
    entries: list[dict[str, object]] = []
    for entry in value:
        kind = entry.get("type") if isinstance(entry, dict) else None
        if not isinstance(kind, str) or not kind:
            return None
        entries.append(entry)
    return tuple(entries)


def _event_type(text: str) -> str:
    """The ``type`` of an event's JSON text (the first ``"type":"`` key: values cannot hold a bare quote)."""
    start = text.find('"type":"')
    if start < 0:
        return ""
    start += 8
    return text[start : text.find('"', start)]


def wav_bytes(pcm: bytes) -> bytes:
    """A RIFF/WAVE file around 16-bit 8 kHz mono PCM, with the 44-byte header Asterisk writes."""
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(pcm))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 8000, PCM_BYTES_PER_S, 2, 16)
        + b"data"
        + struct.pack("<I", len(pcm))
        + pcm
    )


def _tone_pcm(seconds: float) -> bytes:
    """A quiet 440 Hz tone standing in for speech when the test gave no PCM of its own."""
    period = [int(3000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(400)]
    one = struct.pack(f"<{len(period)}h", *period)  # 400 samples = 50 ms
    n = int(seconds * PCM_BYTES_PER_S) // 2 * 2
    return (one * (n // len(one) + 1))[:n]


def parse_caller_id(text: str) -> tuple[str, str]:
    """``Queue <5551000>`` -> ("Queue", "5551000"); a bare number has an empty name."""
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].partition("<")
        return name.strip().strip('"').strip(), number.strip()
    if text.replace("+", "").isdigit():
        return "", text
    return text.strip('"'), ""


# --------------------------------------------------------------------------------------------- PBX


class Pbx:
    """The simulated Asterisk's state machine and event source.

    :param scheduler: time and timers; a :class:`VirtualScheduler` by default.
    :param seed: seeds ids (bridge and playback UUIDs, SIP Call-IDs) for reproducible runs.
    :param inbound_tech: technology of inbound channel names (``PJSIP/trunk-00000001``).
    :param default_sound_s: how long a sound missing from :attr:`sounds` plays; ``None`` (the default,
        as on a real Asterisk) makes it a missing file.
    """

    def __init__(
        self,
        *,
        scheduler: Scheduler | None = None,
        seed: int = 0,
        asterisk_id: str = DEFAULT_ASTERISK_ID,
        inbound_tech: str = "PJSIP",
        inbound_trunk: str = "trunk",
        default_sound_s: float | None = None,
    ) -> None:
        self.scheduler: Scheduler = scheduler or VirtualScheduler()
        self.asterisk_id = asterisk_id
        self.inbound_tech = inbound_tech
        self.inbound_trunk = inbound_trunk
        #: Duration of a sound missing from :attr:`sounds`; ``None`` makes unknown sounds fail.
        self.default_sound_s = default_sound_s
        self.sounds: dict[str, float | None] = dict(DEFAULT_SOUNDS)
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.playbacks: dict[str, Playback] = {}
        self.live_recordings: dict[str, LiveRecording] = {}
        self.stored_recordings: dict[str, StoredRecording] = {}
        self.endpoints: dict[str, EndpointConfig] = {}
        self.dialplan: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.dialplan_log: deque[DialplanVisit] = deque(maxlen=10_000)
        self.media_log: deque[MediaHeard] = deque(maxlen=10_000)
        self.global_variables: dict[str, str] = {}
        self.startup_time = ari_timestamp(self.scheduler.now())
        self._rng = random.Random(seed)
        self._apps: dict[str, _AppRegistration] = {}
        # Event filters by application (PUT /applications/{name}/eventFilter): they belong to the
        # Stasis app object, which outlives its WebSocket while channels or bridges still hold it.
        self._filters: dict[str, EventFilter] = {}
        self._observers: list[Callable[[PbxChange], None]] = []
        self._dial_policy: DialPolicy | None = None
        self._seq = 0
        self._tech_seq: dict[str, int] = {}
        self._ts_ms = -1
        self._ts_text = ""
        self._aid = json.dumps(asterisk_id)

    # ------------------------------------------------------------------ applications and sinks

    def register_app(self, name: str, sink: Callable[[str], None]) -> None:
        """Give ``name`` to a new WebSocket. The newer socket wins: the older one gets ``ApplicationReplaced``.

        As in res/stasis/app.c ``app_update``: the old socket is not closed, it just stops getting
        the application's events.
        """
        old = self._apps.get(name)
        if old is not None:
            if self._event_allowed(name, "ApplicationReplaced"):
                old.sink(
                    f'{{"type":"ApplicationReplaced","timestamp":"{self._ts()}",'
                    f'"application":{json.dumps(name)},"asterisk_id":{self._aid}}}'
                )
        elif not self._app_in_use(name):
            # A new app object (res_stasis.c destroys an unregistered app once nothing holds it):
            # it starts without filters.
            self._filters.pop(name, None)
        self._apps[name] = _AppRegistration(sink)

    def unregister_app(self, name: str, sink: Callable[[str], None] | None = None) -> None:
        """Drop ``name`` (only if ``sink`` still holds it): its channels stay, their events are lost."""
        reg = self._apps.get(name)
        if reg is not None and (sink is None or reg.sink is sink):
            del self._apps[name]

    def app_registered(self, name: str) -> bool:
        return name in self._apps

    def set_event_filter(self, name: str, body: object) -> bool:
        """``PUT /applications/{name}/eventFilter``: ``False`` for a body Asterisk refuses (400).

        As res/stasis/app.c ``stasis_app_event_filter_set``: ``disallowed`` is set first, then
        ``allowed``, each only when its key is in the body (an empty or absent body resets both; a
        JSON array is taken as both lists). A list that is not an array, or an entry without a
        string ``type``, is refused, and what was set before the refusal stays set.
        """
        current = self._filters.get(name, EventFilter())
        disallowed = _filter_list(body, "disallowed", current.disallowed)
        if disallowed is None:
            return False
        current = EventFilter(allowed=current.allowed, disallowed=disallowed)
        self._filters[name] = current
        allowed = _filter_list(body, "allowed", current.allowed)
        if allowed is None:
            return False
        self._filters[name] = EventFilter(allowed=allowed, disallowed=disallowed)
        return True

    def _event_allowed(self, app: str, event_type: str) -> bool:
        """res/stasis/app.c ``stasis_app_event_allowed``: not disallowed, and allowed (an empty
        ``allowed`` list allows everything)."""
        rules = self._filters.get(app)
        if rules is None:
            return True
        if any(entry.get("type") == event_type for entry in rules.disallowed):
            return False
        return not rules.allowed or any(entry.get("type") == event_type for entry in rules.allowed)

    def _app_in_use(self, name: str) -> bool:
        return any(c.app == name for c in self.channels.values()) or any(
            b.subs.get(name) for b in self.bridges.values()
        )

    def app_names(self) -> list[str]:
        return list(self._apps)

    def app_json(self, name: str) -> str:
        """``GET /applications/{name}``: channels and bridges the application is subscribed to."""
        return json.dumps(
            {
                "name": name,
                "channel_ids": [c.id for c in self.channels.values() if c.app == name and c.subscribed],
                "bridge_ids": [b.id for b in self.bridges.values() if b.subs.get(name)],
                "endpoint_ids": [],
                "device_names": [],
                "events_allowed": list(self._filters.get(name, EventFilter()).allowed),
                "events_disallowed": list(self._filters.get(name, EventFilter()).disallowed),
            },
            separators=(",", ":"),
        )

    def observe(self, observer: Callable[[PbxChange], None]) -> None:
        """Call ``observer`` synchronously on every :class:`PbxChange`."""
        self._observers.append(observer)

    def unobserve(self, observer: Callable[[PbxChange], None]) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def set_dial_policy(self, policy: DialPolicy | None) -> None:
        """Let ``policy(endpoint)`` override the endpoint configuration on each originate."""
        self._dial_policy = policy

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        """Schedule ``callback`` on the simulator's time (virtual or wall clock)."""
        return self.scheduler.call_later(delay_s, callback)

    def run_timers(self, seconds: float) -> int:
        """Move virtual time forward by ``seconds``, firing due timers in order; returns how many fired."""
        scheduler = self._virtual()
        target = scheduler.monotonic() + seconds
        fired = 0
        while scheduler.fire_next(target):
            fired += 1
        scheduler.set_time(target)
        return fired

    def _virtual(self) -> VirtualScheduler:
        if not isinstance(self.scheduler, VirtualScheduler):
            raise SimulatorError("simulated time only moves with a VirtualScheduler")
        return self.scheduler

    # ------------------------------------------------------------------ configuration

    def set_endpoint(
        self,
        name: str,
        *,
        behaviour: EndpointBehaviour | str = EndpointBehaviour.ANSWER,
        answer_after_s: float = 1.0,
        ring_after_s: float = 0.0,
        context: str = "default",
    ) -> None:
        """Register (or reconfigure) an endpoint such as ``PJSIP/agent1``."""
        tech, _, resource = name.partition("/")
        if not tech or not resource:
            raise SimulatorError(f"endpoint must be TECH/resource: {name!r}")
        self.endpoints[name] = EndpointConfig(
            behaviour=EndpointBehaviour(behaviour),
            answer_after_s=answer_after_s,
            ring_after_s=ring_after_s,
            context=context,
        )

    def remove_endpoint(self, name: str) -> None:
        self.endpoints.pop(name, None)

    def add_extension(self, context: str, exten: str, steps: Sequence[tuple[str, str]]) -> None:
        """Define ``exten`` in ``context`` as (application, data) steps at priorities 1, 2, ...

        Understood: ``Stasis``, ``Answer``, ``Set`` (``VAR=value``), ``Wait`` (seconds), ``Playback``
        (a sound), ``Hangup`` (cause); anything else (``NoOp``...) just moves on.
        """
        self.dialplan[(context, exten)] = list(steps)

    def set_sound(self, name: str, duration_s: float | None) -> None:
        """Declare a sound's duration; ``None`` makes it a missing file (PlaybackFinished ``failed``)."""
        self.sounds[name] = duration_s

    def set_caller_audio(self, channel_id: str, talk_s: float | None, pcm: bytes | None = None) -> None:
        """What the far end sends while a recording runs: speech for ``talk_s`` seconds, then nothing.

        ``None`` means no RTP at all, the captured SIPp case: recordings come out empty (duration 0,
        a 44-byte file). ``pcm`` (16-bit 8 kHz mono) is what the stored file will contain.
        """
        channel = self._get(channel_id)
        channel.talk_s = talk_s
        channel.talk_pcm = pcm

    # ------------------------------------------------------------------ helpers

    def _ts(self) -> str:
        now = self.scheduler.now()
        ms = int(now.timestamp() * 1000)
        if ms != self._ts_ms:
            self._ts_ms, self._ts_text = ms, ari_timestamp(now)
        return self._ts_text

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _next_channel_id(self) -> str:
        uid = f"{int(self.scheduler.now().timestamp())}.{self._seq}"
        self._seq += 1
        return uid

    def _next_name(self, tech: str, resource: str) -> str:
        # chan_sip and chan_pjsip number channels with one counter per driver, in 8 hex digits.
        n = self._tech_seq.get(tech, 0)
        self._tech_seq[tech] = n + 1
        return f"{tech}/{resource}-{n:08x}"

    def _get(self, channel_id: str) -> Channel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise SimulatorError(f"no channel {channel_id!r}") from None

    def _notify(self, kind: str, channel_id: str, bridge_id: str | None = None) -> None:
        if self._observers:
            change = PbxChange(kind, channel_id, bridge_id)
            for observer in self._observers:
                observer(change)

    def _publish(self, app: str, text: str) -> None:
        reg = self._apps.get(app)
        if reg is not None:
            if app in self._filters and not self._event_allowed(app, _event_type(text)):
                return
            reg.sink(text)

    def _chan_event(self, channel: Channel, type_: str, pre: str = "", mid: str = "") -> None:
        """Emit a channel event; ``pre`` holds fields Asterisk puts before ``type``, ``mid`` after ``timestamp``."""
        if not channel.subscribed or channel.app is None:
            return
        self._publish(
            channel.app,
            f'{{{pre}"type":"{type_}","timestamp":"{self._ts()}",{mid}"channel":{channel.json()},'
            f'"asterisk_id":{self._aid},"application":{_q(channel.app)}}}',
        )

    def _varset(self, channel: Channel, name: str, value: str) -> None:
        channel.variables[name] = value
        # ChannelVarset puts ``variable`` and ``value`` before ``type`` (key order is not stable in ARI).
        quoted = _QUOTED_VALUES.get(value) or json.dumps(value)
        self._chan_event(channel, "ChannelVarset", f'"variable":{_q(name)},"value":{quoted},')

    def _bridge_event(self, bridge: Bridge, type_: str, channel: Channel | None) -> None:
        apps = bridge.subscribed_apps()
        if channel is not None and channel.subscribed and channel.app is not None and channel.app not in apps:
            apps.append(channel.app)
        if not apps:
            return
        body = f'"bridge":{bridge.json()},'
        if channel is not None:
            body += f'"channel":{channel.json()},'
        ts = self._ts()
        for app in apps:
            self._publish(
                app,
                f'{{"type":"{type_}","timestamp":"{ts}",{body}"asterisk_id":{self._aid},"application":{_q(app)}}}',
            )

    def _dial_event(self, channel: Channel, dialstatus: str) -> None:
        # Dial carries the dialled channel under ``peer``; without a calling channel there is no ``caller``,
        # and ``dialstring`` is the resource only (no technology).
        if not channel.subscribed or channel.app is None:
            return
        self._publish(
            channel.app,
            f'{{"type":"Dial","timestamp":"{self._ts()}","dialstatus":"{dialstatus}","forward":"",'
            f'"dialstring":{json.dumps(channel.dialstring)},"peer":{channel.json()},'
            f'"asterisk_id":{self._aid},"application":{_q(channel.app)}}}',
        )

    def _set_state(self, channel: Channel, state: ChannelState) -> None:
        if channel.state is state:
            return
        channel.state = state
        channel.touch()
        self._chan_event(channel, "ChannelStateChange")

    def _bridge_peer(self, channel: Channel) -> Channel | None:
        """The other party of a two-party mixing bridge, if the channel is in one."""
        if channel.bridge_id is None:
            return None
        bridge = self.bridges[channel.bridge_id]
        if bridge.bridge_type != "mixing" or len(bridge.channels) != 2:
            return None
        other = bridge.channels[0] if bridge.channels[1] == channel.id else bridge.channels[1]
        return self.channels.get(other)

    def _report_qos(self, channel: Channel, peer: Channel | None) -> None:
        """RTPAUDIOQOS* once per channel; with a bridged peer each is followed by the peer's *BRIDGED copy."""
        if channel.qos_reported:
            return
        channel.qos_reported = True
        for suffix in _QOS_SUFFIXES:
            value = _QOS_VALUES[suffix]
            self._varset(channel, f"RTPAUDIOQOS{suffix}", value)
            if peer is not None:
                self._varset(peer, f"RTPAUDIOQOS{suffix}BRIDGED", value)

    # ------------------------------------------------------------------ inbound calls (control API)

    def incoming_call(
        self,
        caller: str = "+14155550100",
        *,
        caller_name: str = "",
        exten: str = "3000",
        app_args: Iterable[str] = (),
        context: str = "incoming",
        app: str = STASIS_APP,
        answered: bool = True,
    ) -> ChannelId:
        """A call arrives from the trunk and reaches ``Stasis(app,args)`` (``StasisStart``).

        Unless ``(context, exten)`` is defined with :meth:`add_extension`, the dialplan is
        ``NoOp, Answer, Stasis(app,args)`` (priority 3, as captured) or, with ``answered=False``,
        ``NoOp, Stasis(app,args)`` and the channel stays in state ``Ring``.

        Returns the channel id; its ``entered_stasis`` is False when no WebSocket holds ``app``: then,
        as on a real Asterisk, ``Stasis()`` fails, the dialplan goes on and hangs the call up, and
        nothing reaches any application.
        """
        now = self._ts()
        args = list(app_args)
        channel = Channel(
            id=self._next_channel_id(),
            name=self._next_name(self.inbound_tech, self.inbound_trunk),
            tech=self.inbound_tech,
            resource=self.inbound_trunk,
            state=ChannelState.RING,
            protocol_id=f"{self._rng.getrandbits(32):08x}-{self._rng.getrandbits(16):04x}@127.0.0.1",
            caller_name=caller_name,
            caller_number=caller,
            connected_name="",
            connected_number="",
            context=context,
            exten=exten,
            priority=1,
            app_name="",
            app_data="",
            creationtime=now,
        )
        self.channels[channel.id] = channel
        if (context, exten) not in self.dialplan:
            stasis = ",".join([app, *args])
            steps = (
                [("NoOp", ""), ("Answer", ""), ("Stasis", stasis)]
                if answered
                else [("NoOp", ""), ("Stasis", stasis)]
            )
            self._run_steps(channel, steps, 1)
        else:
            self._run_dialplan(channel, context, exten, 1)
        return ChannelId(channel.id, entered_stasis=channel.in_stasis)

    def press(self, channel_id: str, digits: str, *, duration_ms: int = 100) -> None:
        """The far end sends DTMF: one ``ChannelDtmfReceived`` per digit, at the digit's end.

        A digit in a running recording's ``terminateOn`` is still delivered, then ends the recording.
        Digits do not stop playbacks.
        """
        channel = self._get(channel_id)
        for digit in digits:
            if digit not in DTMF_DIGITS:
                raise SimulatorError(f"not a DTMF digit: {digit!r}")
        for digit in digits:
            if channel.id not in self.channels:
                return
            self._chan_event(
                channel, "ChannelDtmfReceived", mid=f'"digit":"{digit}","duration_ms":{duration_ms},'
            )
            current = channel.media[0] if channel.media else None
            if isinstance(current, LiveRecording) and current.state in ("recording", "paused"):
                term = current.terminate_on
                if (term == "any") or (term == digit):
                    self._finish_recording(current, keep=True)

    def hangup(self, channel_id: str, cause: int = 16) -> None:
        """The far end hangs up (a caller's BYE, an agent's BYE, or a reject while ringing)."""
        channel = self._get(channel_id)
        if channel.originated and channel.state is not ChannelState.UP:
            self._remote_reject(channel, cause)
            return
        self._hangup(channel, by_app=False, cause=cause)

    # ------------------------------------------------------------------ dialplan

    def _run_dialplan(self, channel: Channel, context: str, exten: str, priority: int) -> None:
        steps = self.dialplan.get((context, exten))
        channel.context, channel.exten = context, exten
        channel.touch()
        if steps is None:
            self.dialplan_log.append(DialplanVisit(channel.id, context, exten, priority, "", ""))
            self._hangup(channel, by_app=False, cause=16)
            return
        self._run_steps(channel, steps, priority)

    def _run_steps(self, channel: Channel, steps: Sequence[tuple[str, str]], priority: int) -> None:
        """Run dialplan steps from ``priority`` until one waits, enters Stasis or hangs up."""
        while channel.id in self.channels:
            if priority > len(steps) or priority < 1:
                self._hangup(channel, by_app=False, cause=16)  # ran off the end: the PBX hangs up
                return
            app_name, data = steps[priority - 1]
            channel.priority, channel.app_name, channel.app_data = priority, app_name, data
            channel.touch()
            self.dialplan_log.append(
                DialplanVisit(channel.id, channel.context, channel.exten, priority, app_name, data)
            )
            key = app_name.lower()
            if key == "stasis":
                if self._enter_stasis(channel, data):
                    return
                channel.variables["STASISSTATUS"] = "FAILED"
            elif key == "answer":
                self._set_state(channel, ChannelState.UP)
            elif key == "hangup":
                self._hangup(channel, by_app=False, cause=_atoi(data) or 16)
                return
            elif key == "set":
                name, _, value = data.partition("=")
                self._varset(channel, name.strip(), value)
            elif key in ("wait", "playback"):
                delay = _atof(data) if key == "wait" else self._dialplan_playback_s(data)
                resume = priority + 1
                channel.dialplan_timer = self.scheduler.call_later(
                    delay, functools.partial(self._run_steps, channel, steps, resume)
                )
                return
            priority += 1

    def _dialplan_playback_s(self, data: str) -> float:
        """How long ``Playback(a&b)`` plays: app_playback stops at the first missing file and goes on."""
        total = 0.0
        for sound in data.split(",")[0].split("&"):
            duration = self._sound_duration(sound.strip())
            if duration is None:
                break
            total += duration
        return total

    def _enter_stasis(self, channel: Channel, data: str) -> bool:
        app, *args = data.split(",")
        if app not in self._apps:
            return False  # "Stasis app 'x' doesn't exist": Stasis() fails and the dialplan goes on
        channel.app = app
        channel.in_stasis = True
        channel.app_name, channel.app_data = "Stasis", data
        channel.touch()
        self._chan_event(channel, "StasisStart", mid=f'"args":{json.dumps(args)},')
        self._notify("stasis_start", channel.id)
        return True

    def _leave_stasis(self, channel: Channel) -> None:
        if not channel.in_stasis:
            return
        self._chan_event(channel, "StasisEnd")
        channel.in_stasis = False
        channel.variables["STASISSTATUS"] = "SUCCESS"
        if channel.originated:
            # Originate subscribed the app explicitly, so the variable still reaches it after StasisEnd.
            self._varset(channel, "STASISSTATUS", "SUCCESS")
        self._notify("stasis_end", channel.id)

    # ------------------------------------------------------------------ REST-driven channel operations

    def answer(self, channel: Channel) -> None:
        self._set_state(channel, ChannelState.UP)

    def continue_in_dialplan(self, channel: Channel, context: str, exten: str, priority: int) -> None:
        """``POST /channels/{id}/continue``: StasisEnd, then the dialplan runs out of the app's sight."""
        self._stop_media(channel, hangup=False)
        if channel.bridge_id is not None:
            self._leave_bridge(channel, moved=True)
        self._leave_stasis(channel)
        self._run_dialplan(channel, context, exten, priority)

    def hangup_channel(self, channel: Channel, cause: int) -> None:
        """``DELETE /channels/{id}``."""
        self._hangup(channel, by_app=True, cause=cause)

    def set_variable(self, channel: Channel, name: str, value: str | None) -> None:
        """``POST /channels/{id}/variable``: a ChannelVarset, or ChannelCallerId for ``CALLERID(...)``."""
        if value is None:
            channel.variables.pop(name, None)  # no value: the variable is unset and no event is sent
            return
        func = name.upper()
        if func in ("CALLERID(NAME)", "CALLERID(NUM)", "CALLERID(NUMBER)", "CALLERID(ALL)"):
            if func == "CALLERID(NAME)":
                channel.caller_name = value
            elif func == "CALLERID(ALL)":
                channel.caller_name, channel.caller_number = parse_caller_id(value)
            else:
                channel.caller_number = value
            channel.touch()
            # Setting CALLERID() gives a ChannelCallerId event and no ChannelVarset (ari_resync).
            self._chan_event(
                channel,
                "ChannelCallerId",
                mid='"caller_presentation":0,"caller_presentation_txt":"Presentation Allowed, Not Screened",',
            )
            return
        self._varset(channel, name, value)

    def get_variable(self, channel: Channel, name: str) -> str | None:
        """A channel variable or one of the dialplan functions we model; None when unset."""
        upper = name.upper()
        functions = {
            "CALLERID(NUM)": channel.caller_number,
            "CALLERID(NUMBER)": channel.caller_number,
            "CALLERID(NAME)": channel.caller_name,
            "CALLERID(ALL)": f'"{channel.caller_name}" <{channel.caller_number}>',
            "CONNECTEDLINE(NUM)": channel.connected_number,
            "CONNECTEDLINE(NAME)": channel.connected_name,
            "CHANNEL(NAME)": channel.name,
            "CHANNEL(STATE)": channel.state.value,
            "CHANNEL(LANGUAGE)": channel.language,
            "CHANNEL(ACCOUNTCODE)": channel.accountcode,
        }
        if upper in functions:
            return functions[upper]
        builtins = {
            "UNIQUEID": channel.id,
            "CHANNEL": channel.name,
            "EXTEN": channel.exten,
            "CONTEXT": channel.context,
            "PRIORITY": str(channel.priority),
        }
        if name in channel.variables:
            return channel.variables[name]
        if name in builtins:
            return builtins[name]
        return self.global_variables.get(name)

    def is_known_function(self, name: str) -> bool:
        return name.upper().split("(", 1)[0] in ("CALLERID", "CONNECTEDLINE", "CHANNEL")

    # ------------------------------------------------------------------ hang-up

    def _hangup(self, channel: Channel, *, by_app: bool, cause: int, flag: int = SOFTHANGUP_EXPLICIT) -> None:
        if channel.id not in self.channels:
            return
        peer = self._bridge_peer(channel)
        was_up = channel.state is ChannelState.UP
        if by_app:
            # ARI's hangup sets the RTP statistics before the soft hang-up (resource_channels.c).
            self._report_qos(channel, peer)
            self._chan_event(channel, "ChannelHangupRequest", f'"cause":{flag},"soft":true,')
        else:
            if was_up and not channel.qos_reported:
                self._report_qos(channel, peer)
                if peer is not None:
                    self._report_qos(peer, channel)
            # A remote BYE on chan_sip carries no cause unless a bridged peer is there (then 16).
            pre = f'"cause":{cause},' if peer is not None else ""
            self._chan_event(channel, "ChannelHangupRequest", pre)
        self._stop_media(channel, hangup=True)
        if channel.bridge_id is not None:
            self._leave_bridge(channel, moved=False)
        self._leave_stasis(channel)
        if channel.originated:
            if not was_up and by_app:
                # The app cancelled a ringing leg: Dial NOANSWER (a timeout gives none).
                self._dial_event(channel, "NOANSWER")
            elif by_app and channel.app is not None:
                self._varset(channel, "RTPAUDIOQOS", _QOS_VALUES[""])  # chan_sip sets it again on destroy
            self._destroy(channel, cause)
        else:
            self._remove(channel)

    def _remote_reject(self, channel: Channel, cause: int) -> None:
        """The dialled endpoint refuses before answering."""
        status = {17: "BUSY", 19: "NOANSWER", 18: "NOANSWER", 34: "CONGESTION", 42: "CONGESTION"}.get(
            cause, "CHANUNAVAIL"
        )
        self._dial_event(channel, status)
        self._destroy(channel, cause)

    def _destroy(self, channel: Channel, cause: int) -> None:
        self._chan_event(
            channel,
            "ChannelDestroyed",
            mid=f'"cause":{cause},"cause_txt":{json.dumps(CAUSE_TEXT.get(cause, "Unknown"))},',
        )
        self._remove(channel)

    def _remove(self, channel: Channel) -> None:
        for timer in channel.dial_timers:
            timer.cancel()
        if channel.dialplan_timer is not None:
            channel.dialplan_timer.cancel()
        self.channels.pop(channel.id, None)
        self._notify("gone", channel.id)

    # ------------------------------------------------------------------ originate

    def originate(
        self,
        endpoint: str,
        *,
        app: str | None,
        app_args: str = "",
        caller_id: str = "",
        timeout_s: int = 30,
        variables: dict[str, str] | None = None,
        channel_id: str | None = None,
        context: str | None = None,
        extension: str | None = None,
        priority: int = 1,
    ) -> tuple[Channel, str] | None:
        """``POST /channels``: create the outbound channel and start dialling.

        Returns the channel and its snapshot at creation (state ``Down``: what the 200 carries, even
        when the far end already rang), or None when the channel cannot be created.
        """
        tech, _, resource = endpoint.partition("/")
        config = self._dial_policy(endpoint) if self._dial_policy is not None else None
        if config is None:
            config = self.endpoints.get(endpoint)
        if config is None or config.behaviour is EndpointBehaviour.UNAVAILABLE:
            return None
        name, number = parse_caller_id(caller_id) if caller_id else ("", "")
        channel = Channel(
            id=channel_id or self._next_channel_id(),
            name=self._next_name(tech, resource),
            tech=tech,
            resource=resource,
            state=ChannelState.DOWN,
            protocol_id=f"{self._rng.getrandbits(128):032x}@127.0.0.1:5060",
            caller_name=name,
            caller_number=number,
            connected_name=name,
            connected_number=number,
            context=config.context,
            exten="",
            priority=1,
            app_name="AppDial2",
            app_data="(Outgoing Line)",
            creationtime=self._ts(),
            variables=dict(variables or {}),  # set before the app subscribes: no events
            app=app,
            explicit_sub=app is not None,
            originated=True,
            dialstring=resource,
        )
        self.channels[channel.id] = channel
        created = channel.json()
        self._dial_event(channel, "")
        stasis_data = ",".join([app, app_args]) if app and app_args else (app or "")
        if config.behaviour is not EndpointBehaviour.NO_RESPONSE:
            self._later(channel, config.ring_after_s, functools.partial(self._dial_ringing, channel, config))
        if config.behaviour is EndpointBehaviour.ANSWER and (
            timeout_s <= 0 or config.answer_after_s < timeout_s
        ):
            answered = functools.partial(
                self._dial_answered, channel, stasis_data, context or "default", extension or "s", priority
            )
            self._later(channel, max(config.answer_after_s, config.ring_after_s), answered)
        if timeout_s > 0:
            channel.dial_timers.append(
                self.scheduler.call_later(timeout_s, functools.partial(self._dial_timeout, channel))
            )
        return channel, created

    def _dial_ringing(self, channel: Channel, config: EndpointConfig) -> None:
        if channel.id not in self.channels:
            return
        if config.behaviour is EndpointBehaviour.BUSY:
            self._remote_reject(channel, 17)  # 486: Dial BUSY while still Down, no Ringing
            return
        self._set_state(channel, ChannelState.RINGING)
        self._dial_event(channel, "RINGING")

    def _dial_answered(
        self, channel: Channel, stasis_data: str, context: str, exten: str, priority: int
    ) -> None:
        if channel.id not in self.channels:
            return
        self._set_state(channel, ChannelState.UP)
        self._dial_event(channel, "ANSWER")
        for timer in channel.dial_timers:
            timer.cancel()
        self._notify("answered", channel.id)
        if stasis_data:
            self._varset(channel, "STASISSTATUS", "")
            if not self._enter_stasis(channel, stasis_data):
                self._hangup(channel, by_app=False, cause=16)
        else:
            self._run_dialplan(channel, context, exten, priority)

    def _dial_timeout(self, channel: Channel) -> None:
        # The dial timeout gives only ChannelDestroyed 19: no Dial NOANSWER, no HangupRequest.
        if channel.id in self.channels and channel.state is not ChannelState.UP:
            channel.dial_timers.clear()
            self._destroy(channel, 19)

    def _later(self, channel: Channel, delay_s: float, callback: Callable[[], None]) -> None:
        if delay_s <= 0:
            callback()
        else:
            channel.dial_timers.append(self.scheduler.call_later(delay_s, callback))

    # ------------------------------------------------------------------ bridges

    def create_bridge(self, bridge_type: str, name: str, bridge_id: str | None = None) -> Bridge:
        """``POST /bridges``: 200 and no BridgeCreated event (no app is subscribed to it yet)."""
        kind = "holding" if "holding" in bridge_type.split(",") else "mixing"
        bridge = Bridge(
            id=bridge_id or self._uuid(),
            bridge_type=kind,
            name=name,
            creationtime=self._ts(),
            technology="holding_bridge" if kind == "holding" else "simple_bridge",
        )
        self.bridges[bridge.id] = bridge
        return bridge

    def add_to_bridge(self, bridge: Bridge, channels: Sequence[Channel]) -> None:
        """``addChannel``: a channel in another bridge is moved (Left there, then Entered here)."""
        for channel in channels:
            if channel.bridge_id == bridge.id:
                continue
            if channel.bridge_id is not None:
                self._leave_bridge(channel, moved=True)
            bridge.channels.append(channel.id)
            channel.bridge_id = bridge.id
            if channel.app is not None:
                bridge.subs.setdefault(channel.app, set()).add(channel.id)
            self._bridge_event(bridge, "ChannelEnteredBridge", channel)
            self._notify("entered_bridge", channel.id, bridge.id)
            if bridge.bridge_type == "mixing":
                self._retune(bridge)

    def _retune(self, bridge: Bridge) -> None:
        """What a mixing bridge does when its membership settles (ari_agent_answer)."""
        n = len(bridge.channels)
        if n > 2:
            bridge.technology = "softmix"
            return
        if n < 2:
            bridge.technology = "simple_bridge"
            return
        first, second = (self.channels[c] for c in bridge.channels)
        # Three rounds of BRIDGEPEER/BRIDGEPVTCALLID, newest channel first, with the connected-line
        # updates after rounds two and three; then the bridge goes native_rtp.
        for round_no in range(3):
            for chan, other in ((second, first), (first, second)):
                self._varset(chan, "BRIDGEPEER", other.name)
                self._varset(chan, "BRIDGEPVTCALLID", other.protocol_id)
            if round_no == 1:
                self._connect(second, first)
            elif round_no == 2:
                self._connect(first, second)
        bridge.technology = "native_rtp"

    def _connect(self, channel: Channel, other: Channel) -> None:
        channel.connected_name, channel.connected_number = other.caller_name, other.caller_number
        channel.touch()
        self._chan_event(channel, "ChannelConnectedLine")

    def _leave_bridge(self, channel: Channel, *, moved: bool) -> None:
        bridge = self.bridges.get(channel.bridge_id or "")
        channel.bridge_id = None
        if bridge is None:
            return
        if channel.variables.get("BRIDGEPEER"):
            self._varset(channel, "BRIDGEPEER", "")
            self._varset(channel, "BRIDGEPVTCALLID", "")
        bridge.channels.remove(channel.id)
        # The Left event still shows the technology of the two-party bridge (native_rtp).
        self._bridge_event(bridge, "ChannelLeftBridge", channel)
        if bridge.moh_class is not None and not bridge.channels:
            # The music-on-hold announcer (Announcer/ARI_MOH-…;2) joined with
            # AST_BRIDGE_CHANNEL_FLAG_LONELY (res_stasis.c bridge_moh_create): it leaves with the last
            # other channel and the music stops ("Stopped music on hold"); later arrivals get silence
            # until POST /bridges/{id}/moh again. Internal channels are hidden from ARI: no event.
            bridge.moh_class = None
        if bridge.bridge_type == "mixing" and len(bridge.channels) < 3:
            bridge.technology = "simple_bridge"
        if moved and channel.app is not None:
            refs = bridge.subs.get(channel.app)
            if refs is not None:
                refs.discard(channel.id)
        self._notify("left_bridge", channel.id, bridge.id)

    def start_moh(self, bridge: Bridge, moh_class: str) -> None:
        """``POST /bridges/{id}/moh``: 204 and no event (ari_answered_bridge).

        The announcer channel playing the music is internal (``AST_CHAN_TP_INTERNAL``): ARI's
        sanitizer leaves it out of ``bridge.channels`` and sends no event about it (the capture's
        snapshots list only the caller, music playing or not).
        """
        bridge.moh_class = moh_class

    def stop_moh(self, bridge: Bridge) -> bool:
        """``DELETE /bridges/{id}/moh``; False (409) when no music plays (never started, or stopped
        when the last channel left)."""
        if bridge.moh_class is None:
            return False
        bridge.moh_class = None
        return True

    def heard(self, channel_id: str) -> list[tuple[str, str]]:
        """The media items played to ``channel_id`` and how each ended (see :class:`MediaHeard`)."""
        return [(m.media_uri, m.result) for m in self.media_log if m.channel_id == channel_id]

    def hears_music(self, channel_id: str) -> bool:
        """Whether ``channel_id`` is in a bridge whose music on hold is playing (control API)."""
        channel = self.channels.get(channel_id)
        bridge = self.bridges.get(channel.bridge_id or "") if channel is not None else None
        return bridge is not None and bridge.moh_class is not None

    def remove_from_bridge(self, bridge: Bridge, channels: Sequence[Channel]) -> None:
        for channel in channels:
            if channel.bridge_id == bridge.id:
                self._leave_bridge(channel, moved=True)

    def destroy_bridge(self, bridge: Bridge) -> None:
        """``DELETE /bridges/{id}``: BridgeDestroyed only to apps still subscribed to the bridge."""
        apps = bridge.subscribed_apps()
        for channel_id in list(bridge.channels):
            channel = self.channels.get(channel_id)
            if channel is not None:
                self._leave_bridge(channel, moved=True)
        del self.bridges[bridge.id]
        if apps:
            ts = self._ts()
            body = bridge.json()
            for app in apps:
                self._publish(
                    app,
                    f'{{"type":"BridgeDestroyed","timestamp":"{ts}","bridge":{body},'
                    f'"asterisk_id":{self._aid},"application":{_q(app)}}}',
                )

    # ------------------------------------------------------------------ media: playbacks

    def _sound_duration(self, sound: str) -> float | None:
        if sound in self.sounds:
            return self.sounds[sound]
        if sound.startswith("/"):
            return _file_sound_s(sound)
        return self.default_sound_s

    def media_duration(self, uri: str) -> float | None:
        """Seconds a media URI plays, ``inf`` for tones, None when it cannot be played."""
        scheme, _, rest = uri.partition(":")
        if scheme == "sound":
            return self._sound_duration(rest)
        if scheme == "digits":
            return DIGIT_SAY_S * len(rest) if rest else None
        if scheme == "characters":
            return DIGIT_SAY_S * len(rest) if rest else None
        if scheme == "number":
            return NUMBER_WORD_S * len(rest.lstrip("-")) if rest.lstrip("-").isdigit() else None
        if scheme == "recording":
            stored = self.stored_recordings.get(rest)
            return stored.duration_s if stored is not None else None
        if scheme == "tone":
            return math.inf
        return None

    def play(self, channel: Channel, media: list[str], language: str, playback_id: str | None) -> Playback:
        playback = Playback(
            id=playback_id or self._uuid(), channel_id=channel.id, media=media, language=language
        )
        self.playbacks[playback.id] = playback
        channel.media.append(playback)
        if len(channel.media) == 1:
            self._start_media(channel)
        return playback

    def _playback_event(self, channel: Channel, type_: str, body: str) -> None:
        if channel.subscribed and channel.app is not None:
            self._publish(
                channel.app,
                f'{{"type":"{type_}","timestamp":"{self._ts()}","playback":{body},'
                f'"asterisk_id":{self._aid},"application":{_q(channel.app)}}}',
            )

    def _start_media(self, channel: Channel) -> None:
        if not channel.media:
            return
        item = channel.media[0]
        if isinstance(item, Playback):
            self._play_item(channel, item)
        else:
            self._start_recording(channel, item)

    def _play_item(self, channel: Channel, playback: Playback) -> None:
        playback.state = "playing"
        self._playback_event(channel, "PlaybackStarted", playback.json())
        duration = self.media_duration(playback.media[playback.index])
        if duration is None:
            # A missing file is no REST error: 201, then Started and Finished "failed" at once. Not
            # the last item of a list: PlaybackContinuing and the next item (res_stasis_playback.c
            # playback_final_update: failed is only reported for the last item).
            self._heard(channel, playback, "missing")
            if playback.index + 1 < len(playback.media):
                self._playback_event(channel, "PlaybackContinuing", playback.json("continuing"))
                playback.index += 1
                self._play_item(channel, playback)
                return
            self._end_playback(channel, playback, "failed")
            return
        playback.remaining_s = duration
        self._arm_playback(channel, playback)

    def _arm_playback(self, channel: Channel, playback: Playback) -> None:
        playback.started_at = self.scheduler.monotonic()
        if math.isfinite(playback.remaining_s):
            playback.timer = self.scheduler.call_later(
                playback.remaining_s, lambda: self._playback_item_done(channel, playback)
            )

    def _heard(self, channel: Channel, playback: Playback, result: str) -> None:
        self.media_log.append(MediaHeard(channel.id, playback.media[playback.index], result))

    def _playback_item_done(self, channel: Channel, playback: Playback) -> None:
        playback.timer = None
        self._heard(channel, playback, "complete")
        if playback.index + 1 < len(playback.media):
            # PlaybackContinuing carries the item that just ended; the same id plays the next item.
            self._playback_event(channel, "PlaybackContinuing", playback.json("continuing"))
            playback.index += 1
            self._play_item(channel, playback)
            return
        self._end_playback(channel, playback, "done")

    def _end_playback(
        self, channel: Channel, playback: Playback, state: str, heard: str | None = None
    ) -> None:
        if heard is not None:
            self._heard(channel, playback, heard)
        if playback.timer is not None:
            playback.timer.cancel()
            playback.timer = None
        playback.state = state
        self._playback_event(channel, "PlaybackFinished", playback.json())
        self.playbacks.pop(playback.id, None)  # GET /playbacks/{id} is 404 once it finished
        if channel.media and channel.media[0] is playback:
            channel.media.popleft()
            if channel.id in self.channels:
                self._start_media(channel)

    def stop_playback(self, playback: Playback) -> None:
        """``DELETE /playbacks/{id}``: PlaybackFinished says ``done``, not stopped."""
        channel = self.channels.get(playback.channel_id)
        if channel is None:
            self.playbacks.pop(playback.id, None)
            return
        if playback.state == "queued":
            self.playbacks.pop(playback.id, None)
            if playback in channel.media:
                channel.media.remove(playback)
            return
        self._end_playback(channel, playback, "done", heard="stopped")

    def control_playback(self, playback: Playback, operation: str) -> bool:
        """``POST /playbacks/{id}/control``; False when the playback is not playing (409)."""
        channel = self.channels.get(playback.channel_id)
        if channel is None or playback.state not in ("playing", "paused"):
            return False
        elapsed = self.scheduler.monotonic() - playback.started_at
        if operation == "pause":
            if playback.state == "playing":
                if playback.timer is not None:
                    playback.timer.cancel()
                    playback.timer = None
                playback.remaining_s = max(playback.remaining_s - elapsed, 0.0)
                playback.state = "paused"  # no event
            return True
        if operation == "unpause":
            if playback.state == "paused":
                playback.state = "playing"
                # unpause emits a fresh PlaybackStarted (ari_playback)
                self._playback_event(channel, "PlaybackStarted", playback.json())
                self._arm_playback(channel, playback)
            return True
        full = self.media_duration(playback.media[playback.index]) or 0.0
        if playback.state == "playing":
            playback.remaining_s = max(playback.remaining_s - elapsed, 0.0)
        if operation == "restart":
            playback.remaining_s = full
        elif operation == "forward":
            playback.remaining_s = max(playback.remaining_s - PLAYBACK_SKIP_S, 0.0)
        elif operation == "reverse":
            playback.remaining_s = min(playback.remaining_s + PLAYBACK_SKIP_S, full)
        if playback.state == "playing":
            if playback.timer is not None:
                playback.timer.cancel()
            self._arm_playback(channel, playback)
        return True

    def _stop_media(self, channel: Channel, *, hangup: bool) -> None:
        """End the channel's media: a hang-up fails the playback, a recording still completes."""
        queued = list(channel.media)[1:]
        for item in queued:
            channel.media.remove(item)
            if isinstance(item, Playback):
                self.playbacks.pop(item.id, None)
            else:
                self.live_recordings.pop(item.name, None)
        if not channel.media:
            return
        current = channel.media[0]
        if isinstance(current, Playback):
            if hangup:
                # Between ChannelHangupRequest and StasisEnd: PlaybackFinished "failed".
                self._end_playback(channel, current, "failed", heard="cut")
            else:
                self._end_playback(channel, current, "done", heard="stopped")
        else:
            # res_stasis_recording marks the recording complete whatever ended it (hang-up included).
            self._finish_recording(current, keep=True)

    # ------------------------------------------------------------------ media: recordings

    def record(
        self,
        channel: Channel,
        *,
        name: str,
        fmt: str,
        max_duration_s: int,
        max_silence_s: int,
        beep: bool,
        terminate_on: str,
        if_exists: str,
    ) -> LiveRecording:
        recording = LiveRecording(
            name=name,
            format=fmt,
            channel_id=channel.id,
            max_duration_s=max_duration_s,
            max_silence_s=max_silence_s,
            beep=beep,
            terminate_on=terminate_on,
            if_exists=if_exists,
        )
        self.live_recordings[name] = recording
        channel.media.append(recording)
        if len(channel.media) == 1:
            self._start_recording(channel, recording)
        return recording

    def _recording_event(self, channel: Channel, type_: str, recording: LiveRecording) -> None:
        if channel.subscribed and channel.app is not None:
            self._publish(
                channel.app,
                f'{{"type":"{type_}","timestamp":"{self._ts()}","recording":{recording.json()},'
                f'"asterisk_id":{self._aid},"application":{_q(channel.app)}}}',
            )

    def _start_recording(self, channel: Channel, recording: LiveRecording) -> None:
        if channel.bridge_id is not None:
            # res_stasis_recording refuses bridged channels after the 201: RecordingFailed with a cause.
            recording.state, recording.cause = "failed", "Cannot record channel while in bridge"
            self.live_recordings.pop(recording.name, None)
            self._recording_event(channel, "RecordingFailed", recording)
            channel.media.popleft()
            self._start_media(channel)
            return
        recording.state = "recording"
        # RecordingStarted is sent at once, before the beep; the max-duration clock starts after it.
        self._recording_event(channel, "RecordingStarted", recording)
        recording.resumed_at = self.scheduler.monotonic() + (BEEP_S if recording.beep else 0.0)
        self._arm_recording(channel, recording)

    def _arm_recording(self, channel: Channel, recording: LiveRecording) -> None:
        if recording.timer is not None:
            recording.timer.cancel()
            recording.timer = None
        limits: list[float] = []
        if recording.max_duration_s > 0:
            limits.append(recording.max_duration_s)
        if recording.max_silence_s > 0 and channel.talk_s is not None:
            limits.append(channel.talk_s + recording.max_silence_s)
        if not limits or recording.resumed_at is None:
            return
        left = min(limits) - recording.recorded_s
        start = recording.resumed_at - self.scheduler.monotonic()
        recording.timer = self.scheduler.call_later(
            max(start, 0.0) + max(left, 0.0), lambda: self._finish_recording(recording, keep=True)
        )

    def _recorded_now(self, recording: LiveRecording) -> float:
        if recording.resumed_at is None:
            return recording.recorded_s
        return recording.recorded_s + max(self.scheduler.monotonic() - recording.resumed_at, 0.0)

    def pause_recording(self, recording: LiveRecording, paused: bool) -> None:
        """Pause (POST .../pause) or unpause (DELETE .../pause): 204 and no event."""
        channel = self.channels.get(recording.channel_id)
        if channel is None:
            return
        if paused and recording.state == "recording":
            recording.recorded_s = self._recorded_now(recording)
            recording.resumed_at = None
            recording.state = "paused"
            if recording.timer is not None:
                recording.timer.cancel()
                recording.timer = None
        elif not paused and recording.state == "paused":
            recording.resumed_at = self.scheduler.monotonic()
            recording.state = "recording"
            self._arm_recording(channel, recording)

    def _finish_recording(self, recording: LiveRecording, *, keep: bool) -> None:
        """Every ending (max duration, silence, terminateOn, stop, cancel, hang-up) says ``done``."""
        if recording.timer is not None:
            recording.timer.cancel()
            recording.timer = None
        channel = self.channels.get(recording.channel_id)
        recorded = self._recorded_now(recording)
        talk_s = channel.talk_s if channel is not None else None
        # Only received audio is written: no RTP gives an empty file; speech stops the file growing.
        kept = 0.0 if (talk_s is None or not keep) else min(recorded, talk_s)
        recording.duration = int(kept)
        if recording.max_silence_s > 0:
            recording.talking = int(kept)
        recording.state = "done"
        self.live_recordings.pop(recording.name, None)
        if keep:
            pcm = b""
            if kept > 0:
                n = int(kept * PCM_BYTES_PER_S) // 2 * 2
                source = channel.talk_pcm if channel is not None else None
                pcm = source[:n] if source is not None else _tone_pcm(kept)
            previous = self.stored_recordings.get(recording.name)
            if recording.if_exists == "append" and previous is not None:
                pcm = previous.data[44:] + pcm
            self.stored_recordings[recording.name] = StoredRecording(
                recording.name, recording.format, wav_bytes(pcm)
            )
        else:
            self.stored_recordings.pop(recording.name, None)  # cancel deletes the file
        if channel is None:
            return
        self._recording_event(channel, "RecordingFinished", recording)
        if channel.media and channel.media[0] is recording:
            channel.media.popleft()
            self._start_media(channel)

    def stop_recording(self, recording: LiveRecording, *, keep: bool) -> None:
        """``POST .../stop`` (keep) or ``DELETE /recordings/live/{name}`` (cancel: the file is deleted)."""
        channel = self.channels.get(recording.channel_id)
        if recording.state == "queued" and channel is not None:
            channel.media.remove(recording)
            self.live_recordings.pop(recording.name, None)
            return
        self._finish_recording(recording, keep=keep)

    # ------------------------------------------------------------------ restart

    def shutdown(self) -> None:
        """``core restart now``: channels in Stasis get HangupRequest (cause 4, soft) and StasisEnd."""
        for channel in list(self.channels.values()):
            if channel.in_stasis:
                self._chan_event(
                    channel, "ChannelHangupRequest", f'"cause":{SOFTHANGUP_SHUTDOWN},"soft":true,'
                )
                self._chan_event(channel, "StasisEnd")
            for timer in channel.dial_timers:
                timer.cancel()
            if channel.dialplan_timer is not None:
                channel.dialplan_timer.cancel()
            for item in channel.media:
                if item.timer is not None:
                    item.timer.cancel()
        gone = list(self.channels)
        self.channels.clear()
        self.bridges.clear()
        self.playbacks.clear()
        self.live_recordings.clear()
        self._apps.clear()
        self._filters.clear()
        for channel_id in gone:
            self._notify("gone", channel_id)

    def boot(self) -> None:
        """Asterisk comes back: channel ids restart at ``.0`` and SIP names at ``-00000000``."""
        self._seq = 0
        self._tech_seq.clear()
        self.startup_time = ari_timestamp(self.scheduler.now())


class ChannelId(str):
    """A channel id from :meth:`Pbx.incoming_call`; ``entered_stasis`` says whether ``Stasis()`` worked."""

    entered_stasis: bool

    def __new__(cls, value: str, *, entered_stasis: bool = True) -> ChannelId:
        self = super().__new__(cls, value)
        self.entered_stasis = entered_stasis
        return self


@functools.lru_cache(maxsize=256)
def _q(text: str) -> str:
    """JSON string literal of an application or variable name (cached: few names, used per event)."""
    return json.dumps(text)


def _atoi(text: str) -> int:
    """C ``atoi``: the leading integer, 0 when there is none (ARI parses numeric params this way)."""
    text = text.strip()
    end = 0
    if text[:1] in ("-", "+"):
        end = 1
    while end < len(text) and text[end].isdigit():
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0


def _atof(text: str) -> float:
    try:
        return float(text.strip() or 0)
    except ValueError:
        return 0.0


def atoi(text: str) -> int:
    """Public alias of the C-like integer parse used for ARI parameters."""
    return _atoi(text)


#: Bytes a second of the headerless formats Asterisk plays from a file, by extension.
_RAW_BYTES_PER_S: Final = {".sln": 16000, ".ulaw": 8000, ".alaw": 8000, ".gsm": 1650}


def _file_sound_s(path: str) -> float | None:
    """How long Asterisk plays ``sound:/absolute/path``: the first file of that name with a format
    extension it knows (``.wav`` duration from its header), else ``None``: a missing file, which
    Asterisk reports as a failed playback, never as a REST error."""
    wav = Path(path + ".wav")
    if wav.is_file():
        try:
            with wave.open(str(wav), "rb") as audio:
                return audio.getnframes() / audio.getframerate()
        except (wave.Error, EOFError, OSError):
            return None  # Asterisk cannot open it either: the playback fails
    for extension, per_s in _RAW_BYTES_PER_S.items():
        raw = Path(path + extension)
        if raw.is_file():
            return raw.stat().st_size / per_s
    return None
