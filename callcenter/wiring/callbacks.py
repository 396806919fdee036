"""Wiring of the callback service: its settings from ``CALLCENTER_CALLBACK_*`` and its ticker.

Part of the composition root (``callcenter/app.py``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from callcenter.callbacks.policy import OfferSettings
from callcenter.callbacks.service import CallbackService, CallbackSettings
from callcenter.callbacks.slots import SlotSettings
from callcenter.config import Settings

logger = logging.getLogger(__name__)


#: How often kept places are checked against the line (and bookings, now and then, against the plan).
CALLBACK_TICK_S: Final = 2.0


def callback_settings(settings: Settings) -> CallbackSettings:
    """The callback service's settings from ``CALLCENTER_CALLBACK_*``. :raises ValidationError:"""
    config = settings.callback
    return CallbackSettings(
        slots=SlotSettings(
            length_min=config.slot_min,
            callback_handle_s=config.handle_s,
            safety_margin=config.safety_margin,
            target_service_level=config.target_service_level,
            min_lead_s=config.min_lead_s,
        ),
        offer=OfferSettings(
            wait_threshold_s=config.offer_wait_s,
            position_threshold=config.offer_position,
            calls_per_agent=config.offer_calls_per_agent,
            grace_s=config.grace_s,
        ),
        grace_s=config.grace_s,
        horizon_days=config.horizon_days,
        default_region=settings.default_region,
        allowed_regions=config.allowed_regions,
    )


async def callback_tick(callbacks: CallbackService) -> None:
    while True:
        await asyncio.sleep(CALLBACK_TICK_S)
        await callbacks.tick()  # never raises
