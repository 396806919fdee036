"""The ARI link against the simulated Asterisk: connect, resync first, survive every fault, one owner."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NoReturn

import aiohttp
import pytest
import redis.asyncio as aioredis

from callcenter.ari.client import AriClient
from callcenter.ari.events import ChannelHangupRequest, StasisEnd, StasisStart
from callcenter.ari.link import AriLink, LinkStatus
from callcenter.config import AriSettings
from callcenter.errors import AsteriskUnavailableError, LeaseLostError, NotFoundError
from callcenter.simulator import SimulatedAsterisk
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_lease import RedisLease

from .conftest import APP, EventLog, Links, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


async def app_registered(client: AriClient) -> bool:
    try:
        await client.get_application(APP)
    except NotFoundError:
        return False
    return True


async def test_connects_registers_the_app_and_delivers_events_with_their_receipt_time(
    links: Links, sim: SimulatedAsterisk, client: AriClient
) -> None:
    log = EventLog()
    link = links.start(log.handle, log.resync)
    assert link.status is LinkStatus.DOWN
    await link.wait_up(5)
    assert await app_registered(client)
    assert log.resyncs == 1 and link.connects == 1
    await link.check()  # health: up

    before = datetime.now(UTC)
    channel_id = sim.incoming_call(caller="+14155550100", app_args=["sales"])
    await eventually(lambda: bool(log.events(StasisStart)), what="StasisStart")
    event, received = log.seen[-1]
    assert isinstance(event, StasisStart)
    assert (event.channel.id, event.args) == (channel_id, ("sales",))
    assert before <= received.wall <= datetime.now(UTC)
    assert received.monotonic_s > 0


async def test_resync_runs_before_any_event_and_events_arriving_meanwhile_are_kept(
    links: Links, sim: SimulatedAsterisk
) -> None:
    log = EventLog(resync_gate=asyncio.Event())
    link = links.start(log.handle, log.resync)
    async with asyncio.timeout(5):
        await log.resync_entered.wait()
    # A call arrives while the resync still runs: its events must wait, not be lost.
    channel_id = sim.incoming_call()
    sim.hangup(channel_id)
    await sim.drain()  # written to our socket
    assert link.status is LinkStatus.DOWN and log.seen == []
    log.resync_gate.set()  # type: ignore[union-attr]
    await link.wait_up(5)
    await eventually(lambda: bool(log.events(StasisEnd)), what="StasisEnd")
    # (The RTPAUDIOQOS ChannelVarset events before the hang-up are left out of the comparison.)
    assert [name for name in log.order if name != "ChannelVarset"] == [
        "resync",
        "StasisStart",
        "ChannelHangupRequest",
        "StasisEnd",
    ]
    # The receipt time is when the frame reached the link, not when it was dispatched.
    first_received = log.seen[0][1]
    assert all(first_received.monotonic_s <= received.monotonic_s for _, received in log.seen)


async def test_reconnects_and_resyncs_after_the_websocket_is_dropped(
    links: Links, sim: SimulatedAsterisk, client: AriClient
) -> None:
    log = EventLog()
    link = links.start(log.handle, log.resync)
    await link.wait_up(5)
    sim.drop_websockets()
    await link.wait_status(LinkStatus.DOWN, 5)
    await link.wait_up(5)
    assert (link.connects, log.resyncs) == (2, 2)
    assert await app_registered(client)
    assert sim.websockets == 1
    channel_id = sim.incoming_call()
    await eventually(lambda: any(e.channel.id == channel_id for e in log.events(StasisStart)), what="event")


async def test_survives_an_asterisk_restart_with_capped_backoff_through_not_booted(
    links: Links, sim: SimulatedAsterisk, client: AriClient, caplog: pytest.LogCaptureFixture
) -> None:
    """``core restart now``: the call in Stasis is cut, TCP EOF with no close frame, then 503 while booting."""
    log = EventLog()
    link = links.start(log.handle, log.resync, reconnect_min_s=0.01, reconnect_max_s=0.1)
    await link.wait_up(5)
    channel_id = sim.incoming_call()
    await eventually(lambda: bool(log.events(StasisStart)), what="StasisStart")

    with caplog.at_level(logging.INFO, logger="callcenter.ari.link"):
        await sim.restart(booting_s=30)
        # The events sent before the EOF still reach the handler.
        await eventually(lambda: bool(log.events(StasisEnd)), what="StasisEnd before EOF")
        await link.wait_status(LinkStatus.DOWN, 5)
        await eventually(lambda: "503" in (link.last_error or ""), what="a 503 while booting")
        await eventually(lambda: len(pauses(caplog)) >= 7, what="several reconnect attempts")
    hangup = log.events(ChannelHangupRequest)[-1]
    assert hangup.channel.id == channel_id
    assert (hangup.cause, hangup.soft) == (4, True)
    # Capped exponential backoff with jitter: the pauses grow from ~min to at most max.
    waits = pauses(caplog)
    assert max(waits) <= 0.1 and waits[0] <= 0.01 and max(waits) > 2 * waits[0]
    with pytest.raises(AsteriskUnavailableError):
        await link.check()
    with pytest.raises(AsteriskUnavailableError, match="Asterisk not booted"):
        await client.get_application(APP)

    await sim.advance(30)  # Asterisk finished booting; the app is unregistered until we reconnect
    await link.wait_up(5)
    assert link.connects == 2 and log.resyncs == 2
    assert await app_registered(client)


def pauses(caplog: pytest.LogCaptureFixture) -> list[float]:
    prefix = "ARI link: reconnecting in "
    return [
        float(r.getMessage()[len(prefix) : -1]) for r in caplog.records if r.getMessage().startswith(prefix)
    ]


async def test_a_peer_that_stops_answering_pings_is_detected_by_the_heartbeat(
    links: Links, sim: SimulatedAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    log = EventLog()
    link = links.start(log.handle, log.resync, heartbeat_s=0.2)
    await link.wait_up(5)
    with caplog.at_level(logging.WARNING, logger="callcenter.ari.link"):
        sim.stop_ponging()
        await link.wait_status(LinkStatus.DOWN, 5)
    assert any("PONG" in record.getMessage() for record in caplog.records)
    sim.start_ponging()
    await link.wait_up(5)
    await eventually(lambda: link.connects >= 2, what="a new socket")


async def test_a_non_json_frame_is_skipped_and_the_link_stays_up(
    links: Links, sim: SimulatedAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    log = EventLog()
    link = links.start(log.handle, log.resync)
    await link.wait_up(5)
    with caplog.at_level(logging.WARNING, logger="callcenter.ari.link"):
        sim.send_raw("not json")
        sim.send_raw('{"type": "StasisStart", "application": "callcenter"}')  # JSON, but no channel
        sim.send_raw('{"type": "SomethingNew", "application": "callcenter"}')  # unknown: skipped quietly
        channel_id = sim.incoming_call()
        await eventually(lambda: bool(log.events(StasisStart)), what="the next good event")
    assert link.frames_skipped == 2
    assert [type(e).__name__ for e, _ in log.seen] == ["StasisStart"]
    assert log.events(StasisStart)[0].channel.id == channel_id
    assert (link.status, link.connects) == (LinkStatus.UP, 1)
    assert any("malformed frame" in r.getMessage() and "not json" in r.getMessage() for r in caplog.records)


async def test_a_stalled_event_loop_is_named_in_the_log_with_its_length(
    links: Links, sim: SimulatedAsterisk, caplog: pytest.LogCaptureFixture
) -> None:
    """A stall holds the lease's renewal and every event: the log must say so, not only "lease lost"."""
    log = EventLog()
    link = links.start(log.handle, log.resync)
    await link.wait_up(5)
    with caplog.at_level(logging.WARNING, logger="callcenter.ari.link"):
        time.sleep(1.3)  # noqa: ASYNC251 - the stall itself: a blocking call on the loop
        await eventually(lambda: link.loop_late_max_s >= 1.0, what="the stall measured")
    assert any("event loop ran" in r.getMessage() and "late" in r.getMessage() for r in caplog.records)
    assert link.status is LinkStatus.UP


