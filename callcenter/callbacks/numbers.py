"""Whether a number may be called back: valid, dialable, not premium, in an allowed region (pure).

Refusals carry a stable :class:`NumberRefusal` code so the IVR can play the matching prompt and the
API can answer a clear error. A withheld caller id is no number at all: the caller must key one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import phonenumbers
from phonenumbers import PhoneNumberType

from callcenter.model.phone import PhoneNumber

#: Longest entry accepted from a keypad or a body (E.164 has at most 15 digits, plus a prefix).
MAX_NUMBER_LENGTH: Final = 20

# Numbers that cost the business a premium, or reach no person we could call back.
_REFUSED_TYPES: Final = frozenset(
    {
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.SHARED_COST,
        PhoneNumberType.UAN,
        PhoneNumberType.VOICEMAIL,
    }
)


class NumberRefusal(StrEnum):
    """Why a number is not called back (stable codes)."""

    WITHHELD = "withheld"
    INVALID = "invalid"
    PREMIUM = "premium"
    REGION = "region"


@dataclass(frozen=True, slots=True)
class NumberCheck:
    """The E.164 form of an accepted number, or why it was refused."""

    e164: str | None
    refusal: NumberRefusal | None = None

    @property
    def ok(self) -> bool:
        return self.e164 is not None


def check_callback_number(
    raw: str, *, default_region: str = "US", allowed_regions: Collection[str] = ()
) -> NumberCheck:
    """Check a caller id or a keyed number for a callback.

    :param allowed_regions: ISO region codes we call back; empty allows every region.
    """
    text = raw.strip()
    if PhoneNumber(raw=text, e164=None).is_withheld:
        return NumberCheck(None, NumberRefusal.WITHHELD)
    if len(text) > MAX_NUMBER_LENGTH:
        return NumberCheck(None, NumberRefusal.INVALID)
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return NumberCheck(None, NumberRefusal.INVALID)
    if not phonenumbers.is_valid_number(parsed):
        return NumberCheck(None, NumberRefusal.INVALID)
    if phonenumbers.number_type(parsed) in _REFUSED_TYPES:
        return NumberCheck(None, NumberRefusal.PREMIUM)
    region = phonenumbers.region_code_for_number(parsed)
    if allowed_regions and region not in allowed_regions:
        return NumberCheck(None, NumberRefusal.REGION)
    return NumberCheck(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def keyed_number(digits: str) -> str:
    """A number keyed on a phone pad as text to parse: a leading ``*`` stands for ``+``."""
    if digits.startswith("*"):
        return "+" + digits[1:]
    return digits
