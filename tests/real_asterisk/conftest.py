"""Real-Asterisk tier: the system scenarios with real SIP calls into a real Asterisk.

The whole app (``build_app``) runs against the Asterisk named by ``CALLCENTER_ARI_URL``, with its own
SQLite in ``tmp_path`` and its own ``redis-server`` (as in ``tests/system``). SIPp plays the caller (a UAC
per call, dialling the queue's extension through the trunk) and the agents' phones (a UAS per agent that
answers after N ms, never answers, or answers busy), and the customer a callback dials; every SIPp is an
asyncio subprocess bound to the configured addresses and is killed (by its pid) at teardown. The
scenarios live in ``sipp/``. A caller who presses keys or speaks (:class:`CuedCaller`) and the customer's
phone (:class:`CustomerPhone`) act when the test cues them (:func:`_send_cue`), once it has seen over ARI
what a person would react to; their RTP comes from pcaps written at run time (``rtp_pcap.py``).

Environment, read when this module is imported (the autouse ``clean_environ`` fixture hides
``CALLCENTER_*`` variables from the tests themselves):

``CALLCENTER_ARI_URL``                 the Asterisk's ARI base URL, e.g. ``http://127.0.0.1:8088``; unset:
                                       the whole tier is skipped (so it is when ``sipp`` is not on PATH)
``CALLCENTER_ARI_USERNAME``            ARI user (default ``callcenter``)
``CALLCENTER_ARI_PASSWORD``            ARI password (default empty)
``CALLCENTER_ARI_APP``                 Stasis application of the dialplan (default ``callcenter``)
``CALLCENTER_TEST_SIP_TARGET``         host:port SIPp sends the caller's INVITE to (default
                                       ``127.0.0.1:5060``)
``CALLCENTER_TEST_SIP_CALLER_IP``      address the caller's SIPp binds to (default ``127.0.0.1``)
``CALLCENTER_TEST_SIP_CALLER_PORT``    port the caller's SIPp sends from: the trunk peer Asterisk matches
                                       (default ``5070``)
``CALLCENTER_TEST_AGENT_ENDPOINTS``    the agents' endpoints and where their phones listen,
                                       ``<endpoint>=<host>:<port>,...`` (default
                                       ``SIP/agent1=127.0.0.1:5081,SIP/agent2=127.0.0.1:5082``; chan_sip
                                       ``SIP/...`` or PJSIP ``PJSIP/...``); at least two
``CALLCENTER_TEST_QUEUE``              the queue the entry extension names in ``Stasis(<app>,<queue>)``
                                       (default ``sales``)
``CALLCENTER_TEST_QUEUE_EXTEN``        extension that answers, then enters ``Stasis(<app>,<queue>)``
                                       (default ``100``)
``CALLCENTER_TEST_UNKNOWN_QUEUE_EXTEN`` extension entering ``Stasis`` with a queue the service does not
                                       know, with dialplan after it (default ``102``)
``CALLCENTER_TEST_AGI_HOST``           address the app's FastAGI server binds to and Asterisk connects to
                                       (default ``127.0.0.1``); each test sets the Asterisk's global
                                       ``CC_AGI_URL`` (and ``CC_OUTCOME_HOOK``, ``CC_API_URL``) over ARI
``CALLCENTER_TEST_AGI_TOKEN_FILE``     the token file the Asterisk's ``callcenter-outcome`` AGI program
                                       reads; the classic-AGI scenarios write the test's token there
                                       (unset: they are skipped)
``CALLCENTER_TEST_CUSTOMER_DIAL``      dial string of a customer a callback dials, ``{number}`` the E.164
                                       number (default ``SIP/{number}@customer``)
``CALLCENTER_TEST_CUSTOMER_PHONE``     ``<host>:<port>`` where that customer's phone (a SIPp UAS)
                                       listens (default ``127.0.0.1:5083``)
``CALLCENTER_TEST_SPOOL_DIR``          a folder the app writes and the Asterisk reads at the same path
                                       (``CALLCENTER_VOICEMAIL_SPOOL_DIR``: the whisper's voicemail
                                       previews); unset: the scenarios that need it are skipped

The ``app_queue`` hook scenarios (``test_app_queue_hooks.py``) dial the extensions of
:data:`APP_QUEUE_EXTENS`, which enter ``Gosub(callcenter-appqueue,...)`` of the repository's dialplan.

The Asterisk must serve nothing else meanwhile: each test waits until ``GET /ari/channels`` is empty
before it starts, and hangs up what its own calls left behind at the end. See ``README.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from callcenter.asterisk_names import GLOBAL_AGI_URL, GLOBAL_API_URL, GLOBAL_OUTCOME_HOOK
from callcenter.callbacks.attempts import leg_of
from callcenter.model.events import CallEnded
from callcenter.model.records import QueueRecord
from callcenter.store.redis_conn import EmbeddedRedis
from tests.system.conftest import Apps, AsteriskTarget, RunningApp, eventually

# ---------------------------------------------------------------------------------------------
# Settings (read at import: ``clean_environ`` deletes CALLCENTER_* before each test)
# ---------------------------------------------------------------------------------------------


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


@dataclass(frozen=True)
class AgentPhone:
    """An agent's endpoint (what the app dials) and the address its SIPp phone listens on."""

    endpoint: str
    host: str
    port: int

    @property
    def agent_id(self) -> str:
        """``SIP/agent1`` -> ``agent1``."""
        return re.sub(r"[^A-Za-z0-9_.@-]", "_", self.endpoint.split("/", 1)[1])


