"""Render the prompt catalogue to 8 kHz 16-bit mono WAV with espeak-ng and sox (edge: runs programs).

``espeak-ng`` (Debian package ``espeak-ng``) speaks each prompt to a WAV at its own rate; ``sox``
(Debian package ``sox``) converts it to what Asterisk plays without transcoding: 8 kHz, 16-bit signed,
mono. Files land as ``<dir>/callcenter/<name>.wav``, the sound ``callcenter/<name>`` in Asterisk's
sounds folder (``/var/lib/asterisk/sounds/en``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from media.prompts import PROMPTS, SOUND_FOLDER

RATE_HZ: Final = 8000
_TIMEOUT_S: Final = 60.0


class RenderError(Exception):
    """A tool is missing or failed; the message says which and how to get it."""


@dataclass(frozen=True, slots=True)
class Rendered:
    name: str
    path: Path
    duration_s: float


def tools_missing() -> list[str]:
    """The programs rendering needs that are not on ``PATH``."""
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


def render_prompts(
    out_dir: Path,
    *,
    prompts: Mapping[str, str] = PROMPTS,
    names: Iterable[str] | None = None,
    voice: str = "en-us",
    words_per_minute: int = 150,
) -> list[Rendered]:
    """Render ``names`` (every prompt by default) under ``out_dir/callcenter/``; overwrites.

    :raises RenderError: a tool is missing, a name is not in the catalogue, or a tool failed.
    """
    missing = tools_missing()
    if missing:
        raise RenderError(
            f"{', '.join(missing)} not found: install the Debian package(s) {' '.join(missing)} "
            "(apt-get install espeak-ng sox)"
        )
    wanted = list(prompts) if names is None else list(names)
    unknown = [n for n in wanted if n not in prompts]
    if unknown:
        raise RenderError(f"no prompt named {', '.join(unknown)} in the catalogue")
    folder = out_dir / SOUND_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    done = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in wanted:
            raw = Path(scratch) / f"{name}.raw.wav"
            target = folder / f"{name}.wav"
            _run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), prompts[name]])
            _run(
                [
                    "sox",
                    str(raw),
                    "-r",
                    str(RATE_HZ),
                    "-c",
                    "1",
                    "-b",
                    "16",
                    "-e",
                    "signed-integer",
                    str(target),
                ]
            )
            done.append(Rendered(name=name, path=target, duration_s=wav_seconds(target)))
    return done


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate())


def _run(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=_TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip().splitlines()
        raise RenderError(f"{argv[0]} failed: {detail[-1] if detail else exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"{argv[0]} did not finish within {_TIMEOUT_S:g} s") from exc
