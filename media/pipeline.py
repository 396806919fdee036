"""A recording in, a verdict out: decode, detect speech twice, trim, transcribe (blocking).

The order saves work and avoids invented text: webrtcvad (cheap) finds where speech might be; with
none the recording is silent at once. Silero VAD then checks those stretches, because webrtcvad
calls noise and tones speech, and stops as soon as it heard enough speech (a real message costs it
a sentence); with too little the recording is silent. Only then does Whisper run (no second VAD pass),
on the recording from the first speech to the last; Whisper encodes whole 30 s windows, so when
cutting the pauses out as well would save a window, it runs on webrtcvad's speech stretches joined end
to end instead. Pauses are kept otherwise: they cost nothing then, and Whisper places its sentence
boundaries better with them (measured: 20 word errors against 24 on the benchmark's voicemails). Times
are put back on the recording's clock. An empty transcript (Whisper's own no-speech judgement) is
silent too. The file is decoded once.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from media.audio import RATE, Audio, decode
from media.transcribe import Transcript, WhisperTranscriber
from media.vad import Span, confirm_speech, speech_chunks, speech_segments

#: What Whisper encodes at a time, whatever the audio holds.
WHISPER_WINDOW_S = 30.0


@dataclass(frozen=True, slots=True)
class Analysis:
    """The verdict on one recording.

    ``silent`` recordings have no transcript. ``seconds`` is the processing time, decoding included.
    """

    duration_s: float
    speech_ratio: float
    silent: bool
    transcript: Transcript | None
    seconds: float
    silent_reason: str = ""


class VoicemailAnalyser:
    """Speech detection and transcription of recordings with one loaded model."""

    def __init__(self, transcriber: WhisperTranscriber) -> None:
        self.transcriber = transcriber

    def analyse_file(self, path: str | os.PathLike[str]) -> Analysis:
        """Analyse the recording at ``path``.

        :raises media.errors.AudioDecodeError: when it is not decodable audio.
        """
        started = time.perf_counter()
        return self.analyse(decode(path), started=started)

    def analyse(self, audio: Audio, *, started: float | None = None) -> Analysis:
        """Analyse decoded ``audio``; ``started`` is a ``perf_counter`` value to count time from."""
        started = time.perf_counter() if started is None else started
        report = speech_segments(audio.samples, RATE)

        def verdict(transcript: Transcript | None, reason: str = "") -> Analysis:
            return Analysis(
                duration_s=round(audio.duration_s, 3),
                speech_ratio=round(report.speech_ratio, 4),
                silent=transcript is None,
                transcript=transcript,
                seconds=round(time.perf_counter() - started, 3),
                silent_reason=reason,
            )

        chunks = speech_chunks(report)
        if not chunks:
            return verdict(None, "no speech (webrtcvad)")
        samples = audio.samples.astype(np.float32) / np.float32(32768.0)
        if not confirm_speech(samples, chunks, rate=RATE):
            return verdict(None, "no speech (Silero VAD): noise or tones only")
        transcript = self.transcriber.transcribe(samples, chunks=whisper_stretches(chunks))
        if not transcript.text:
            return verdict(None, "no words (Whisper found no speech)")
        return verdict(transcript)


def whisper_stretches(chunks: tuple[Span, ...]) -> list[tuple[float, float]]:
    """What Whisper is given of a recording with speech ``chunks``: first speech to last, or only the
    speech when cutting the pauses saves one of Whisper's 30 s windows."""
    span_s = chunks[-1].end_s - chunks[0].start_s
    speech_s = sum(c.duration_s for c in chunks)
    if math.ceil(span_s / WHISPER_WINDOW_S) > math.ceil(speech_s / WHISPER_WINDOW_S):
        return [(c.start_s, c.end_s) for c in chunks]
    return [(chunks[0].start_s, chunks[-1].end_s)]
