"""The simulated Asterisk 20: ARI REST and events WebSocket, control API, traffic model (edge).

Only the composition root's demo and benchmark wiring and the tests import this package.
"""

from __future__ import annotations

from callcenter.simulator.ari_app import RecordedRequest, SimulatedAsterisk, make_ari_app
from callcenter.simulator.pbx import (
    ChannelId,
    ChannelState,
    DialplanVisit,
    EndpointBehaviour,
    EndpointConfig,
    LoopScheduler,
    Pbx,
    PbxChange,
    SimulatorError,
    VirtualScheduler,
)

__all__ = [
    "ChannelId",
    "ChannelState",
    "DialplanVisit",
    "EndpointBehaviour",
    "EndpointConfig",
    "LoopScheduler",
    "Pbx",
    "PbxChange",
    "RecordedRequest",
    "SimulatedAsterisk",
    "SimulatorError",
    "VirtualScheduler",
    "make_ari_app",
]
