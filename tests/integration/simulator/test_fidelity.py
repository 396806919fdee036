"""The simulator against traffic recorded from a real Asterisk 20.20.1 (``tests/data/ari/``).

Each captured scenario is replayed: the recorded REST calls (ids mapped to the simulator's), plus the
far-end actions the capture implies (the call arriving, a BYE, a digit), at the recorded times on the
simulator's virtual clock. The simulator must then answer every call with the recorded status, reason
phrase and body shape (error bodies word for word), and put the same events, in the same order, about
the same channels, bridges and playbacks, on the WebSocket. A second test checks that every event type
of the captures comes out with the same keys (recursively), JSON value types and timestamp format.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from callcenter.simulator import SimulatedAsterisk
from tests.integration.simulator.ari_client import BASIC, PASSWORD, USER, Ari
from tests.integration.simulator.conftest import AiohttpClient

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "data" / "ari"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
AGENT = "SIP/sipp-uas"


def _ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def _jsonl(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------------- scenarios

Action = Callable[["Replay"], Awaitable[None]]


def incoming(
    captured_id: str, *, exten: str = "100", answered: bool = True, talk_s: float | None = None
) -> Action:
    async def act(r: Replay) -> None:
        r.ids[captured_id] = r.sim.incoming_call(
            "sipp", caller_name="sipp", exten=exten, context="incoming", answered=answered
        )
        if talk_s is not None:
            r.sim.set_caller_audio(r.ids[captured_id], talk_s)

    return act


def remote_hangup(captured_id: str) -> Action:
    async def act(r: Replay) -> None:
        r.sim.hangup(r.ids[captured_id])

    return act


def press(captured_id: str, digit: str, duration_ms: int) -> Action:
    async def act(r: Replay) -> None:
        r.sim.press(r.ids[captured_id], digit, duration_ms=duration_ms)

    return act


def agent(behaviour: str, answer_after_s: float = 2.004) -> Callable[[SimulatedAsterisk], None]:
    def setup(sim: SimulatedAsterisk) -> None:
        sim.set_endpoint(
            AGENT, behaviour=behaviour, answer_after_s=answer_after_s, ring_after_s=0.003, context="incoming"
        )

    return setup


def continue_dialplan(sim: SimulatedAsterisk) -> None:
    # The lab's [lab-continue] context (README §5): NoOp, Set, Playback(beep), Stasis again, NoOp, Hangup.
    sim.add_extension(
        "lab-continue",
        "700",
        [
            ("NoOp", "${STASISSTATUS}"),
            ("Set", "CONTINUED=yes"),
            ("Playback", "beep"),
            ("Stasis", "callcenter,again"),
            ("NoOp", "after"),
            ("Hangup", "16"),
        ],
    )


def missing_sound(sim: SimulatedAsterisk) -> None:
    sim.set_sound("no-such-sound-file", None)


@dataclass(frozen=True)
class Scenario:
    name: str
    stimuli: list[tuple[int, Action]]  # (index of the captured event the action causes, action)
    setup: Callable[[SimulatedAsterisk], None] | None = None
    rest_log: str | None = "default"

    @property
    def events_file(self) -> str:
        return f"ari_{self.name}.jsonl"

    @property
    def rest_file(self) -> str | None:
        if self.rest_log == "default":
            return f"ari_{self.name}_rest_log.jsonl"
        return self.rest_log


SCENARIOS = [
    Scenario("abandon", [(0, incoming("1795459692.1")), (1, remote_hangup("1795459692.1"))], rest_log=None),
    Scenario(
        "preanswer_abandon",
        [(0, incoming("1795459818.12", exten="101", answered=False)), (1, remote_hangup("1795459818.12"))],
        rest_log="ari_preanswer_rest_log.jsonl",
    ),
    Scenario("answered_bridge", [(0, incoming("1795459702.2"))], rest_log="ari_rest_log.jsonl"),
    Scenario("originate", [], agent("answer", answer_after_s=0.005)),
    Scenario(
        "agent_answer",
        [(0, incoming("1795461546.38")), (26, remote_hangup("1795461546.38"))],
        agent("answer"),
    ),
    Scenario("agent_noanswer", [(0, incoming("1795461571.42"))], agent("no_answer")),
    Scenario("agent_busy", [(0, incoming("1795461587.46"))], agent("busy")),
    Scenario(
        "agent_caller_abandon",
        [(0, incoming("1795461805.0")), (5, remote_hangup("1795461805.0"))],
        agent("no_answer"),
    ),
    Scenario(
        "agent_hangs_up",
        [(0, incoming("1795461815.4")), (26, remote_hangup("1795461816.7"))],
        agent("answer"),
    ),
    Scenario(
        "agent_no_uas",
        [(0, incoming("1795461504.34")), (3, remote_hangup("1795461504.34"))],
        agent("no_response"),
    ),
    Scenario("bridge_move", [(0, incoming("1795461836.8"))]),
    Scenario("continue", [(0, incoming("1795461595.50"))], continue_dialplan),
    Scenario("playback", [(0, incoming("1795461406.25"))], missing_sound),
    Scenario(
        "dtmf_info",
        [
            (0, incoming("1795461426.26")),
            (1, press("1795461426.26", "1", 250)),
            (2, press("1795461426.26", "#", 160)),
            (4, press("1795461426.26", "5", 100)),
            (5, press("1795461426.26", "9", 100)),
        ],
    ),
    Scenario(
        "dtmf_2833",
        [
            (0, incoming("1795461436.27")),
            (2, press("1795461436.27", "1", 280)),
            (3, press("1795461436.27", "#", 280)),
        ],
    ),
    # SIPp sent no RTP: no audio at all.
    Scenario("rec_noaudio", [(0, incoming("1795461445.28"))]),
    Scenario("rec_audio", [(0, incoming("1795461456.29", talk_s=3.3))]),
    # The speech began at the answer; about 0.78 s of it was left when the recording started.
    Scenario("rec_silence", [(0, incoming("1795461467.30", talk_s=0.775))]),
    Scenario("rec_pound", [(0, incoming("1795461478.31", talk_s=60)), (2, press("1795461478.31", "#", 120))]),
    Scenario("rec_stop", [(0, incoming("1795461496.33", talk_s=60))]),
    Scenario("resync", [(0, incoming("1795461602.51"))]),
]


# ----------------------------------------------------------------------------------- replay


def _typename(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "timestamp" if TIMESTAMP.match(value) else "str"
    if isinstance(value, list):
        return "list"
    return "object"


def mismatch(ours: Any, theirs: Any, where: str) -> str | None:
    """Why ``ours`` is not shaped like ``theirs`` (same keys at every level, same JSON types), or None.

    Each of our list items must be shaped like one of the recorded items; an empty recorded list
    only accepts an empty list.
    """
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return f"{where}: {ours!r} is not an object"
        if set(ours) != set(theirs):
            return f"{where}: keys {sorted(ours)} != {sorted(theirs)}"
        for key in theirs:
            problem = mismatch(ours[key], theirs[key], f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(theirs, list):
        if not isinstance(ours, list):
            return f"{where}: {ours!r} is not a list"
        if not theirs:
            return None if ours == [] else f"{where}: {ours!r} should be empty"
        for item in ours:
            problems = [mismatch(item, candidate, f"{where}[]") for candidate in theirs]
            if all(problems):
                return problems[0]
        return None
    if _typename(ours) != _typename(theirs):
        return f"{where}: {ours!r} vs {theirs!r}"
    return None


def _block_normalised(sigs: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Move ChannelConnectedLine to the end of its BRIDGEPEER block.

    Two identical captures (ari_agent_answer, ari_agent_hangs_up) disagree on where the connected-line
    updates fall among the three rounds of BRIDGEPEER/BRIDGEPVTCALLID: a race inside Asterisk.
    """
    out: list[tuple[Any, ...]] = []
    block: list[tuple[Any, ...]] = []
    lines: list[tuple[Any, ...]] = []
    for sig in [*sigs, ("<end>",)]:
        if sig[0] == "ChannelConnectedLine" and block:
            lines.append(sig)
        elif sig[0] == "ChannelVarset" and sig[2] in ("BRIDGEPEER", "BRIDGEPVTCALLID") and sig[3] != "":
            block.append(sig)
        else:
            out.extend(block)
            out.extend(lines)
            block, lines = [], []
            if sig[0] != "<end>":
                out.append(sig)
    return out


