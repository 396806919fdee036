"""``callcenter transcribe FILE...``: backfill transcripts of recordings from disk (edge, blocking).

One line per file on stdout, in the order given: with ``--json`` one JSON object (``file``,
``duration_s`` of audio, ``speech_ratio``, ``silent``, ``text``, ``language``, ``confidence``,
``segments``, ``seconds`` of processing), a failed file ``{"file": ..., "error": ...}``; without it
``file: text``. A progress bar goes to stderr. A file that fails never stops the batch; the exit status
is 1 when any failed, 2 when the model or a setting is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from callcenter.config import Settings
from callcenter.voicemail.analysis import MODEL_SETTING, load_analyser
from media.errors import MediaError
from media.pipeline import Analysis, VoicemailAnalyser

COMMANDS = ("transcribe",)


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``transcribe`` to the ``callcenter`` subcommands."""
    parser = sub.add_parser(
        "transcribe",
        help="transcribe recordings (WAV, GSM, G.711, MP3): one line per file, progress on stderr",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="recordings to transcribe")
    parser.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    parser.add_argument(
        "--model", help=f"a model name or local folder (default {MODEL_SETTING}, else the packaged tiny.en)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``callcenter transcribe``; return the exit status (a bad model raises ConfigError)."""
    source = "--model" if args.model is not None else MODEL_SETTING
    analyser = load_analyser(settings.transcription, model=args.model, source=source)
    return transcribe_files(analyser, args.files, as_json=args.json, out=sys.stdout, err=sys.stderr)


def transcribe_files(
    analyser: VoicemailAnalyser, files: Sequence[Path], *, as_json: bool, out: TextIO, err: TextIO
) -> int:
    """Transcribe ``files`` in order, printing a line per file; 1 when any failed, else 0."""
    progress = _Progress(len(files), err)
    failed = 0
    for index, path in enumerate(files):
        progress.show(index, path)
        try:
            line = _result(str(path), analyser.analyse_file(path))
        except MediaError as exc:
            failed += 1
            line = {"file": str(path), "error": str(exc)}
        except Exception as exc:  # one bad file must not end the batch: report it and go on
            failed += 1
            line = {"file": str(path), "error": f"{type(exc).__name__}: {exc}"}
        if as_json:
            print(json.dumps(line, ensure_ascii=False), file=out, flush=True)
        elif "error" in line:
            print(f"{path}: error: {line['error']}", file=out, flush=True)
        else:
            print(f"{path}: {line['text'] if not line['silent'] else '(no speech)'}", file=out, flush=True)
    progress.done(failed)
    return 1 if failed else 0


def _result(file: str, analysis: Analysis) -> dict[str, Any]:
    transcript = analysis.transcript
    return {
        "file": file,
        "duration_s": analysis.duration_s,
        "speech_ratio": analysis.speech_ratio,
        "silent": analysis.silent,
        "text": transcript.text if transcript else "",
        "language": transcript.language if transcript else None,
        "confidence": transcript.confidence if transcript else None,
        "segments": [
            {"start_s": s.start_s, "end_s": s.end_s, "text": s.text}
            for s in (transcript.segments if transcript else ())
        ],
        "seconds": analysis.seconds,
    }


class _Progress:
    """A one-line progress bar on a terminal; one line per file otherwise (logs, CI)."""

    WIDTH = 24

    def __init__(self, total: int, stream: TextIO) -> None:
        self._total = total
        self._stream = stream
        self._tty = stream.isatty()
        self._started = time.perf_counter()

    def show(self, index: int, path: Path) -> None:
        filled = self.WIDTH * index // max(self._total, 1)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        text = f"[{bar}] {index + 1}/{self._total} {path.name}"
        if self._tty:
            self._stream.write(f"\r\x1b[K{text}")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def done(self, failed: int) -> None:
        elapsed = time.perf_counter() - self._started
        end = "\r\x1b[K" if self._tty else ""
        self._stream.write(
            f"{end}[{'#' * self.WIDTH}] {self._total} file(s) in {elapsed:.1f}s, {failed} failed\n"
        )
        self._stream.flush()
