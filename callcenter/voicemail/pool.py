"""Speech analysis in child processes, so the event loop never waits on Whisper (edge).

``serve`` (embedded default) and ``callcenter worker --transcribe`` both use it. Each child loads the
model once (``CALLCENTER_WHISPER_CPU_THREADS`` threads, 1 by default) and analyses one recording at a
time. Children start with ``spawn``: forking a process that runs an event loop and holds sockets is
unsafe. A child that dies (killed, out of memory) breaks the pool; the next call builds a new one and
the job that was running is retried by the caller.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from callcenter.config import TranscriptionSettings
from callcenter.errors import ConfigError
from callcenter.voicemail.analysis import MODEL_SETTING, load_analyser
from callcenter.voicemail.ports import SpeechResult
from callcenter.voicemail.records import TranscriptSegment
from media.errors import ModelUnavailableError
from media.pipeline import VoicemailAnalyser
from media.transcribe import resolve_model

logger = logging.getLogger(__name__)

_analyser: VoicemailAnalyser | None = None  # one per child process, set by _load


def _load(settings: TranscriptionSettings) -> None:
    global _analyser
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    _analyser = load_analyser(settings)


def analyse_in_child(path: str) -> SpeechResult:
    """Run in a child: analyse ``path`` with the child's model (AudioDecodeError propagates)."""
    assert _analyser is not None, "the pool initializer loads the model"
    analysis = _analyser.analyse_file(path)
    transcript = analysis.transcript
    return SpeechResult(
        duration_s=analysis.duration_s,
        speech_ratio=analysis.speech_ratio,
        silent=analysis.silent,
        silent_reason=analysis.silent_reason,
        text=transcript.text if transcript else "",
        language=transcript.language if transcript else "",
        confidence=transcript.confidence if transcript else 0.0,
        segments=tuple(
            TranscriptSegment(start_s=s.start_s, end_s=s.end_s, text=s.text)
            for s in (transcript.segments if transcript else ())
        ),
        model=_analyser.transcriber.model_path,
        seconds=analysis.seconds,
    )


class ProcessPoolAnalyser:
    """:class:`callcenter.voicemail.ports.SpeechAnalyser` on a pool of ``processes`` children.

    :raises ConfigError: at construction, naming ``CALLCENTER_WHISPER_MODEL``, when the model
        cannot be found (checked in the parent, so start-up fails instead of every job).
    """

    def __init__(self, settings: TranscriptionSettings, processes: int = 1) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        try:
            resolve_model(settings.model)
        except ModelUnavailableError as exc:
            raise ConfigError(f"{MODEL_SETTING}={settings.model!r}: {exc}") from exc
        self._settings = settings
        self._processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_load,
                initargs=(self._settings,),
            )
        return self._pool

    async def analyse(self, path: str) -> SpeechResult:
        loop = asyncio.get_running_loop()
        pool = self._executor()
        try:
            return await loop.run_in_executor(pool, analyse_in_child, path)
        except BrokenProcessPool:
            # The child died mid-job: start afresh next time; this job fails and is retried.
            logger.warning("a transcription process died; starting a new one")
            if self._pool is pool:
                self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise

    def close(self) -> None:
        """Stop the children (a running analysis is abandoned; its job stays pending)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