def signature(event: dict[str, Any], ids: dict[str, str]) -> tuple[Any, ...]:
    """What must match between a captured event and ours: type, subject and the fields that vary."""
    kind = event["type"]
    subject = event.get("channel") or event.get("peer") or {}
    who = ids.get(subject.get("id", ""), subject.get("id", ""))
    if kind == "ChannelConnectedLine":
        return (kind,)  # its position and channel race, see _block_normalised
    if kind == "ChannelVarset":
        value = event["value"] if event["variable"] in ("BRIDGEPEER", "BRIDGEPVTCALLID") else None
        return (kind, who, event["variable"], "" if value == "" else None)
    if kind == "Dial":
        return (kind, who, event["dialstatus"])
    if kind == "ChannelHangupRequest":
        return (kind, who, event.get("cause"), event.get("soft"))
    if kind == "ChannelDestroyed":
        return (kind, who, event["cause"], event["channel"]["state"])
    if kind == "ChannelStateChange":
        return (kind, who, event["channel"]["state"])
    if kind == "StasisStart":
        return (kind, who, tuple(ids.get(a, a) for a in event["args"]))
    if kind.startswith("Playback"):
        pb = event["playback"]
        return (kind, ids.get(pb["id"], pb["id"]), pb["media_uri"], pb["state"])
    if kind.startswith("Recording"):
        return (kind, event["recording"]["name"], event["recording"]["state"])
    if "bridge" in event:
        return (kind, who, ids.get(event["bridge"]["id"], event["bridge"]["id"]))
    if kind == "ChannelDtmfReceived":
        return (kind, who, event["digit"], event["duration_ms"])
    return (kind, who)