def _parse_phones(spec: str) -> tuple[AgentPhone, ...]:
    phones = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        endpoint, _, address = item.partition("=")
        host, _, port = address.rpartition(":")
        if "/" not in endpoint or not host or not port.isdigit():
            raise ValueError(f"CALLCENTER_TEST_AGENT_ENDPOINTS: {item!r} is not <TECH/name>=<host>:<port>")
        phones.append(AgentPhone(endpoint.strip(), host.strip(), int(port)))
    return tuple(phones)


ARI_URL: Final = _env("CALLCENTER_ARI_URL", "")
ARI_USERNAME: Final = _env("CALLCENTER_ARI_USERNAME", "callcenter")
ARI_PASSWORD: Final = os.environ.get("CALLCENTER_ARI_PASSWORD", "")
ARI_APP: Final = _env("CALLCENTER_ARI_APP", "callcenter")
SIP_TARGET: Final = _env("CALLCENTER_TEST_SIP_TARGET", "127.0.0.1:5060")
SIP_CALLER_IP: Final = _env("CALLCENTER_TEST_SIP_CALLER_IP", "127.0.0.1")
SIP_CALLER_PORT: Final = int(_env("CALLCENTER_TEST_SIP_CALLER_PORT", "5070"))
AGENT_PHONES: Final = _parse_phones(
    _env("CALLCENTER_TEST_AGENT_ENDPOINTS", "SIP/agent1=127.0.0.1:5081,SIP/agent2=127.0.0.1:5082")
)
QUEUE: Final = _env("CALLCENTER_TEST_QUEUE", "sales")
QUEUE_EXTEN: Final = _env("CALLCENTER_TEST_QUEUE_EXTEN", "100")
UNKNOWN_QUEUE_EXTEN: Final = _env("CALLCENTER_TEST_UNKNOWN_QUEUE_EXTEN", "102")
AGI_HOST: Final = _env("CALLCENTER_TEST_AGI_HOST", "127.0.0.1")
AGI_TOKEN_FILE: Final = os.environ.get("CALLCENTER_TEST_AGI_TOKEN_FILE", "").strip()
CUSTOMER_DIAL: Final = _env("CALLCENTER_TEST_CUSTOMER_DIAL", "SIP/{number}@customer")
CUSTOMER_PHONE: Final = _env("CALLCENTER_TEST_CUSTOMER_PHONE", "127.0.0.1:5083")
SPOOL_DIR: Final = os.environ.get("CALLCENTER_TEST_SPOOL_DIR", "").strip()
SIPP: Final = shutil.which("sipp")


def _skip_reason() -> str | None:
    missing = []
    if not ARI_URL:
        missing.append("CALLCENTER_ARI_URL is not set (with _USERNAME/_PASSWORD: a real Asterisk's ARI)")
    if SIPP is None:
        missing.append("`sipp` is not on PATH (Debian: apt-get install sip-tester)")
    if len(AGENT_PHONES) < 2:
        missing.append("CALLCENTER_TEST_AGENT_ENDPOINTS names fewer than two agents")
    if not re.fullmatch(r"[^:\s]+:\d+", CUSTOMER_PHONE):
        missing.append(f"CALLCENTER_TEST_CUSTOMER_PHONE {CUSTOMER_PHONE!r} is not <host>:<port>")
    return "real Asterisk tier skipped: " + "; ".join(missing) if missing else None


SKIP_REASON: Final = _skip_reason()

