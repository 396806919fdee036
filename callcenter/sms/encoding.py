"""GSM 03.38 7-bit or UCS-2, and how many segments a text takes (pure).

A text fits GSM-7 when every character is in the basic table or its extension table (an extension
character costs two septets). Otherwise it goes as UCS-2, counted in UTF-16 code units (an emoji is two)
and never split inside a surrogate pair. Single messages hold 160 septets or 70 units; concatenated
ones lose a 6-byte header per segment: 153 septets or 67 units.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

_GSM_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION: Final = frozenset("^{}\\[~]|€\f")


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """How a text goes over the air: its encoding, length in septets or units, and segments."""

    encoding: Encoding
    units: int
    segments: int


def encoding_of(text: str) -> Encoding:
    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text):
        return Encoding.GSM7
    return Encoding.UCS2


def segment_info(text: str) -> SegmentInfo:
    """Encoding, length and segment count of ``text`` (an empty text is one segment)."""
    encoding = encoding_of(text)
    if encoding is Encoding.GSM7:
        costs = [2 if c in _GSM_EXTENSION else 1 for c in text]
        single, multi = 160, 153
    else:
        costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, multi = 70, 67
    total = sum(costs)
    if total <= single:
        return SegmentInfo(encoding, total, 1)
    # Greedy fill: an extension character's escape pair or a surrogate pair never straddles segments.
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return SegmentInfo(encoding, total, segments)
