"""The classic AGI entry point over pipes, and the API route it posts to.

The test plays Asterisk on the program's stdin/stdout (the scripted peer's model answers each command),
while the real HTTP API runs on loopback with the in-memory store: the program never sees a database.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpServer

from callcenter.agi.outcome import READ_VARIABLES, CallOutcomeRecorder
from callcenter.api.agi_outcomes import AGI_OUTCOME_RECORDER
from callcenter.api.app import build_api
from callcenter.api.schemas import COMPONENTS
from callcenter.asterisk_names import AGI_CLASSIC_OUTCOME, VAR_OUTCOME
from callcenter.auth.service import AuthService
from callcenter.config import HttpSettings
from callcenter.model.events import CallEnded
from callcenter.model.vocabulary import CallOutcome, EntryPoint, Role
from callcenter.simulator.agi_peer import AgiCallModel, AgiPeer
from tests.conftest import FakeClock
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.store import InMemoryAuditLog, InMemoryCallRepository, InMemoryTokenRepository
from tests.service.api.conftest import assert_schema

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ROOT = Path(__file__).parents[3]
JOINED = 1_795_459_762.5
LINKEDID = "1795459760.41"
SECRET_NAME = "Zoe Q. Caller"


async def _healthy() -> None:
    """A dependency probe that succeeds."""


@dataclass
class Api:
    server: TestServer
    calls: InMemoryCallRepository
    bus: InMemoryEventBus
    supervisor: str
    agent: str

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


async def _api(aiohttp_server: AiohttpServer, clock: FakeClock, *, recorder: bool = True) -> Api:
    auth = AuthService(InMemoryTokenRepository(), InMemoryAuditLog(), clock)
    app = build_api(
        auth=auth,
        health_checks={"db": _healthy, "redis": _healthy, "ari": None},
        registry=CollectorRegistry(),
        settings=HttpSettings(),
    )
    calls, bus = InMemoryCallRepository(), InMemoryEventBus()
    if recorder:
        app[AGI_OUTCOME_RECORDER] = CallOutcomeRecorder(calls, bus, clock)
    _, supervisor = await auth.create_token(
        role=Role.SUPERVISOR, agent_id=None, label="asterisk agi", expires_at=None, actor="test"
    )
    _, agent = await auth.create_token(
        role=Role.AGENT, agent_id="a1", label="", expires_at=None, actor="test"
    )
    return Api(await aiohttp_server(app, host="127.0.0.1"), calls, bus, supervisor, agent)


@pytest.fixture
async def api(aiohttp_server: AiohttpServer, clock: FakeClock) -> Api:
    return await _api(aiohttp_server, clock)


def _channel(**variables: str) -> AgiPeer:
    values = {
        "UNIQUEID": LINKEDID,
        "CHANNEL(linkedid)": LINKEDID,
        "CALLERID(num)": "+14155550100",
        "CALLERID(name)": SECRET_NAME,
        "CC_QUEUE": "sales",
        "CC_ARRIVED_AT": f"{JOINED - 2:.3f}",
        "CC_QUEUE_JOINED_AT": f"{JOINED:.3f}",
        "CC_QUEUE_ENTERED_AT": f"{JOINED:.3f}",
    }
    values.update(variables)
    return AgiPeer(
        AGI_CLASSIC_OUTCOME, model=AgiCallModel(variables=values, dead=True, now=lambda: JOINED + 60)
    )


@dataclass
class Run:
    returncode: int
    stderr: str
    peer: AgiPeer


async def _run_classic(peer: AgiPeer, *args: str) -> Run:
    """Run ``python -m callcenter.agi.classic`` as Asterisk would, answering it from ``peer``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callcenter.agi.classic",
        *args,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    # Classic AGI: no agi_network lines; agi_request is the program's path.
    env = {k: v for k, v in peer.environment("", 0).items() if not k.startswith("agi_network")}
    env["agi_request"] = f"/var/lib/asterisk/agi-bin/{AGI_CLASSIC_OUTCOME}"
    process.stdin.write(("".join(f"{k}: {v}\n" for k, v in env.items()) + "\n").encode())
    async with asyncio.timeout(45):
        while raw := await process.stdout.readline():
            reply = peer.answer(raw.decode().rstrip("\n"))
            process.stdin.write("".join(f"{line}\n" for line in reply).encode())
            await process.stdin.drain()
        process.stdin.close()
        stderr = (await process.stderr.read()).decode()
        returncode = await process.wait()
    return Run(returncode, stderr, peer)


def _token_file(tmp_path: Path, token: str) -> str:
    path = tmp_path / "agi.token"
    path.write_text(token + "\n")
    return str(path)


# -- the classic program over pipes ---------------------------------------------------------------


async def test_the_classic_program_hands_the_outcome_to_the_api(api: Api, tmp_path: Path) -> None:
    run = await _run_classic(
        _channel(ABANDONED="TRUE", QUEUEPOSITION="2"),
        api.url,
        "--token-file",
        _token_file(tmp_path, api.supervisor),
    )

    assert run.returncode == 0, run.stderr
    record = await api.calls.get(LINKEDID)
    assert (record.outcome, record.entry_point, record.position) == (CallOutcome.ABANDONED, EntryPoint.AGI, 2)
    assert [type(e) for e in api.bus.published] == [CallEnded]
    # One read on the channel, then the outcome written back.
    assert [c[:3] for c in run.peer.commands] == [
        ["GET", "FULL", "VARIABLE"],
        ["SET", "VARIABLE", VAR_OUTCOME],
    ]
    assert run.peer.model.variables[VAR_OUTCOME] == "abandoned"
    assert api.supervisor not in run.stderr and SECRET_NAME not in run.stderr


