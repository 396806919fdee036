"""A recording in, a verdict out: decode, detect speech twice, trim, transcribe (blocking).

The order saves work and avoids invented text: webrtcvad (cheap) finds where speech might be; with
none the recording is silent at once. Silero VAD then checks the trimmed part, because webrtcvad
calls noise and tones speech; with too little the recording is silent. Only then does Whisper run,
on the trimmed audio, and an empty transcript (Whisper's own no-speech judgement) is silent too.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from media.audio import RATE, Audio, decode
from media.transcribe import Transcript, WhisperTranscriber
from media.vad import confirmed, silero_speech, speech_segments, trim


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

        span = report.trim_span()
        if span is None:
            return verdict(None, "no speech (webrtcvad)")
        trimmed = (trim(audio.samples, RATE, report) / 32768.0).astype(np.float32)
        if not confirmed(silero_speech(trimmed)):
            return verdict(None, "no speech (Silero VAD): noise or tones only")
        transcript = self.transcriber.transcribe(trimmed, offset_s=span.start_s)
        if not transcript.text:
            return verdict(None, "no words (Whisper found no speech)")
        return verdict(transcript)
