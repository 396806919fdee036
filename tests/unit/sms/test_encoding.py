"""GSM-7 or UCS-2 and segment counting."""

from __future__ import annotations

import pytest

from callcenter.sms.encoding import Encoding, segment_info


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", Encoding.GSM7, 0, 1),
        ("a" * 160, Encoding.GSM7, 160, 1),
        ("a" * 161, Encoding.GSM7, 161, 2),
        ("a" * 306, Encoding.GSM7, 306, 2),
        ("a" * 307, Encoding.GSM7, 307, 3),
        ("€" * 80, Encoding.GSM7, 160, 1),  # an extension character costs two septets
        ("€" * 81, Encoding.GSM7, 162, 2),
        ("a" * 152 + "€" + "a" * 10, Encoding.GSM7, 164, 2),  # the escape pair moves whole to segment 2
        ("Café à Paris, ça coûte 5 £", Encoding.UCS2, 26, 1),  # û and ç are not in GSM-7 (Ç is)
        ("Ça va? Ñandú", Encoding.UCS2, 12, 1),
        ("ÇA VA", Encoding.GSM7, 5, 1),
        ("ok 🙂", Encoding.UCS2, 5, 1),  # an emoji is two UTF-16 units
        ("x" * 70, Encoding.GSM7, 70, 1),
        ("ж" * 70, Encoding.UCS2, 70, 1),
        ("ж" * 71, Encoding.UCS2, 71, 2),
        ("ж" * 134, Encoding.UCS2, 134, 2),
        ("ж" * 135, Encoding.UCS2, 135, 3),
        ("ж" * 66 + "🙂" + "ж", Encoding.UCS2, 69, 1),
        ("ж" * 66 + "🙂" + "ж" * 10, Encoding.UCS2, 78, 2),  # the pair is not split: 66 + (2 + 10)
        ("ж" * 67 + "🙂" * 34, Encoding.UCS2, 135, 3),
    ],
)
def test_segments(text: str, encoding: Encoding, units: int, segments: int) -> None:
    info = segment_info(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)
