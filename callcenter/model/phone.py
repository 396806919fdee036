"""Phone numbers: E.164 where they parse, raw otherwise, masked for logs (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import phonenumbers

from callcenter.errors import InvalidPhoneNumberError

#: How a number erased for data protection reads where it was (``erased:<keyed hash>``): never dialled.
ERASED_PREFIX: Final = "erased:"

#: Caller ids Asterisk and carriers use for a withheld number.
_WITHHELD = frozenset({"", "anonymous", "unknown", "restricted", "private", "unavailable", "withheld"})


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A caller's number as we keep it.

    ``e164`` is set when the raw text parses to a valid number (with ``default_region`` for national
    formats); ``raw`` is always what we were given, so nothing is lost when it does not parse.
    """

    raw: str
    e164: str | None

    @property
    def is_withheld(self) -> bool:
        return self.raw.strip().lower() in _WITHHELD

    @property
    def display(self) -> str:
        """The best form to store and show: E.164 when known, raw otherwise."""
        return self.e164 if self.e164 is not None else self.raw

    @property
    def masked(self) -> str:
        """A form safe for logs at info level: all but the last two digits hidden."""
        text = self.display
        if len(text) <= 4:
            return "*" * len(text)
        return text[:2] + "*" * (len(text) - 4) + text[-2:]

    def __str__(self) -> str:
        return self.masked


def parse_phone(raw: str, default_region: str = "US") -> PhoneNumber:
    """Read a caller id or typed number; never raises (unparseable numbers keep only ``raw``)."""
    text = raw.strip()
    if text.lower() in _WITHHELD:
        return PhoneNumber(raw=raw, e164=None)
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return PhoneNumber(raw=raw, e164=None)
    if not phonenumbers.is_valid_number(parsed):
        return PhoneNumber(raw=raw, e164=None)
    return PhoneNumber(raw=raw, e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def require_e164(raw: str, default_region: str = "US") -> str:
    """Return the E.164 form of ``raw`` or raise :class:`InvalidPhoneNumberError` saying why."""
    number = parse_phone(raw, default_region)
    if number.e164 is None:
        raise InvalidPhoneNumberError(f"not a valid phone number: {raw!r}")
    return number.e164


def mask_number(text: str) -> str:
    """Mask a number already in text form (for log lines)."""
    return PhoneNumber(raw=text, e164=None).masked