#: Real-time timings: short enough for a test, long enough for SIP round trips and the 1 s ticker.
REAL_QUEUE: Final = QueueRecord(
    name=QUEUE, ring_timeout_s=4, wrap_up_s=1, max_wait_s=60, short_abandon_s=5, max_misses_before_pause=0
)
#: A phone that never picks up (the app's ring timeout or a CANCEL ends its ringing).
NEVER_MS: Final = 99_999_999
SIPP_DIR: Final = Path(__file__).parent / "sipp"

#: The ``app_queue`` entries the Asterisk's ``from-trunk`` context must have (README.md), each
#: ``Gosub(callcenter-appqueue,s,1(<queue>,<max wait>[,<options>]))`` then an apology and ``Hangup()``.
#: ``cc-lab`` rings the first agent's endpoint alone (timeout=4, retry=1), ``cc-lab-empty`` has no
#: members, ``cc-lab-full`` has ``maxlen=1``, ``cc-lab-leave`` rings the first agent (timeout=3,
#: retry=1) with :data:`LEAVE_QUEUE_DEVICE` as its state; all use the repository's
#: ``[callcenter-defaults]``.
APP_QUEUE_EXTENS: Final = {
    "cc-lab": "200",  # cc-lab, max wait 60 s
    "timeout": "201",  # cc-lab, max wait 5 s
    "empty": "202",  # cc-lab-empty
    "full": "203",  # cc-lab-full
    "continue": "204",  # cc-lab, max wait 60 s, option c
    "unknown": "205",  # a queue app_queue does not know
    "leave": "206",  # cc-lab-leave: agent1 whose state the test sets (LEAVE_QUEUE_DEVICE)
    "ari-entry": "208",  # Gosub(callcenter-queue,s,1(cc-lab)): Stasis, app_queue when it fails
}
#: Extension that answers, runs ``AGI(${CC_AGI_URL}/voice-lab)``, sets ``CC_LAB_AFTER=${AGISTATUS}``,
#: plays ``vm-goodbye`` and hangs up (``test_agi_channel.py``).
VOICE_LAB_EXTEN: Final = "207"
#: ``cc-lab-leave``'s member is ``SIP/agent1`` with this state interface, which ARI sets
#: (``PUT /ari/deviceStates/...``): the tests make the agent unavailable at will.
LEAVE_QUEUE_DEVICE: Final = "Stasis:cc-lab-agent1"

#: Caller numbers unique to each call of the run (the tests look their call up by number).
_NUMBERS = itertools.count(1000 + os.getpid() % 8000)


def new_caller_number() -> str:
    """A US number (``1415555xxxx``) no other call of this run uses; stored as ``+1415555xxxx``."""
    return f"1415555{next(_NUMBERS) % 10000:04d}"


# ---------------------------------------------------------------------------------------------
# ARI, for what the app does not show: channels, bridges, and every event (the observer)
# ---------------------------------------------------------------------------------------------


class Ari:
    """Plain REST calls on the real Asterisk's ARI."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._http = session

    async def _get(self, path: str) -> list[dict[str, Any]]:
        async with self._http.get(f"{ARI_URL}/ari{path}") as response:
            assert response.status == 200, f"GET /ari{path}: {response.status} {await response.text()}"
            return list(await response.json())

    async def channels(self) -> list[dict[str, Any]]:
        return await self._get("/channels")

    async def version(self) -> tuple[int, ...]:
        """Asterisk's version (``GET /asterisk/info``), e.g. ``(20, 20, 1)``."""
        async with self._http.get(f"{ARI_URL}/ari/asterisk/info") as response:
            assert response.status == 200, f"GET /ari/asterisk/info: {response.status}"
            text = str((await response.json())["system"]["version"])
        return tuple(int(part) for part in re.findall(r"\d+", text)[:3])

    async def bridges(self) -> list[dict[str, Any]]:
        return await self._get("/bridges")

    async def hang_up(self, channel_id: str) -> None:
        async with self._http.delete(f"{ARI_URL}/ari/channels/{channel_id}") as response:
            assert response.status in (204, 404), f"DELETE channel {channel_id}: {response.status}"

    async def stored_recording(self, name: str) -> bool:
        """Whether Asterisk still keeps the stored recording ``name``."""
        async with self._http.get(f"{ARI_URL}/ari/recordings/stored/{name}") as response:
            assert response.status in (200, 404), f"GET recording {name}: {response.status}"
            return response.status == 200

    async def set_global(self, name: str, value: str) -> None:
        """Set a dialplan global variable (``POST /ari/asterisk/variable``)."""
        params = {"variable": name, "value": value}
        async with self._http.post(f"{ARI_URL}/ari/asterisk/variable", params=params) as response:
            assert response.status == 204, f"set global {name}: {response.status} {await response.text()}"

    async def set_device_state(self, device: str, state: str | None) -> None:
        """Set an ARI-controlled device state (``Stasis:<name>``), or delete it (``None``)."""
        url = f"{ARI_URL}/ari/deviceStates/{device}"
        if state is None:
            async with self._http.delete(url) as response:
                assert response.status in (204, 404), f"delete {device}: {response.status}"
            return
        async with self._http.put(url, params={"deviceState": state}) as response:
            assert response.status == 204, f"{device} {state}: {response.status} {await response.text()}"

    async def legs_of(self, phone: AgentPhone) -> list[str]:
        """Live channels to ``phone``'s endpoint (``SIP/agent1-00000003``...)."""
        return [c["id"] for c in await self.channels() if c["name"].startswith(phone.endpoint + "-")]

    async def bridge_of(self, channel_id: str, bridge_type: str) -> dict[str, Any] | None:
        """The ``holding`` or ``mixing`` bridge ``channel_id`` is in, if any."""
        for bridge in await self.bridges():
            if channel_id in bridge["channels"] and bridge["bridge_type"] == bridge_type:
                return bridge
        return None

    async def no_channels(self, *, timeout_s: float, what: str) -> None:
        async def empty() -> bool:
            return not await self.channels()

        await eventually(empty, timeout_s=timeout_s, what=what)


