"""Decoding any recording we meet (WAV, GSM, G.711, MP3, Asterisk's raw formats) to 16 kHz mono PCM.

PyAV (FFmpeg) does the decoding and resampling. Asterisk writes some formats without a header
(``.gsm``, ``.ulaw``, ``.alaw``, ``.sln``): FFmpeg cannot probe those, so the extension names the
format and the sample rate, as it does for Asterisk itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
import av.error
import numpy as np
import numpy.typing as npt

from media.errors import AudioDecodeError, EmptyAudioError

#: The rate every analysis works at (Whisper's and Silero's), and webrtcvad's too.
RATE: Final = 16_000

# Headerless formats Asterisk records: extension -> (FFmpeg demuxer, options).
_RAW_FORMATS: Final[dict[str, tuple[str, dict[str, str]]]] = {
    ".gsm": ("gsm", {}),
    ".ulaw": ("mulaw", {"sample_rate": "8000", "ch_layout": "mono"}),
    ".ul": ("mulaw", {"sample_rate": "8000", "ch_layout": "mono"}),
    ".mu": ("mulaw", {"sample_rate": "8000", "ch_layout": "mono"}),
    ".alaw": ("alaw", {"sample_rate": "8000", "ch_layout": "mono"}),
    ".al": ("alaw", {"sample_rate": "8000", "ch_layout": "mono"}),
    ".sln": ("s16le", {"sample_rate": "8000", "ch_layout": "mono"}),
    ".raw": ("s16le", {"sample_rate": "8000", "ch_layout": "mono"}),
    ".sln16": ("s16le", {"sample_rate": "16000", "ch_layout": "mono"}),
}

#: Samples (at the file's rate) resampled at once while decoding.
GROUP_SAMPLES: Final = 16_000
#: Longest recording we decode (a voicemail is minutes; this stops a runaway file filling memory).
MAX_DURATION_S: Final = 4 * 3600


@dataclass(frozen=True, slots=True)
class Audio:
    """Mono 16-bit PCM at ``RATE``; ``source_rate`` is the file's own sample rate."""

    samples: npt.NDArray[np.int16]
    source_rate: int
    codec: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / RATE

    def as_float(self) -> npt.NDArray[np.float32]:
        """The samples scaled to [-1, 1), as Whisper and Silero take them."""
        return self.samples.astype(np.float32) / 32768.0


def decode(path: str | os.PathLike[str]) -> Audio:
    """Decode the audio file at ``path`` to 16 kHz mono 16-bit PCM.

    :raises AudioDecodeError: for a missing, empty, truncated or non-audio file, with the reason.
    """
    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise AudioDecodeError(f"cannot read {file}: {exc.strerror or exc}") from exc
    if not file.is_file():
        raise AudioDecodeError(f"{file} is not a file")
    if size == 0:
        raise AudioDecodeError("empty file (0 bytes)")
    demuxer, options = _RAW_FORMATS.get(file.suffix.lower(), (None, {}))
    try:
        container = av.open(str(file), format=demuxer, options=options)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise AudioDecodeError(f"not a recognised audio file ({_reason(exc)})") from exc
    try:
        return _decode_container(container)
    finally:
        container.close()


def _decode_container(container: av.container.InputContainer) -> Audio:
    if not container.streams.audio:
        raise AudioDecodeError("not a recognised audio file (it holds no audio stream)")
    stream = container.streams.audio[0]
    codec = stream.codec_context.name
    source_rate = stream.codec_context.sample_rate or stream.rate or 0
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    chunks: list[npt.NDArray[np.int16]] = []
    total = 0
    # Frames are resampled in groups of about a second: one call per GSM frame (20 ms) costs more
    # than the resampling itself.
    fifo = av.AudioFifo()

    def resample(frame: av.AudioFrame | None) -> int:
        added = 0
        for out in resampler.resample(frame):
            chunk = out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            chunks.append(chunk)
            added += len(chunk)
        return added

    try:
        try:
            for frame in container.decode(stream):
                frame.pts = None  # the FIFO checks timestamps; a file's gaps are not ours to judge
                fifo.write(frame)
                if fifo.samples >= GROUP_SAMPLES:
                    total += resample(fifo.read())
                if total > MAX_DURATION_S * RATE:
                    raise AudioDecodeError(f"longer than {MAX_DURATION_S // 3600} hours: refused")
        finally:
            # What decoded before an error (a truncated file) is kept.
            if fifo.samples:
                resample(fifo.read())
        resample(None)
    except av.error.FFmpegError as exc:
        if not chunks:
            raise AudioDecodeError(f"corrupt audio ({_reason(exc)})") from exc
        # A recording cut short (the caller hung up mid-write, a truncated copy) keeps what decoded.
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    if len(samples) == 0:
        raise EmptyAudioError(f"no audio samples in the file ({codec})")
    return Audio(samples=samples, source_rate=int(source_rate), codec=codec)


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip() or type(exc).__name__