@dataclass
class Replay:
    ari: Ari
    scenario: Scenario
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def sim(self) -> SimulatedAsterisk:
        return self.ari.sim

    def _sub(self, text: str) -> str:
        for captured in sorted(self.ids, key=len, reverse=True):
            text = text.replace(captured, self.ids[captured])
        return text

    async def rest(self, index: int, row: dict[str, Any]) -> None:
        query = row["query"]
        pairs = query if isinstance(query, list) else list(query.items())
        params = [(k, self._sub(v)) for k, v in pairs]
        reply = await self.ari.call(row["method"], self._sub(row["path"]), params)
        where = f"{self.scenario.name} #{index} {row['method']} {row['path']}"
        assert reply.status == row["status"], f"{where}: {reply.status} {reply.raw!r}"
        if "reason" in row:
            assert reply.reason == row["reason"], where
        body = row["body"]
        if isinstance(body, dict) and "_note" in body:
            # A stored recording: 44-byte RIFF header of 16-bit 8 kHz mono PCM, served as audio/wav.
            header = bytes.fromhex(body["first_bytes_hex"])
            assert reply.headers["Content-Type"] == "audio/wav", where
            assert reply.raw[:4] == b"RIFF" and reply.raw[8:36] == header[8:36], where
            assert int.from_bytes(reply.raw[40:44], "little") == len(reply.raw) - 44, where
        elif row["status"] >= 400:
            assert reply.body == body, f"{where}: {reply.body!r}"  # error bodies word for word
        elif body is None:
            assert reply.raw == b"", where
        else:
            assert reply.headers["Content-type"] == "application/json", where
            problem = mismatch(reply.body, body, where)
            assert problem is None, problem
            if isinstance(body, dict) and "id" in body:
                self.ids[body["id"]] = reply.body["id"]

    async def run(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Replay the scenario; returns (captured events, our events)."""
        captured = _jsonl(self.scenario.events_file)
        rows = _jsonl(self.scenario.rest_file) if self.scenario.rest_file else []
        if self.scenario.setup is not None:
            self.scenario.setup(self.sim)
        t0 = min([_ts(e["timestamp"]) for e in captured] + [r["t"] for r in rows])
        actions: list[tuple[float, int, Callable[[], Awaitable[None]]]] = []
        for n, (event_index, action) in enumerate(self.scenario.stimuli):
            actions.append((_ts(captured[event_index]["timestamp"]) - t0, n, _bind(action, self)))
        for n, row in enumerate(rows):
            actions.append((row["t"] - t0, 1000 + n, _bind_rest(self, n, row)))
        actions.sort(key=lambda a: (a[0], a[1]))
        stream = await self.ari.events()
        for at, _, act in actions:
            if at > self.sim.scheduler.monotonic():
                await self.sim.advance(at - self.sim.scheduler.monotonic())
            await act()
        end = max(_ts(e["timestamp"]) for e in captured) - t0 + 1.0
        await self.sim.advance(max(end - self.sim.scheduler.monotonic(), 0.0))
        ours = await stream.sync(self.sim)
        return captured, ours


def _bind(action: Action, replay: Replay) -> Callable[[], Awaitable[None]]:
    return lambda: action(replay)


def _bind_rest(replay: Replay, index: int, row: dict[str, Any]) -> Callable[[], Awaitable[None]]:
    return lambda: replay.rest(index, row)


# ----------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_replayed_capture_gives_the_same_replies_and_event_order(ari: Ari, scenario: Scenario) -> None:
    replay = Replay(ari, scenario)
    captured, ours = await replay.run()
    identity = {v: v for v in replay.ids.values()}
    expected = _block_normalised([signature(e, replay.ids) for e in captured])
    got = _block_normalised([signature(e, identity) for e in ours])
    assert got == expected


def _flatten(value: Any, path: str, out: set[tuple[str, str]]) -> None:
    out.add((path, _typename(value)))
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list):
        for item in value:
            _flatten(item, f"{path}[]", out)


def _shapes(
    events: Iterable[dict[str, Any]],
) -> tuple[dict[str, set[frozenset[str]]], dict[tuple[str, str], set[str]]]:
    variants: dict[str, set[frozenset[str]]] = defaultdict(set)
    types: dict[tuple[str, str], set[str]] = defaultdict(set)
    for event in events:
        flat: set[tuple[str, str]] = set()
        _flatten(event, "", flat)
        flat.discard(("", "object"))
        variants[event["type"]].add(frozenset(p for p, _ in flat if "[]" not in p))
        for path, kind in flat:
            types[(event["type"], path)].add(kind)
    return variants, types


def _captured_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for path in sorted(DATA.glob("ari_*.jsonl")):
        if "rest_log" not in path.name:
            events.extend(_jsonl(path.name))
    for frame in _jsonl("ws_restart_run3_frames.jsonl"):
        if frame.get("dir") == "in" and frame.get("opcode") == 1:
            events.append(json.loads(frame["payload"]))
    return events


async def _restart_events(ari: Ari) -> list[dict[str, Any]]:
    """ws_restart: a client text frame, a call, then ``core restart now``."""
    stream = await ari.events()
    await stream.ws.send_str('{"type":"hello-from-client"}')
    ari.sim.incoming_call("sipp", caller_name="sipp", exten="100")
    await stream.wait_for(lambda: len(stream.frames) >= 2)
    await ari.sim.restart()
    await stream.wait_closed()
    return stream.events


async def test_every_captured_event_type_has_the_recorded_keys_types_and_timestamp_format(
    aiohttp_client: AiohttpClient,
) -> None:
    ours: list[dict[str, Any]] = []
    for scenario in [*SCENARIOS, None]:
        sim = SimulatedAsterisk(users={USER: PASSWORD}, inbound_tech="SIP", inbound_trunk="sipp")
        ari = Ari(sim, await aiohttp_client(sim.app, headers=BASIC))
        if scenario is None:
            ours.extend(await _restart_events(ari))
        else:
            ours.extend((await Replay(ari, scenario).run())[1])
        await ari.close()
    captured_variants, captured_types = _shapes(_captured_events())
    our_variants, our_types = _shapes(ours)

    assert set(our_variants) == set(captured_variants)
    for kind, variants in captured_variants.items():
        assert our_variants[kind] == variants, kind
    assert our_types == captured_types
    for event in ours:
        assert TIMESTAMP.match(event["timestamp"]), event