class AriObserver:
    """A second Stasis application subscribed to everything: the events Asterisk emits, in order.

    It sees what the app cannot show, e.g. a channel going on in the dialplan after ``Stasis()``
    returns, or whether an exit message finished before the hang-up.
    """

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._http = session
        self.app = f"cc-test-observer-{uuid.uuid4().hex[:8]}"
        self.events: list[dict[str, Any]] = []
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        url = ARI_URL.replace("http", "ws", 1) + "/ari/events"
        self._ws = await self._http.ws_connect(url, params={"app": self.app, "subscribeAll": "true"})
        self._task = asyncio.create_task(self._read(self._ws), name="ari-observer")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.events.append(json.loads(message.data))

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def of_channel(self, channel_id: str) -> list[dict[str, Any]]:
        """Events about ``channel_id`` (as the channel, or as a playback's target), oldest first."""
        target = f"channel:{channel_id}"
        return [
            e
            for e in self.events
            if e.get("channel", {}).get("id") == channel_id
            or e.get("playback", {}).get("target_uri") == target
        ]

    def variable(self, channel_id: str, name: str) -> list[str]:
        """Every value Asterisk set ``name`` to on ``channel_id`` (``ChannelVarset``), oldest first."""
        return [
            str(e["value"])
            for e in self.of_channel(channel_id)
            if e["type"] == "ChannelVarset" and e["variable"] == name
        ]

    def apps_run(self, channel_id: str) -> list[tuple[str, str]]:
        """The dialplan applications ``channel_id`` ran (``ChannelDialplan``): (app, its data).

        A jump (``Goto``, or ``app_queue`` sending the caller to its exit context) also shows as a
        ``ChannelDialplan`` at priority 0 still naming the application it left: not a run.
        """
        return [
            (str(e["dialplan_app"]), str(e["dialplan_app_data"]))
            for e in self.of_channel(channel_id)
            if e["type"] == "ChannelDialplan" and int(e["channel"]["dialplan"]["priority"]) > 0
        ]

    def channel_of_caller(self, number: str) -> str | None:
        """The id of the channel created for the caller ``number`` while observing, if any."""
        for e in self.events:
            if e["type"] == "ChannelCreated" and e["channel"]["caller"]["number"].lstrip("+") == number:
                return str(e["channel"]["id"])
        return None

    def channels_named(self, prefix: str | tuple[str, ...]) -> list[str]:
        """Ids of every channel created with a name starting ``prefix`` while observing."""
        return [
            e["channel"]["id"]
            for e in self.events
            if e["type"] == "ChannelCreated" and e["channel"]["name"].startswith(prefix)
        ]


# ---------------------------------------------------------------------------------------------
# SIPp: agents' phones and callers
# ---------------------------------------------------------------------------------------------


def _udp_port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _write_agi_token(token: str) -> None:
    """Write ``token`` where the Asterisk's ``callcenter-outcome`` program reads it."""
    assert AGI_TOKEN_FILE, "CALLCENTER_TEST_AGI_TOKEN_FILE is not set"
    Path(AGI_TOKEN_FILE).write_text(token + "\n" if token else "", encoding="utf-8")


