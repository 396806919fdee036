"""Decoding every format a voicemail arrives in, and clear errors for files that are not audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media.audio import RATE, decode
from media.errors import AudioDecodeError, EmptyAudioError
from tests import audio_corpus as corpus

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return corpus.read_pcm(corpus.prompts()["agent-incorrect"].path)


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("m.wav", "pcm_s16le"),
        ("m.ulaw.wav", "pcm_mulaw"),
        ("m.alaw.wav", "pcm_alaw"),
        ("m.gsm", "gsm"),  # Asterisk's headerless GSM, found by the extension
        ("m.gsm.wav", "gsm_ms"),  # WAV49, what Asterisk writes as .WAV
        ("m.mp3", "mp3"),
    ],
)
def test_formats_decode_to_16k_mono_of_the_same_length(
    tmp_path: Path, speech: np.ndarray, name: str, codec: str
) -> None:
    path = corpus.telephone(tmp_path / name, speech)
    audio = decode(path)
    assert audio.codec.startswith(codec)
    assert audio.source_rate == 8000
    assert audio.samples.dtype == np.int16
    assert audio.duration_s == pytest.approx(len(speech) / 8000, abs=0.08)
    # Real signal, not zeros: the loudness survives the codec within a few dB.
    rms_in = np.sqrt(np.mean(speech.astype(np.float64) ** 2))
    rms_out = np.sqrt(np.mean(audio.samples.astype(np.float64) ** 2))
    assert 0.6 < rms_out / rms_in < 1.6


def test_headerless_ulaw_and_slin_by_extension(tmp_path: Path, speech: np.ndarray) -> None:
    ulaw = corpus.write_wav(tmp_path / "x.ulaw.wav", speech, "pcm_mulaw").read_bytes()
    # A WAV's data chunk after the 44-byte canonical header (PyAV writes a plain one for G.711 too).
    raw = ulaw[ulaw.index(b"data") + 8 :]
    (tmp_path / "x.ulaw").write_bytes(raw)
    (tmp_path / "x.sln").write_bytes(speech.astype("<i2").tobytes())
    for name in ("x.ulaw", "x.sln"):
        audio = decode(tmp_path / name)
        assert audio.duration_s == pytest.approx(len(speech) / 8000, abs=0.02), name
        assert len(audio.samples) == pytest.approx(len(speech) * RATE / 8000, abs=400)


def test_a_truncated_recording_keeps_what_decoded(tmp_path: Path, speech: np.ndarray) -> None:
    """A caller hanging up mid-write leaves a WAV whose header claims more than the file holds."""
    whole = corpus.write_wav(tmp_path / "whole.wav", speech).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[: len(whole) // 2])
    assert decode(cut).duration_s == pytest.approx(len(speech) / 16000, abs=0.1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"hello, this is not audio at all\n" * 20, "not a recognised audio file"),
        (b"\x00" * 4000, "not a recognised audio file"),
    ],
)
def test_non_audio_is_a_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=message):
        decode(path)


def test_a_header_without_samples_is_an_error(tmp_path: Path) -> None:
    whole = corpus.prompts()["agent-incorrect"].path.read_bytes()
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(whole[: whole.index(b"data") + 8])
    with pytest.raises(EmptyAudioError, match="no audio samples"):
        decode(header_only)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="No such file"):
        decode(tmp_path / "gone.wav")
    with pytest.raises(AudioDecodeError, match="not a file"):
        decode(tmp_path)
