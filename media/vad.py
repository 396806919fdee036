"""Speech detection: webrtcvad over PCM frames, confirmed by Silero VAD (pure computation, no I/O).

webrtcvad separates speech from silence cheaply and at 8 or 16 kHz, but loud stationary noise and
steady tones are "speech" to it in every mode (measured: 100 % of white, pink and brown noise at
-23 dBFS, and a 425 Hz dial tone). So a recording counts as holding speech only when Silero VAD (the
ONNX model faster-whisper ships, run offline) also finds some in the part webrtcvad kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import webrtcvad
from faster_whisper.vad import VadOptions, get_speech_timestamps

#: Rates webrtcvad takes that telephony produces.
VAD_RATES: Final = (8_000, 16_000)
FRAME_MS: Final = 30
#: webrtcvad aggressiveness, 0 (least) to 3 (most eager to call a frame non-speech).
DEFAULT_MODE: Final = 2
#: A run of speech frames shorter than this is a click, a breath or webrtcvad settling on its first
#: frames (it calls the first ~100 ms of a quiet recording speech), not speech.
MIN_SPEECH_MS: Final = 150
#: Gaps between speech runs shorter than this are joined (pauses between words).
JOIN_GAP_MS: Final = 300
#: Speech kept around a segment when trimming, so word edges are not cut.
PAD_MS: Final = 200
#: Least total speech Silero must find before a recording counts as a message.
MIN_CONFIRMED_SPEECH_S: Final = 0.3


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of audio, in seconds from the start."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class SpeechReport:
    """What webrtcvad found in one recording."""

    segments: tuple[Span, ...]
    duration_s: float

    @property
    def speech_s(self) -> float:
        return sum(span.duration_s for span in self.segments)

    @property
    def speech_ratio(self) -> float:
        """Share of the recording that is speech, from 0 to 1."""
        return min(self.speech_s / self.duration_s, 1.0) if self.duration_s > 0 else 0.0

    @property
    def has_speech(self) -> bool:
        return bool(self.segments)

    def trim_span(self, pad_s: float = PAD_MS / 1000) -> Span | None:
        """From the first speech to the last, padded and clipped to the recording; None without speech."""
        if not self.segments:
            return None
        return Span(
            max(self.segments[0].start_s - pad_s, 0.0),
            min(self.segments[-1].end_s + pad_s, self.duration_s),
        )


def speech_segments(
    pcm: npt.NDArray[np.int16], rate: int, *, mode: int = DEFAULT_MODE, frame_ms: int = FRAME_MS
) -> SpeechReport:
    """webrtcvad's speech segments in mono 16-bit ``pcm`` at ``rate`` (8 or 16 kHz).

    Frames are classified one by one; runs of speech shorter than ``MIN_SPEECH_MS`` are dropped and
    gaps shorter than ``JOIN_GAP_MS`` are bridged. A trailing partial frame is ignored.

    :raises ValueError: for a rate webrtcvad does not take, a bad mode or frame length.
    """
    if rate not in VAD_RATES:
        raise ValueError(f"webrtcvad takes 8000 or 16000 Hz audio here, not {rate}")
    if frame_ms not in (10, 20, 30):
        raise ValueError("frame_ms must be 10, 20 or 30")
    vad = webrtcvad.Vad(mode)
    step = rate * frame_ms // 1000
    data = np.ascontiguousarray(pcm, dtype="<i2").tobytes()
    frame_bytes = step * 2
    flags = [
        vad.is_speech(data[i : i + frame_bytes], rate)
        for i in range(0, len(data) - frame_bytes + 1, frame_bytes)
    ]
    duration_s = len(pcm) / rate
    return SpeechReport(segments=tuple(_runs(flags, frame_ms / 1000)), duration_s=duration_s)


def _runs(flags: list[bool], frame_s: float) -> list[Span]:
    spans: list[Span] = []
    start: int | None = None
    for i, speech in enumerate([*flags, False]):
        if speech and start is None:
            start = i
        elif not speech and start is not None:
            spans.append(Span(start * frame_s, i * frame_s))
            start = None
    joined: list[Span] = []
    for span in spans:
        if joined and span.start_s - joined[-1].end_s < JOIN_GAP_MS / 1000:
            joined[-1] = Span(joined[-1].start_s, span.end_s)
        else:
            joined.append(span)
    return [span for span in joined if span.duration_s >= MIN_SPEECH_MS / 1000 - 1e-9]


def trim(pcm: npt.NDArray[np.int16], rate: int, report: SpeechReport) -> npt.NDArray[np.int16]:
    """``pcm`` without its leading and trailing non-speech (padded); empty when there is no speech."""
    span = report.trim_span()
    if span is None:
        return pcm[:0]
    return pcm[int(span.start_s * rate) : int(span.end_s * rate)]


def speech_chunks(report: SpeechReport, pad_s: float = PAD_MS / 1000) -> tuple[Span, ...]:
    """webrtcvad's speech segments, each padded by ``pad_s`` and clipped, overlapping ones merged.

    What the transcriber is given: the recording without its pauses (Whisper encodes 30 s windows,
    so a minute of message with twenty seconds of pauses costs a window less).
    """
    merged: list[Span] = []
    for span in report.segments:
        start, end = max(span.start_s - pad_s, 0.0), min(span.end_s + pad_s, report.duration_s)
        if merged and start <= merged[-1].end_s:
            merged[-1] = Span(merged[-1].start_s, max(end, merged[-1].end_s))
        else:
            merged.append(Span(start, end))
    return tuple(merged)


def confirm_speech(
    samples: npt.NDArray[np.float32],
    chunks: tuple[Span, ...],
    *,
    rate: int = 16_000,
    min_speech_s: float = MIN_CONFIRMED_SPEECH_S,
) -> bool:
    """True once Silero VAD finds ``min_speech_s`` of speech in ``chunks`` of ``samples``.

    Chunks are checked in order and the check stops as soon as enough speech is found, so a real
    message costs Silero one sentence or two; noise and tones are checked to the end and refused.
    """
    found = 0.0
    for chunk in chunks:
        found += sum(
            s.duration_s for s in silero_speech(samples[int(chunk.start_s * rate) : int(chunk.end_s * rate)])
        )
        if found >= min_speech_s:
            return True
    return False


def silero_speech(samples: npt.NDArray[np.float32], *, threshold: float = 0.5) -> tuple[Span, ...]:
    """Silero VAD's speech spans in 16 kHz float ``samples`` (the second opinion on webrtcvad's)."""
    options = VadOptions(threshold=threshold, min_silence_duration_ms=500, speech_pad_ms=200)
    stamps = get_speech_timestamps(samples, options, sampling_rate=16_000)
    return tuple(Span(stamp["start"] / 16_000, stamp["end"] / 16_000) for stamp in stamps)


def confirmed(spans: tuple[Span, ...]) -> bool:
    """True when Silero's ``spans`` add up to enough speech to be a message."""
    return sum(span.duration_s for span in spans) >= MIN_CONFIRMED_SPEECH_S