def _free_tcp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _free_udp_ports(host: str, count: int) -> int:
    """The first of ``count`` consecutive free UDP ports on ``host`` (SIPp's control and media ports)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
            first = int(probe.getsockname()[1]) & ~1  # even: RTP
        if first + count < 65536 and all(_udp_port_free(host, first + i) for i in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free UDP ports on {host}")


@dataclass
class Sipp:
    """One SIPp process; its ``-trace_logs`` file holds the scenario's ``<log>`` lines."""

    name: str
    process: asyncio.subprocess.Process
    log_file: Path
    out_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def count(self, marker: str) -> int:
        """How many of the scenario's ``<log>`` lines hold ``marker``."""
        return sum(marker in line for line in self.log().splitlines())

    def diagnostics(self) -> str:
        out = self.out_file.read_text(errors="replace")[-2000:] if self.out_file.exists() else ""
        return (
            f"sipp {self.name} (pid {self.process.pid}, rc {self.process.returncode}):\n{self.log()}\n{out}"
        )

    async def stop(self) -> None:
        """Kill it by its pid (if still running) and reap it."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()


@dataclass
class Caller:
    """A call placed by a SIPp UAC: the caller's number and the process (it exits when the call ends)."""

    number: str
    sipp: Sipp

    @property
    def stored_number(self) -> str:
        return "+" + self.number

    async def finished(self, *, timeout_s: float = 40.0) -> str:
        """Wait for the UAC to end its call: ``"REMOTE_BYE"`` (Asterisk hung up) or ``"LOCAL_BYE"``."""
        try:
            async with asyncio.timeout(timeout_s):
                rc = await self.sipp.process.wait()
        except TimeoutError:
            pytest.fail(f"the caller's call did not end within {timeout_s}s\n{self.sipp.diagnostics()}")
        assert rc == 0, f"the caller's SIPp failed\n{self.sipp.diagnostics()}"
        for marker in ("REMOTE_BYE", "LOCAL_BYE"):
            if self.sipp.count(marker):
                return marker
        pytest.fail(f"the caller's SIPp logged no BYE\n{self.sipp.diagnostics()}")


def _send_cue(host: str, port: int, method: str, call_id: str, headers: Mapping[str, str]) -> None:
    """Send a SIPp of ours a cue: a SIP request carrying its call's ``call_id``, never answered.

    SIPp routes an incoming request to its call by the Call-ID alone, so the scenario's ``<recv>`` of
    ``method`` takes it; Asterisk never sees it. What the scenario does then is in its XML.
    """
    lines = [
        f"{method} sip:cue@{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:9;branch=z9hG4bK-cue-{uuid.uuid4().hex[:12]}",
        f"From: <sip:test@{host}>;tag=cue-{uuid.uuid4().hex[:8]}",
        f"To: <sip:cue@{host}>",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
        *(f"{name}: {value}" for name, value in headers.items()),
        "Content-Length: 0",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), (host, port))


@dataclass
class CuedCaller(Caller):
    """A caller (``sipp/uac_cued.xml``) who presses keys (SIP INFO) and speaks when the test says so.

    The test cues it when it has seen, over ARI, what the caller would be answering (a prompt ended,
    a recording started): a real caller reacts to what they hear, not to a stopwatch.
    """

    sip_call_id: str = ""
    host: str = SIP_CALLER_IP
    port: int = SIP_CALLER_PORT
    keys_sent: int = 0

    async def press(self, key: str) -> None:
        """Press ``key`` once (a SIP INFO ``application/dtmf-relay``); returns once Asterisk took it."""
        self.keys_sent += 1
        cseq = 1 + self.keys_sent  # the INVITE was 1
        headers = {"X-Key": key, "X-CSeq": str(cseq)}
        _send_cue(self.host, self.port, "NOTIFY", self.sip_call_id, headers)
        sent = self.keys_sent

        def taken() -> bool:
            assert self.sipp.process.returncode in (None, 0), self.sipp.diagnostics()
            return self.sipp.count("KEY_SENT") >= sent

        await eventually(taken, timeout_s=5, what=f"the caller's key {key} sent and answered 200")

    async def speak(self) -> None:
        """Start speaking: the scenario plays its pcap (RTP) to Asterisk."""
        _send_cue(self.host, self.port, "MESSAGE", self.sip_call_id, {})

        def speaking() -> bool:
            assert self.sipp.process.returncode in (None, 0), self.sipp.diagnostics()
            return self.sipp.count("SPEAKING") >= 1

        await eventually(speaking, timeout_s=5, what="the caller speaking")

    async def hang_up(self) -> None:
        """The caller hangs up (a BYE); returns once Asterisk answered it."""
        _send_cue(self.host, self.port, "OPTIONS", self.sip_call_id, {})
        assert await self.finished(timeout_s=10) == "LOCAL_BYE"


