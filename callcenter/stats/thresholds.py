"""The wallboard's colour thresholds: which figures turn amber or red, and when (pure).

Each threshold names a figure of the dictionary and two values: ``warn`` (amber) and ``alert`` (red).
For figures where more is worse (waiting callers, longest wait, abandon rate) ``alert`` must be at least
``warn``; for figures where less is worse (service level, closure rate, agents available) at most.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from callcenter.errors import ValidationError

#: Figure -> True when a lower value is worse.
LOWER_IS_WORSE: Final[dict[str, bool]] = {
    "calls_waiting": False,
    "longest_wait_s": False,
    "abandon_rate": False,
    "missed_rate": False,
    "asa_s": False,
    "service_level": True,
    "service_level_answered": True,
    "missed_closure_rate": True,
    "agents_available": True,
    "promise_kept_rate": True,
    "callbacks_overdue": False,
    "voicemails_untranscribed": False,
}

DEFAULT_THRESHOLDS: Final[dict[str, dict[str, float]]] = {
    "calls_waiting": {"warn": 3, "alert": 8},
    "longest_wait_s": {"warn": 60, "alert": 180},
    "service_level": {"warn": 0.8, "alert": 0.6},
    "abandon_rate": {"warn": 0.05, "alert": 0.1},
    "missed_closure_rate": {"warn": 0.8, "alert": 0.5},
}


def parse_thresholds(body: Mapping[str, object]) -> dict[str, dict[str, float]]:
    """Check a thresholds document. :raises ValidationError: naming the figure at fault."""
    result: dict[str, dict[str, float]] = {}
    for name, value in body.items():
        if name not in LOWER_IS_WORSE:
            raise ValidationError(
                f"{name}: not a figure with thresholds (one of {', '.join(LOWER_IS_WORSE)})"
            )
        if not isinstance(value, Mapping) or set(value) != {"warn", "alert"}:
            raise ValidationError(f'{name}: expected {{"warn": number, "alert": number}}')
        numbers = {}
        for key in ("warn", "alert"):
            item = value[key]
            if (
                isinstance(item, bool)
                or not isinstance(item, int | float)
                or not math.isfinite(item)
                or item < 0
            ):
                raise ValidationError(f"{name}.{key}: expected a finite number of at least 0, not {item!r}")
            numbers[key] = float(item)
        if LOWER_IS_WORSE[name] and numbers["alert"] > numbers["warn"]:
            raise ValidationError(f"{name}: lower is worse, so alert must not exceed warn")
        if not LOWER_IS_WORSE[name] and numbers["alert"] < numbers["warn"]:
            raise ValidationError(f"{name}: higher is worse, so alert must be at least warn")
        result[name] = numbers
    return result
