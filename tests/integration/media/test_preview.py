"""The voicemail preview an agent hears in the whisper: the caller's own first seconds, leading silence
cut, at most ``max_s``, as the 8 kHz 16-bit mono WAV Asterisk plays (issue #7)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from media.errors import AudioDecodeError
from media.preview import PREVIEW_RATE, preview_span, render_preview
from tests import audio_corpus as corpus

pytestmark = pytest.mark.integration


def _message(tmp_path: Path, name: str, lead_s: float, parts: list[str]) -> tuple[Path, list[float]]:
    """A voicemail through G.711 mu-law: ``lead_s`` of silence, then the prompts 0.6 s apart; the
    prompts' lengths."""
    if not corpus.available():
        pytest.fail(corpus.MISSING)
    prompts = [corpus.prompts()[p] for p in parts]
    pcm = corpus.join(prompts, [lead_s] + [0.6] * (len(prompts) - 1) + [2.0], noise_dbfs=-60)
    lengths = [len(corpus.read_pcm(p.path)) / corpus.RATE for p in prompts]
    return corpus.telephone(tmp_path / f"{name}.ulaw.wav", pcm), lengths


def _wav(path: Path) -> tuple[int, int, int, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), frames


def test_a_message_after_a_long_silence_starts_at_the_first_word(tmp_path: Path) -> None:
    source, lengths = _message(tmp_path, "vm", 4.0, ["agent-incorrect", "agent-newlocation"])
    dest = tmp_path / "preview.wav"

    preview = render_preview(source, dest, max_s=8.0)

    assert preview is not None and preview.path == dest
    assert 3.5 <= preview.start_s <= 4.2, "the four seconds of silence before the first word are cut"
    rate, channels, width, frames = _wav(dest)
    assert (rate, channels, width) == (PREVIEW_RATE, 1, 2), "what Asterisk plays without transcoding"
    assert len(frames) / rate == pytest.approx(preview.duration_s)
    # The first sentence is whole; the preview stops at a pause, not mid-word, and within 8 s.
    assert lengths[0] - 0.3 <= preview.duration_s <= 8.0
    assert np.abs(frames[: PREVIEW_RATE // 2].astype(np.int32)).max() > 1000, "it starts with speech"


def test_a_long_message_is_cut_at_max_s(tmp_path: Path) -> None:
    source, lengths = _message(
        tmp_path, "long", 1.0, ["agent-incorrect", "agent-newlocation", "agent-pass", "agent-alreadyon"]
    )
    assert sum(lengths) > 12

    short = render_preview(source, tmp_path / "short.wav", max_s=3.0)
    longer = render_preview(source, tmp_path / "longer.wav", max_s=12.0)

    assert short is not None and longer is not None
    assert 2.0 <= short.duration_s <= 3.0
    assert 8.0 <= longer.duration_s <= 12.0, "a longer setting gives a longer preview"


def test_a_message_without_speech_gives_no_preview_and_writes_nothing(tmp_path: Path) -> None:
    source = corpus.write_wav(tmp_path / "silent.wav", corpus.add_noise(np.zeros(5 * 8000, np.int16), -70))
    dest = tmp_path / "preview.wav"
    assert render_preview(source, dest, max_s=8.0) is None
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["silent.wav"], "no temporary file left behind"


def test_missing_audio_is_an_audio_error(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError):
        render_preview(tmp_path / "gone.wav", tmp_path / "preview.wav", max_s=8.0)
    assert not (tmp_path / "preview.wav").exists()


@pytest.mark.parametrize(
    ("segments", "duration", "max_s", "span"),
    [
        ((), 10.0, 8.0, None),
        (((3.0, 5.0),), 10.0, 8.0, (2.8, 5.2)),  # one sentence: its end, padded
        (((1.0, 3.5), (4.0, 12.0)), 20.0, 8.0, (0.8, 3.7)),  # the second runs past 8 s: stop at the pause
        (((1.0, 1.5), (1.6, 20.0)), 30.0, 8.0, (0.8, 8.8)),  # no pause worth stopping at: cut at 8 s
        (((0.0, 2.0),), 2.1, 8.0, (0.0, 2.1)),  # padding never runs past the recording
        (((1.0, 2.0),), 5.0, 0.0, None),  # previews off
    ],
)
def test_preview_span(
    segments: tuple[tuple[float, float], ...],
    duration: float,
    max_s: float,
    span: tuple[float, float] | None,
) -> None:
    got = preview_span(segments, duration, max_s)
    if span is None:
        assert got is None
    else:
        assert got == pytest.approx(span)