@dataclass
class CustomerPhone:
    """A customer's phone a callback dials (``sipp/uas_customer.xml``), cued by the test."""

    sipp: Sipp
    host: str
    port: int

    def call_ids(self) -> list[str]:
        """The SIP Call-IDs of the calls it was offered (Asterisk's), oldest first."""
        found = re.findall(r"(\S+) INVITE received", self.sipp.log())
        return [str(call_id) for call_id in found]

    def _current(self) -> str:
        ids = self.call_ids()
        assert ids, f"the customer's phone was never called\n{self.sipp.diagnostics()}"
        return ids[-1]

    async def press_1(self) -> None:
        """Press 1 as RFC 4733 events in the RTP stream (the scenario's key pcap)."""
        before = self.sipp.count("KEY_SENT")
        _send_cue(self.host, self.port, "NOTIFY", self._current(), {})
        await eventually(lambda: self.sipp.count("KEY_SENT") > before, timeout_s=5, what="the key played")

    async def hang_up(self) -> None:
        """The customer hangs up (a BYE); returns once Asterisk answered it."""
        _send_cue(self.host, self.port, "OPTIONS", self._current(), {})
        await eventually(
            lambda: self.sipp.count("CUSTOMER_BYE") >= 1, timeout_s=5, what="the customer's BYE answered"
        )


