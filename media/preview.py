"""The start of a caller's own message, as a file Asterisk plays: 8 kHz 16-bit mono WAV (I/O on files).

An agent about to return a voicemail hears the first seconds of it before the customer is dialled:
the leading silence (the caller collecting their thoughts after the beep) is cut with webrtcvad
(:mod:`media.vad`), and the preview stops at ``max_s``, at the end of the last speech run that fits
when there is one (so a word is not cut in half where it can be helped).
"""

from __future__ import annotations

import os
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
import numpy as np
import numpy.typing as npt

from media.audio import RATE, decode
from media.vad import PAD_MS, speech_segments

#: What Asterisk plays without transcoding (``.wav`` is ``slin`` at 8 kHz to it).
PREVIEW_RATE: Final = 8000
#: A cut shorter than this would be a fragment, not a sentence: the preview runs to ``max_s``.
_MIN_RUN_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class Preview:
    """A rendered preview: where, how long, and where in the message it starts."""

    path: Path
    duration_s: float
    start_s: float


def preview_span(
    segments: tuple[tuple[float, float], ...], duration_s: float, max_s: float
) -> tuple[float, float] | None:
    """``(start, end)`` of the preview in a recording with these speech ``segments`` (seconds), or
    ``None`` when there is no speech. Starts at the first speech (padded); ends at the end of the last
    speech run inside ``max_s`` (padded) when that gives at least 2 s, else at ``max_s``."""
    if not segments or max_s <= 0:
        return None
    pad = PAD_MS / 1000
    start = max(segments[0][0] - pad, 0.0)
    limit = min(start + max_s, duration_s)
    end = limit
    fitting = [seg_end for _, seg_end in segments if seg_end + pad <= limit]
    if fitting and fitting[-1] + pad - start >= _MIN_RUN_S:
        end = fitting[-1] + pad
    return (start, end) if end > start else None


def render_preview(source: str | os.PathLike[str], dest: Path, *, max_s: float) -> Preview | None:
    """Write the preview of the recording at ``source`` to ``dest`` (replaced atomically); ``None``,
    and nothing written, when the recording holds no speech.

    :raises AudioDecodeError: the recording is missing or not decodable audio.
    :raises OSError: ``dest``'s folder cannot be written.
    """
    audio = decode(source)
    report = speech_segments(audio.samples, RATE)
    span = preview_span(tuple((s.start_s, s.end_s) for s in report.segments), report.duration_s, max_s)
    if span is None:
        return None
    start, end = span
    pcm = _to_8k(audio.samples[int(start * RATE) : int(end * RATE)])
    # Written beside the final name and renamed: Asterisk never opens half a file.
    fd, tmp = tempfile.mkstemp(prefix=".preview-", suffix=".wav", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw, wave.open(raw, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(PREVIEW_RATE)
            out.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
        os.chmod(tmp, 0o644)  # Asterisk runs as another user on the shared folder
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Preview(path=dest, duration_s=len(pcm) / PREVIEW_RATE, start_s=start)


def _to_8k(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """16 kHz to 8 kHz with FFmpeg's resampler (filtered, no aliasing)."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=PREVIEW_RATE)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.rate = RATE
    chunks = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, dtype=np.int16)
