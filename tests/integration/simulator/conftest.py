"""Fixtures for the simulated Asterisk: a simulator in virtual time and an ARI client served on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from callcenter.simulator import SimulatedAsterisk
from tests.integration.simulator.ari_client import BASIC, PASSWORD, USER, Ari

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def sim() -> SimulatedAsterisk:
    # chan_sip-style names, like the captures: SIP/sipp-00000000.
    return SimulatedAsterisk(users={USER: PASSWORD}, inbound_tech="SIP", inbound_trunk="sipp")


@pytest.fixture
async def ari(sim: SimulatedAsterisk, aiohttp_client: AiohttpClient) -> AsyncIterator[Ari]:
    app: web.Application = sim.app
    client = await aiohttp_client(app, headers=BASIC)
    helper = Ari(sim, client)
    yield helper
    await helper.close()