@dataclass
class Lab:
    """The app under test, the real Asterisk's ARI, and the SIPp processes of one test."""

    app: RunningApp
    ari: Ari
    workdir: Path
    phones: tuple[AgentPhone, ...] = AGENT_PHONES
    processes: list[Sipp] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)

    async def _sipp(self, name: str, scenario: str, args: list[str], values: Mapping[str, int | str]) -> Sipp:
        assert SIPP is not None
        text = (SIPP_DIR / scenario).read_text()
        for key, value in values.items():
            text = text.replace(f"@{key}@", str(value))
        scenario_file = self.workdir / f"{name}.xml"
        scenario_file.write_text(text)
        log_file, out_file = self.workdir / f"{name}.log", self.workdir / f"{name}.out"
        host = args[args.index("-i") + 1]
        control = _free_udp_ports(host, 1)
        media = _free_udp_ports(host, 4)
        command = [
            SIPP,
            *args,
            "-sf",
            str(scenario_file),
            "-cp",
            str(control),
            "-mp",
            str(media),
            "-nostdin",
            "-trace_logs",
            "-log_file",
            str(log_file),
            "-trace_err",
            "-error_file",
            str(self.workdir / f"{name}.err"),
            "-trace_msg",
            "-message_file",
            str(self.workdir / f"{name}.msg"),
        ]
        with out_file.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        sipp = Sipp(name=name, process=process, log_file=log_file, out_file=out_file)
        self.processes.append(sipp)
        return sipp

    async def _phone(self, phone: AgentPhone, scenario: str, values: Mapping[str, int]) -> Sipp:
        assert _udp_port_free(phone.host, phone.port), f"{phone.host}:{phone.port} is taken (a stray SIPp?)"
        sipp = await self._sipp(
            phone.agent_id,
            scenario,
            ["-i", phone.host, "-mi", phone.host, "-ci", phone.host, "-p", str(phone.port)],
            values,
        )

        def listening() -> bool:
            assert sipp.process.returncode is None, f"the phone's SIPp exited\n{sipp.diagnostics()}"
            return not _udp_port_free(phone.host, phone.port)

        await eventually(listening, timeout_s=5, what=f"{phone.agent_id}'s phone listening")
        return sipp

    async def phone(self, phone: AgentPhone, *, ring_ms: int = 1000, talk_ms: int = 600_000) -> Sipp:
        """Start ``phone``: it rings ``ring_ms`` then answers; the agent hangs up after ``talk_ms``."""
        return await self._phone(phone, "uas_agent.xml", {"RING_MS": ring_ms, "TALK_MS": talk_ms})

    async def silent_phone(self, phone: AgentPhone) -> Sipp:
        """Start ``phone`` ringing for ever (until Asterisk cancels)."""
        return await self.phone(phone, ring_ms=NEVER_MS)

    async def busy_phone(self, phone: AgentPhone) -> Sipp:
        """Start ``phone`` answering every call ``486 Busy Here``."""
        return await self._phone(phone, "uas_busy.xml", {})

    async def login(self, *phones: AgentPhone) -> None:
        """Log the agents in, in this order (the first is the longest idle: rung first)."""
        for phone in phones:
            await self.app.services.queue.login(phone.agent_id, actor="test")

    async def call(
        self,
        *,
        hold_ms: int,
        exten: str = QUEUE_EXTEN,
        key_after_ms: int | None = None,
        key: str = "1",
        port: int = SIP_CALLER_PORT,
    ) -> Caller:
        """Place a call to ``exten``; the caller hangs up ``hold_ms`` after the answer.

        :param key_after_ms: the caller presses ``key`` (SIP INFO) this long after the answer, and
            then hangs up ``hold_ms`` after the key.
        :param port: the port the caller sends from (a second caller at once needs another one).
        """
        number = new_caller_number()
        self.numbers.append(number)
        host = SIP_CALLER_IP
        assert _udp_port_free(host, port), f"{host}:{port} is taken (a stray SIPp?)"
        args = [SIP_TARGET, "-s", exten, "-key", "caller", number]
        args += ["-i", host, "-mi", host, "-ci", host, "-p", str(port)]
        total_ms = hold_ms + (key_after_ms or 0)
        args += ["-m", "1", "-l", "1", "-timeout", f"{total_ms // 1000 + 60}s"]
        if key_after_ms is None:
            sipp = await self._sipp(f"caller-{number}", "uac_call.xml", args, {"HOLD_MS": hold_ms})
        else:
            values: dict[str, int | str] = {"HOLD_MS": hold_ms, "KEY_MS": key_after_ms, "KEY": key}
            sipp = await self._sipp(f"caller-{number}", "uac_key.xml", args, values)
        return Caller(number, sipp)

    async def cued_call(
        self, *, pcap: Path, port: int = SIP_CALLER_PORT, exten: str = QUEUE_EXTEN
    ) -> CuedCaller:
        """Place a call to ``exten`` by a caller the test cues (:class:`CuedCaller`); ``pcap`` is what
        they say when told to speak. Asterisk ends the call (or the test's teardown)."""
        number = new_caller_number()
        self.numbers.append(number)
        host = SIP_CALLER_IP
        assert _udp_port_free(host, port), f"{host}:{port} is taken (a stray SIPp?)"
        args = [SIP_TARGET, "-s", exten, "-key", "caller", number, "-cid_str", f"cclab-{number}-%u@%s"]
        args += ["-i", host, "-mi", host, "-ci", host, "-p", str(port)]
        args += ["-m", "1", "-l", "1", "-timeout", "180s"]
        sipp = await self._sipp(f"caller-{number}", "uac_cued.xml", args, {"PCAP": str(pcap)})
        return CuedCaller(number, sipp, sip_call_id=f"cclab-{number}-1@{host}", host=host, port=port)

    async def customer_phone(self, *, key_pcap: Path, ring_ms: int = 1000) -> CustomerPhone:
        """Start the phone of the customer a callback dials: rings ``ring_ms``, answers, waits for cues."""
        sipp = await self._customer_sipp("uas_customer.xml", {"RING_MS": ring_ms, "KEY_PCAP": str(key_pcap)})
        host, _, port = CUSTOMER_PHONE.rpartition(":")
        return CustomerPhone(sipp, host, int(port))

    async def customer_line(self, behaviour: str) -> Sipp:
        """The customer's phone answering every call ``486 Busy Here`` (``"busy"``) or ringing until
        cancelled (``"silent"``)."""
        if behaviour == "busy":
            return await self._customer_sipp("uas_busy.xml", {})
        assert behaviour == "silent", behaviour
        return await self._customer_sipp("uas_agent.xml", {"RING_MS": NEVER_MS, "TALK_MS": 600_000})

    async def _customer_sipp(self, scenario: str, values: Mapping[str, int | str]) -> Sipp:
        host, _, port = CUSTOMER_PHONE.rpartition(":")
        assert _udp_port_free(host, int(port)), f"{CUSTOMER_PHONE} is taken (a stray SIPp?)"
        sipp = await self._sipp(
            "customer", scenario, ["-i", host, "-mi", host, "-ci", host, "-p", port], values
        )

        def listening() -> bool:
            assert sipp.process.returncode is None, f"the customer's SIPp exited\n{sipp.diagnostics()}"
            return not _udp_port_free(host, int(port))

        await eventually(listening, timeout_s=5, what="the customer's phone listening")
        return sipp

    async def use_hook(self, hook: str) -> None:
        """Point the Asterisk's outcome hook at this test's app: ``fastagi`` or ``classic``.

        Sets the dialplan globals ``CC_AGI_URL`` (the app's FastAGI server), ``CC_OUTCOME_HOOK`` and
        ``CC_API_URL`` (the app's API, for the classic ``callcenter-outcome`` program, which reads the
        test's supervisor token from ``CALLCENTER_TEST_AGI_TOKEN_FILE``).
        """
        agi = self.app.services.settings.agi
        await self.ari.set_global(GLOBAL_AGI_URL, f"agi://{agi.host}:{agi.port}")
        await self.ari.set_global(GLOBAL_API_URL, str(self.app.http.make_url("")).rstrip("/"))
        if hook == "classic":
            _write_agi_token(self.app.token)
        await self.ari.set_global(GLOBAL_OUTCOME_HOOK, hook)

    async def call_id(self, caller: Caller, *, timeout_s: float = 10.0) -> str:
        """The id (the caller's channel id) of ``caller``'s call, once the app stored it."""
        found: list[str] = []

        async def stored() -> bool:
            assert caller.sipp.process.returncode in (None, 0), caller.sipp.diagnostics()
            found[:] = [c["id"] for c in await self.app.calls(number=caller.stored_number)]
            return bool(found)

        await eventually(stored, timeout_s=timeout_s, what=f"the call from {caller.number} stored")
        assert len(found) == 1, found
        return found[0]

    async def one_call_ended(self, call_id: str) -> CallEnded:
        """The one ``CallEnded`` of ``call_id`` on the bus."""

        async def published() -> bool:
            return bool(await self.app.published(call_id))

        await eventually(published, what=f"CallEnded of {call_id} on the bus")
        events = await self.app.published(call_id)
        assert len(events) == 1, events
        return events[0]

    async def close(self) -> None:
        """Kill every SIPp, hang up what the test's calls left behind, wait for no channels."""
        for sipp in self.processes:
            await sipp.stop()
        ours = tuple(p.endpoint + "-" for p in self.phones)
        for channel in await self.ari.channels():
            if (
                channel["name"].startswith(ours)
                or channel["caller"]["number"].lstrip("+") in self.numbers
                or leg_of(channel["id"]) is not None  # a callback's agent or customer leg
            ):
                await self.ari.hang_up(channel["id"])
        await self.ari.no_channels(timeout_s=15, what="the test's channels gone")


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def asterisk() -> AsteriskTarget:
    return AsteriskTarget(url=ARI_URL, username=ARI_USERNAME, password=ARI_PASSWORD, app=ARI_APP)


