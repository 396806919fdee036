"""The FastAGI server against scripted and misbehaving peers on loopback."""

from __future__ import annotations

import asyncio
import logging

import pytest

from callcenter.agi import protocol
from callcenter.agi.channel import AgiChannel
from callcenter.agi.server import AgiServer, AgiSession, start_agi_server
from callcenter.simulator.agi_peer import AgiCallModel, AgiPeer
from tests.integration.agi.conftest import HOST, env_block, raw_session, serve_peers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


async def _noop_script(session: AgiSession) -> None:
    await session.send(protocol.noop())


async def test_a_script_runs_by_path_and_the_server_closes_the_socket_itself() -> None:
    seen: list[str] = []

    async def ivr(session: AgiSession) -> None:
        seen.append(session.env.script)
        reply = await session.send(protocol.answer())
        assert reply.ok

    peer = AgiPeer("ivr", idle_timeout_s=5)
    await serve_peers({"ivr": ivr}, peer)

    assert seen == ["ivr"]
    assert peer.lines == ["ANSWER"]
    assert peer.closed_by_server and not peer.failure and not peer.timed_out


async def test_an_unknown_script_fails_back_to_asterisk_and_the_call_goes_on() -> None:
    peer = AgiPeer("no-such-script")

    await serve_peers({"ivr": _noop_script}, peer)

    # AGISTATUS=FAILURE: Asterisk continues at the next priority (res_agi: a line starting "failure").
    assert peer.failure
    assert peer.commands == [["VERBOSE", "callcenter: no AGI script named 'no-such-script' here", "1"]]


async def test_a_script_path_with_a_query_and_leading_slash_finds_its_script() -> None:
    peer = AgiPeer("/ivr?queue=support")
    await serve_peers({"ivr": _noop_script}, peer)
    assert peer.lines == ["NOOP"] and not peer.failure


async def test_a_failing_script_hands_the_live_caller_back_with_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(session: AgiSession) -> None:
        await session.send(protocol.answer())
        raise RuntimeError("bug")

    peer = AgiPeer("broken")
    with caplog.at_level(logging.ERROR):
        await serve_peers({"broken": broken}, peer)

    assert peer.failure
    assert "script failed" in caplog.text


async def test_a_script_failing_after_the_hang_up_sends_no_failure() -> None:
    async def broken(session: AgiSession) -> None:
        await session.send(protocol.stream_file("beep"))
        await session.send(protocol.noop())
        assert session.hung_up
        raise RuntimeError("bug after the caller left")

    peer = AgiPeer("broken", model=AgiCallModel(hangup_on="STREAM FILE"))
    await serve_peers({"broken": broken}, peer)

    assert not peer.failure and peer.closed_by_server


async def test_the_hangup_line_marks_the_session_hung_up() -> None:
    states: list[bool] = []

    async def script(session: AgiSession) -> None:
        await session.send(protocol.hangup())
        states.append(session.hung_up)
        reply = await session.send(protocol.noop())  # preceded by the unsolicited HANGUP line
        states.append(session.hung_up)
        assert reply.ok
        reply = await session.send(protocol.stream_file("beep"))
        assert reply.dead_channel

    peer = AgiPeer("s")
    await serve_peers({"s": script}, peer)

    assert states == [False, True]
    assert peer.closed_by_server


# -- bad input: each ends its own session only --------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40 + b"\n",
        b"agi_network: yes\nagi_network: yes\n\n",
        b"agi_network: yes\n" + b"agi_x: " + b"y" * 20_000 + b"\n\n",
    ],
    ids=["http", "tls", "repeated-key", "line-over-limit"],
)
async def test_garbage_closes_that_session_without_running_a_script(data: bytes) -> None:
    ran: list[str] = []

    async def script(session: AgiSession) -> None:
        ran.append(session.env.script)

    async with AgiServer({"ivr": script}, host=HOST, port=0) as server:
        sent_back = await raw_session(server.port, data)
        good = await AgiPeer("ivr").run(HOST, server.port)

    assert sent_back == b""
    assert ran == ["ivr"]  # only the well-behaved peer's
    assert good.closed_by_server


async def test_a_huge_block_is_cut_at_the_limit() -> None:
    block = b"".join(f"agi_arg_{n}: {'x' * 100}\n".encode() for n in range(2000)) + b"\n"
    async with AgiServer({"ivr": _noop_script}, host=HOST, port=0, max_env_bytes=10_000) as server:
        assert await raw_session(server.port, block) == b""


async def test_a_peer_that_stops_mid_block_is_closed() -> None:
    async with AgiServer({"ivr": _noop_script}, host=HOST, port=0) as server:
        assert await raw_session(server.port, b"agi_network: yes\nagi_chan", close=True) == b""


