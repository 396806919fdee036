"""Speech detection: webrtcvad at 8 and 16 kHz, and Silero VAD's second opinion on noise and tones."""

from __future__ import annotations

import numpy as np
import pytest

from media.vad import confirmed, silero_speech, speech_segments, trim
from tests import audio_corpus as corpus

pytestmark = pytest.mark.integration


def _at(rate: int, pcm8k: np.ndarray) -> np.ndarray:
    if rate == 8000:
        return pcm8k
    return np.repeat(pcm8k, 2)  # crude 16 kHz: fine for a voice activity detector


def _prompt() -> np.ndarray:
    return corpus.read_pcm(corpus.prompts()["agent-incorrect"].path)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_speech_between_silences_is_found_and_trimmed(rate: int) -> None:
    speech = _prompt()
    pcm8k = corpus.add_noise(
        np.concatenate([np.zeros(2 * 8000, np.int16), speech, np.zeros(3 * 8000, np.int16)]), -60
    )
    report = speech_segments(_at(rate, pcm8k), rate)
    speech_s = len(speech) / 8000
    assert report.has_speech
    assert 1.7 <= report.segments[0].start_s <= 2.3
    assert 2 + speech_s - 0.5 <= report.segments[-1].end_s <= 2 + speech_s + 0.3
    assert report.speech_ratio == pytest.approx(speech_s / (5 + speech_s), abs=0.08)
    trimmed = trim(_at(rate, pcm8k), rate, report)
    assert speech_s - 0.5 <= len(trimmed) / rate <= speech_s + 0.5


@pytest.mark.parametrize("rate", [8000, 16000])
def test_silence_has_no_speech(rate: int) -> None:
    report = speech_segments(_at(rate, corpus.add_noise(np.zeros(5 * 8000, np.int16), -70)), rate)
    assert not report.has_speech
    assert report.speech_ratio == 0.0
    assert report.trim_span() is None
    assert len(trim(np.zeros(100, np.int16), rate, report)) == 0


@pytest.mark.parametrize("kind", ["noise", "tone"])
def test_noise_and_tones_fool_webrtcvad_but_not_silero(kind: str) -> None:
    """The reason for the second check: webrtcvad alone would report these as messages."""
    pcm8k = corpus.noise(6.0) if kind == "noise" else corpus.tone(6.0)
    samples16k = np.repeat(pcm8k, 2)
    if kind == "noise":
        assert speech_segments(samples16k, 16000).speech_ratio > 0.9
    assert not confirmed(silero_speech(samples16k.astype(np.float32) / 32768))


def test_silero_confirms_real_speech() -> None:
    samples16k = np.repeat(_prompt(), 2).astype(np.float32) / 32768
    assert confirmed(silero_speech(samples16k))


def test_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="8000 or 16000"):
        speech_segments(np.zeros(441, np.int16), 44100)
