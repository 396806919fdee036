"""Where a number's owner is: time zones and region from the number or their contact record (pure)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import geocoder
from phonenumbers import timezone as phone_timezone

from callcenter.sms.quiet import Recipient

_US_STATES: Final = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS",
    "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA",
    "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO", "Montana": "MT",
    "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM",
    "New York": "NY", "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK",
    "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT",
    "Virginia": "VA", "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "Washington D.C.": "DC",
}  # fmt: skip
_STATE_CODES: Final = frozenset(_US_STATES.values())


class LineType(StrEnum):
    """What the numbering plan says about a number (``unknown`` where it cannot tell)."""

    MOBILE = "mobile"
    FIXED = "fixed"
    OTHER = "other"
    UNKNOWN = "unknown"


def line_type(e164: str) -> LineType:
    """Mobile, fixed, other (toll-free, premium, VoIP...) or unknown (``FIXED_LINE_OR_MOBILE``)."""
    kind = phonenumbers.number_type(phonenumbers.parse(e164, None))
    if kind == phonenumbers.PhoneNumberType.MOBILE:
        return LineType.MOBILE
    if kind == phonenumbers.PhoneNumberType.FIXED_LINE:
        return LineType.FIXED
    if kind in (phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE, phonenumbers.PhoneNumberType.UNKNOWN):
        return LineType.UNKNOWN
    return LineType.OTHER


def region_of(e164: str) -> str | None:
    """An ISO 3166-2 style region (``US-TX``) where the number tells, else the country (``FR``)."""
    number = phonenumbers.parse(e164, None)
    country = phonenumbers.region_code_for_number(number)
    if country != "US":
        return country or None
    where = geocoder.description_for_number(number, "en")
    # The US geocoder answers "Dallas, TX" or a state's name ("Texas").
    tail = where.rsplit(", ", 1)[-1]
    code = tail if tail in _STATE_CODES else _US_STATES.get(where)
    return f"US-{code}" if code else "US"


def recipient_for(e164: str, *, zone: str | None = None, region: str | None = None) -> Recipient:
    """The recipient's zones and region: the contact's own where given, else the number's.

    :param zone: an IANA zone from the contact record (wins over the number's zones).
    :param region: a region code from the contact record (wins over the number's).
    """
    zones: tuple[ZoneInfo, ...] = ()
    if zone:
        try:
            zones = (ZoneInfo(zone),)
        except (ZoneInfoNotFoundError, ValueError):
            zones = ()
    if not zones:
        names = phone_timezone.time_zones_for_number(phonenumbers.parse(e164, None))
        zones = tuple(_zones(names))
    if not zones:
        zones = (ZoneInfo("UTC"),)
    return Recipient(zones=zones, region=region or region_of(e164))


def _zones(names: tuple[str, ...]) -> list[ZoneInfo]:
    found = []
    for name in names:
        if name == phone_timezone.UNKNOWN_TIMEZONE:
            continue
        try:
            found.append(ZoneInfo(name))
        except ZoneInfoNotFoundError:
            continue
    return found