async def test_a_peer_that_never_sends_the_blank_line_does_not_hold_up_others() -> None:
    async with AgiServer({"ivr": _noop_script}, host=HOST, port=0, env_timeout_s=1.0) as server:
        stalled = asyncio.create_task(raw_session(server.port, b"agi_network: yes\n"))
        good = await AgiPeer("ivr").run(HOST, server.port)
        assert not stalled.done()  # still waiting while the other session ran to its end
        assert good.lines == ["NOOP"] and good.closed_by_server
        assert await stalled == b""  # closed once its block timed out


async def test_a_caller_id_with_line_breaks_cannot_forge_the_block_or_a_reply() -> None:
    """Asterisk writes agi_callerid/agi_calleridname unescaped: a caller id holding line breaks
    (a PJSIP user part can carry %0A) adds lines to the block, or ends it and forges replies."""
    ran: list[str] = []
    errors: list[Exception] = []

    async def script(session: AgiSession) -> None:
        ran.append(session.env.script)
        try:
            await AgiChannel(session).get_vars(("CALLERID(num)",))
        except protocol.AgiProtocolError as exc:
            errors.append(exc)
            raise

    overriding = AgiPeer("ivr", env={"agi_calleridname": "x\nagi_network_script: admin"})
    forging = AgiPeer("ivr", env={"agi_calleridname": "x\n\n200 result=1 (dg==|forged)"})
    await serve_peers({"ivr": script, "admin": script}, overriding)
    await serve_peers({"ivr": script}, forging)

    assert overriding.lines == []  # a key sent twice: the block is refused, no script runs
    assert ran == ["ivr"]  # the forging peer's block ended early at its blank line ...
    assert forging.lines[0].startswith("GET FULL VARIABLE")  # ... and its forged reply did not pass
    assert len(errors) == 1 and "nonce" in str(errors[0])
    assert forging.closed_by_server


async def test_a_peer_that_never_answers_a_command_ends_that_session() -> None:
    errors: list[Exception] = []

    async def script(session: AgiSession) -> None:
        try:
            await session.send(protocol.noop(), timeout_s=0.5)
        except protocol.AgiConnectionClosedError as exc:
            errors.append(exc)
            raise

    async with AgiServer({"ivr": script}, host=HOST, port=0) as server:
        sent = await raw_session(server.port, env_block("ivr"))

    assert sent == b"NOOP\nFAILURE\n"  # AGISTATUS=FAILURE, then the server closed the connection
    assert len(errors) == 1 and "no reply" in str(errors[0])


async def test_a_reply_that_is_garbage_ends_that_session() -> None:
    async def script(session: AgiSession) -> None:
        await session.send(protocol.noop())

    peer = AgiPeer("ivr", rules=[lambda line, argv: ["I am not Asterisk"]])
    await serve_peers({"ivr": script}, peer)
    assert peer.failure  # out of step: FAILURE, and the call continues in the dialplan


async def test_many_sessions_run_side_by_side() -> None:
    peers = [AgiPeer("ivr", model=AgiCallModel(variables={"X": str(n)})) for n in range(20)]
    values: list[str] = []

    async def script(session: AgiSession) -> None:
        reply = await session.send(protocol.get_variable("X"))
        assert reply.data is not None
        values.append(reply.data)

    await serve_peers({"ivr": script}, *peers)

    assert sorted(values, key=int) == [str(n) for n in range(20)]
    assert all(p.closed_by_server for p in peers)


# -- shutdown ------------------------------------------------------------------------------------


async def test_close_lets_a_running_script_finish_within_the_grace_period() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(session: AgiSession) -> None:
        started.set()
        await release.wait()
        await session.send(protocol.noop())

    server = AgiServer({"slow": slow}, host=HOST, port=0, shutdown_grace_s=10)
    await server.start()
    peer_task = asyncio.create_task(AgiPeer("slow", idle_timeout_s=10).run(HOST, server.port))
    await started.wait()
    closing = asyncio.create_task(server.close())
    await asyncio.sleep(0)  # let close() stop accepting first
    with pytest.raises(OSError):
        await asyncio.open_connection(HOST, server.port)
    release.set()
    await closing
    peer = await peer_task

    assert peer.lines == ["NOOP"] and peer.closed_by_server


async def test_close_cancels_scripts_still_running_after_the_grace_period() -> None:
    started = asyncio.Event()

    async def stuck(session: AgiSession) -> None:
        started.set()
        await asyncio.Event().wait()

    server = AgiServer({"stuck": stuck}, host=HOST, port=0, shutdown_grace_s=0.2)
    await server.start()
    peer_task = asyncio.create_task(AgiPeer("stuck", idle_timeout_s=10).run(HOST, server.port))
    await started.wait()
    await server.close()
    peer = await peer_task

    assert peer.closed_by_server  # the socket closed: Asterisk continues the call in the dialplan
    assert server.active_sessions == 0


async def test_start_agi_server_listens_where_the_settings_say() -> None:
    class Listen:
        host = HOST
        port = 0

    async with start_agi_server(Listen(), {"ivr": _noop_script}) as server:
        peer = await AgiPeer("ivr").run(HOST, server.port)
    assert peer.lines == ["NOOP"]