async def test_the_classic_program_records_a_message_left_as_voicemail(api: Api, tmp_path: Path) -> None:
    """Issue 8: through the classic hook too, a message left makes the call voicemail."""
    run = await _run_classic(
        _channel(QUEUESTATUS="TIMEOUT", ABANDONED="TRUE", CC_VOICEMAIL="recorded"),
        api.url,
        "--token-file",
        _token_file(tmp_path, api.supervisor),
    )

    assert run.returncode == 0, run.stderr
    assert (await api.calls.get(LINKEDID)).outcome is CallOutcome.VOICEMAIL
    assert run.peer.model.variables[VAR_OUTCOME] == "voicemail"


async def test_the_classic_program_twice_for_one_call_records_one_outcome(api: Api, tmp_path: Path) -> None:
    token = _token_file(tmp_path, api.supervisor)
    first = await _run_classic(
        _channel(QUEUESTATUS="TIMEOUT", CC_QUEUE_LEFT_AT=f"{JOINED + 30:.3f}"), api.url, "--token-file", token
    )
    second = await _run_classic(
        _channel(MEMBERINTERFACE="PJSIP/1001", QEHOLDTIME="4"), api.url, "--token-file", token
    )

    assert (first.returncode, second.returncode) == (0, 0)
    assert (await api.calls.get(LINKEDID)).outcome is CallOutcome.UNANSWERED_TIMEOUT
    assert second.peer.model.variables[VAR_OUTCOME] == "unanswered_timeout"
    assert len(api.bus.published) == 1


async def test_a_refused_token_fails_the_agi_and_records_nothing(api: Api, tmp_path: Path) -> None:
    run = await _run_classic(
        _channel(ABANDONED="TRUE"), api.url, "--token-file", _token_file(tmp_path, "cc_" + "Q" * 43)
    )

    assert run.returncode == 1  # AGISTATUS=FAILURE
    assert "401" in run.stderr and "Q" * 43 not in run.stderr
    assert api.calls.calls == {}
    assert VAR_OUTCOME not in run.peer.model.variables


async def test_an_agent_token_is_not_enough(api: Api, tmp_path: Path) -> None:
    run = await _run_classic(
        _channel(ABANDONED="TRUE"), api.url, "--token-file", _token_file(tmp_path, api.agent)
    )
    assert run.returncode == 1 and "403" in run.stderr


async def test_a_missing_token_file_fails_cleanly(api: Api, tmp_path: Path) -> None:
    run = await _run_classic(_channel(), api.url, "--token-file", str(tmp_path / "absent"))
    assert run.returncode == 1 and "outcome not recorded" in run.stderr
    assert run.peer.commands == []  # nothing asked of Asterisk before the token was there


async def test_an_unreachable_api_fails_cleanly(tmp_path: Path) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()

    run = await _run_classic(
        _channel(ABANDONED="TRUE"), f"http://127.0.0.1:{port}", "--token-file", _token_file(tmp_path, "t")
    )

    assert run.returncode == 1 and "outcome not recorded" in run.stderr


# -- the API route --------------------------------------------------------------------------------


def _variables(**values: str) -> dict[str, str]:
    return {
        "UNIQUEID": LINKEDID,
        "LINKEDID": LINKEDID,
        "CALLER": "+14155550100",
        "CC_QUEUE": "sales",
        **values,
    }


async def _post(api: Api, body: object, token: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token or api.supervisor}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(api.url + "/api/v1/agi/call-outcome", json=body, headers=headers) as response:
            return response.status, json.loads(await response.text())


async def test_the_route_answers_the_call_as_recorded(api: Api) -> None:
    body = {"variables": _variables(CC_QUEUE_JOINED_AT=f"{JOINED}", ABANDONED="TRUE", NOW=f"{JOINED + 2}")}

    status, call = await _post(api, body)
    again_status, again = await _post(api, {"variables": _variables(MEMBERINTERFACE="PJSIP/1")})

    assert status == 200
    assert_schema("Call", call)
    assert call["outcome"] == "short_abandon" and call["entry_point"] == "agi" and call["missed"] is True
    assert again_status == 200 and again == call
    assert len(api.bus.published) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"variables": _variables(), "extra": 1}, "unknown field"),
        ({"variables": ["UNIQUEID"]}, "object of strings"),
        ({"variables": {"UNIQUEID": 1}}, "object of strings"),
        ({"variables": {"EVIL": "x", **_variables()}}, "unknown variable"),
        ({"variables": {"CC_QUEUE": "sales"}}, "UNIQUEID or LINKEDID"),
    ],
)
async def test_the_route_refuses_what_it_cannot_use(api: Api, body: object, message: str) -> None:
    status, error = await _post(api, body)
    assert status == 400 and error["error"] == "invalid_request"
    assert message in str(error["message"])
    assert api.calls.calls == {}


async def test_the_route_answers_503_where_no_recorder_runs(
    aiohttp_server: AiohttpServer, clock: FakeClock
) -> None:
    api = await _api(aiohttp_server, clock, recorder=False)
    status, error = await _post(api, {"variables": _variables()})
    assert status == 503 and error["error"] == "unavailable"


def test_the_route_schema_lists_exactly_what_the_hook_reads() -> None:
    properties = COMPONENTS["AgiCallOutcome"]["properties"]
    assert isinstance(properties, dict)
    variables = properties["variables"]
    assert isinstance(variables, dict)
    assert set(variables["properties"]) == set(READ_VARIABLES)