@pytest.fixture
async def ari_session() -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": aiohttp.encode_basic_auth(ARI_USERNAME, ARI_PASSWORD)}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


@pytest.fixture
async def ari(ari_session: aiohttp.ClientSession) -> Ari:
    """The real Asterisk, idle: no channel of an earlier call is left."""
    client = Ari(ari_session)
    await client.no_channels(timeout_s=20, what="no channels on the Asterisk before the test")
    return client


@pytest.fixture
async def observer(ari_session: aiohttp.ClientSession) -> AsyncIterator[AriObserver]:
    watcher = AriObserver(ari_session)
    await watcher.start()
    try:
        yield watcher
    finally:
        await watcher.close()


@pytest.fixture
async def apps(asterisk: AsteriskTarget, tmp_path: Path) -> AsyncIterator[Apps]:
    """Builds the app on a private redis-server (the embedded 6.2) and SQLite in ``tmp_path``."""
    async with EmbeddedRedis(tmp_path / "redis") as redis:
        factory = Apps(asterisk, tmp_path, redis.url, key_prefix=f"cctest-real:{uuid.uuid4().hex[:12]}:")
        try:
            yield factory
        finally:
            await factory.close()


@pytest.fixture
def app_overrides() -> dict[str, str]:
    """Settings of the app under test beyond the defaults (a test module may override the fixture)."""
    return {}


@pytest.fixture
async def lab(apps: Apps, ari: Ari, tmp_path: Path, app_overrides: dict[str, str]) -> AsyncIterator[Lab]:
    """The app, its ARI link up, with the queue on real-time timings and its agents logged out."""
    agi = {"agi_enabled": "1", "agi_host": AGI_HOST, "agi_port": str(_free_tcp_port(AGI_HOST))}
    app = await apps.start("app1", wait_up=True, **(agi | app_overrides))
    await app.put_queue(REAL_QUEUE)
    for phone in AGENT_PHONES:
        await app.add_agent(phone.agent_id, endpoint=phone.endpoint, queues=(QUEUE,), login=False)
    workdir = tmp_path / "sipp"
    workdir.mkdir()
    bench = Lab(app=app, ari=ari, workdir=workdir)
    try:
        await bench.use_hook("fastagi")
        yield bench
    finally:
        await bench.close()
        if AGI_TOKEN_FILE:
            _write_agi_token("")  # the test's token is not left behind
