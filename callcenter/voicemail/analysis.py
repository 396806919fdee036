"""Loading the speech pipeline from settings (edge: blocking; run in a worker process or executor).

The one place the ``CALLCENTER_WHISPER_*`` settings become a loaded model, so every entry (the
``transcribe`` command, ``worker --transcribe``, the embedded pool) fails the same way on a model that
cannot be loaded: a :class:`ConfigError` naming the setting.
"""

from __future__ import annotations

import logging

from callcenter.config import PREFIX, TranscriptionSettings
from callcenter.errors import ConfigError
from media.errors import ModelUnavailableError
from media.pipeline import VoicemailAnalyser
from media.transcribe import WhisperOptions, WhisperTranscriber

logger = logging.getLogger(__name__)

MODEL_SETTING = f"{PREFIX}WHISPER_MODEL"


def whisper_options(settings: TranscriptionSettings, *, model: str | None = None) -> WhisperOptions:
    """The media options for ``settings``; ``model`` overrides the configured model."""
    return WhisperOptions(
        model=settings.model if model is None else model,
        language=settings.language,
        cpu_threads=settings.cpu_threads,
        beam_size=settings.beam_size,
        mask_cards=settings.mask_cards,
    )


def load_analyser(
    settings: TranscriptionSettings, *, model: str | None = None, source: str = MODEL_SETTING
) -> VoicemailAnalyser:
    """Load the model and return the analyser.

    :param source: how the user named the model, for the error (the setting, or ``--model``).
    :raises ConfigError: naming ``source`` when the model cannot be resolved or loaded.
    """
    options = whisper_options(settings, model=model)
    # faster-whisper logs every file at INFO ("Processing audio with duration ..."): ours say more.
    logging.getLogger("faster_whisper").setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    try:
        transcriber = WhisperTranscriber(options)
    except ModelUnavailableError as exc:
        raise ConfigError(f"{source}={options.model!r}: {exc}") from exc
    logger.info(
        "speech-to-text model %s loaded (int8, %d CPU thread(s), language %s)",
        transcriber.model_path,
        options.cpu_threads,
        options.language or "detected",
    )
    return VoicemailAnalyser(transcriber)
