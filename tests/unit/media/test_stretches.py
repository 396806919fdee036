"""What Whisper is given of a recording: pauses are cut only when that saves a 30 s window (pure)."""

from __future__ import annotations

import pytest

from media.pipeline import whisper_stretches
from media.vad import Span, SpeechReport, speech_chunks


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        # One sentence: from its start to its end.
        ([(0.3, 3.1)], [(0.3, 3.1)]),
        # 41 s from first to last speech, 34 s of speech: two windows either way, the pauses stay.
        ([(1.0, 12.0), (14.0, 26.0), (28.0, 42.0)], [(1.0, 42.0)]),
        # 32 s from first to last, 27 s of speech: cutting the pauses saves a window.
        ([(0.0, 9.0), (11.5, 20.5), (23.0, 32.0)], [(0.0, 9.0), (11.5, 20.5), (23.0, 32.0)]),
    ],
)
def test_pauses_are_cut_only_when_that_saves_a_whisper_window(
    chunks: list[tuple[float, float]], expected: list[tuple[float, float]]
) -> None:
    assert whisper_stretches(tuple(Span(a, b) for a, b in chunks)) == expected


def test_speech_chunks_are_padded_clipped_and_merged() -> None:
    report = SpeechReport(segments=(Span(0.1, 1.0), Span(1.3, 2.0), Span(5.0, 5.9)), duration_s=6.0)
    assert speech_chunks(report, pad_s=0.2) == (Span(0.0, 2.2), Span(4.8, 6.0))