async def test_a_failing_handler_does_not_stop_the_read_loop(links: Links, sim: SimulatedAsterisk) -> None:
    log = EventLog(fail_types=(StasisStart,))
    link = links.start(log.handle, log.resync)
    await link.wait_up(5)
    channel_id = sim.incoming_call()
    sim.hangup(channel_id)
    await eventually(lambda: bool(log.events(StasisEnd)), what="the events after the failure")
    assert link.handler_errors == 1
    assert (link.status, link.connects) == (LinkStatus.UP, 1)


async def test_a_failing_resync_closes_the_socket_and_retries(links: Links, sim: SimulatedAsterisk) -> None:
    attempts: list[int] = []

    async def flaky_resync() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise AsteriskUnavailableError("GET /channels answered 503")

    log = EventLog()
    link = links.start(log.handle, flaky_resync)
    await link.wait_up(5)
    assert len(attempts) == 3 and link.connects == 3
    assert sim.websockets == 1


async def test_a_newer_websocket_taking_the_app_sends_the_old_link_away(
    links: Links, sim: SimulatedAsterisk, ari_settings: AriSettings
) -> None:
    """Without a lease, ApplicationReplaced: the older link leaves and waits its longest backoff."""
    first_log, second_log = EventLog(), EventLog()
    first = links.start(first_log.handle, first_log.resync, reconnect_max_s=60)
    await first.wait_up(5)
    second = links.start(second_log.handle, second_log.resync)
    await second.wait_up(5)
    await first.wait_status(LinkStatus.DOWN, 5)
    assert "taken over" in (first.last_error or "")
    sim.incoming_call()
    await eventually(lambda: bool(second_log.events(StasisStart)), what="the new owner's event")
    assert first_log.events(StasisStart) == []


# -- one owner per Asterisk: the lease ------------------------------------------------------------


async def test_with_one_lease_only_one_of_two_links_connects(
    leased_links: Links,
    sim: SimulatedAsterisk,
    make_lease: Callable[..., RedisLease],
    client: AriClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a_log, b_log = EventLog(), EventLog()
    a = leased_links.start(a_log.handle, a_log.resync, lease=make_lease("node-a"), standby_retry_s=0.02)
    await a.wait_up(5)
    with caplog.at_level(logging.DEBUG, logger="callcenter.ari.link"):
        b = leased_links.start(b_log.handle, b_log.resync, lease=make_lease("node-b"), standby_retry_s=0.02)
        await b.wait_status(LinkStatus.STANDBY, 5)
        # Several rounds of trying to take the lease later, B still has not connected.
        await eventually(
            lambda: sum("held by another process" in r.getMessage() for r in caplog.records) >= 5,
            what="B retrying the lease",
        )
    assert sim.websockets == 1
    assert (b.connects, b_log.resyncs) == (0, 0)
    assert a.status is LinkStatus.UP and await app_registered(client)
    await b.check()  # standing by is healthy while ARI answers REST


async def test_losing_the_lease_closes_the_socket_and_the_new_holder_connects(
    leased_links: Links,
    sim: SimulatedAsterisk,
    make_lease: Callable[..., RedisLease],
    redis_client: aioredis.Redis,
    lease_keys: RedisKeys,
) -> None:
    a_log, b_log = EventLog(), EventLog()
    lease_a, lease_b = make_lease("node-a", ttl_ms=300), make_lease("node-b", ttl_ms=300)
    a = leased_links.start(a_log.handle, a_log.resync, lease=lease_a, standby_retry_s=0.05)
    await a.wait_up(5)
    b = leased_links.start(b_log.handle, b_log.resync, lease=lease_b, standby_retry_s=0.05)
    await b.wait_status(LinkStatus.STANDBY, 5)

    # A's lease lapses (as after a long pause) and B takes it before A renews.
    await redis_client.delete(lease_keys.lease("ari-link.test"))
    assert await lease_b.acquire() is not None
    await a.wait_status(LinkStatus.STANDBY, 5)
    await b.wait_up(5)
    await eventually(lambda: sim.websockets == 1, what="only the new holder's socket")
    assert a.last_error == "lease lost"
    sim.incoming_call()
    await eventually(lambda: bool(b_log.events(StasisStart)), what="B receives the events")
    assert a_log.events(StasisStart) == []
    # A, replaced by B's socket, did not take the application back before learning of its loss (a
    # gap with no application: calls then fail into the dialplan's fallback).
    assert b.last_error is None and b.status is LinkStatus.UP


async def test_cancelling_the_link_releases_the_lease_and_closes_the_socket(
    leased_links: Links,
    sim: SimulatedAsterisk,
    make_lease: Callable[..., RedisLease],
    redis_client: aioredis.Redis,
    lease_keys: RedisKeys,
) -> None:
    log = EventLog()
    link = leased_links.start(log.handle, log.resync, lease=make_lease("node-a", ttl_ms=5_000))
    await link.wait_up(5)
    assert await redis_client.exists(lease_keys.lease("ari-link.test")) == 1
    await leased_links.stop(link)
    assert link.status is LinkStatus.DOWN
    assert await redis_client.exists(lease_keys.lease("ari-link.test")) == 0
    await eventually(lambda: sim.websockets == 0, what="the socket closed")


class _LostWhileStopping:
    """A real lease whose keeper reports it lost at the moment the link's task is cancelled.

    What a stopping process hits: its dispatcher's lease is gated on the queue's link, which the same
    shutdown has just stopped, so the lease is "lost" as the dispatcher's link is cancelled.
    """

    def __init__(self, inner: RedisLease) -> None:
        self._inner = inner
        self.stop_link: Callable[[], object] = lambda: None
        self.cue = asyncio.Event()

    @property
    def token(self) -> int | None:
        return self._inner.token

    @property
    def lost(self) -> asyncio.Event:
        return self._inner.lost

    async def acquire(self) -> int | None:
        return None if self.cue.is_set() else await self._inner.acquire()

    async def renew(self) -> bool:
        return await self._inner.renew()

    async def release(self) -> None:
        await self._inner.release()

    async def check_token(self, token: int) -> bool:
        return await self._inner.check_token(token)

    async def keep(self) -> NoReturn:
        await self.cue.wait()
        self.stop_link()
        raise LeaseLostError("gate closed")


async def test_a_link_cancelled_as_its_lease_is_lost_stops_and_does_not_stand_by_for_ever(
    sim: SimulatedAsterisk,
    session: aiohttp.ClientSession,
    ari_settings: AriSettings,
    make_lease: Callable[..., RedisLease],
) -> None:
    """Found as a hung shutdown: asyncio's TaskGroup (3.11) drops a cancellation that arrives while a
    child fails, so the link took the lost lease for a hand-over, stood by and never stopped."""
    lease = _LostWhileStopping(make_lease("node-a"))
    log = EventLog()
    link = AriLink(
        session, ari_settings, log.handle, on_connected=log.resync, lease=lease, standby_retry_s=0.02
    )
    task = asyncio.create_task(link.run())
    await link.wait_up(5)
    lease.stop_link = task.cancel
    lease.cue.set()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await task
    assert link.status is LinkStatus.DOWN
