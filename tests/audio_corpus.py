"""Voicemail-like recordings built at run time from Asterisk's core sound prompts (test and bench helper).

The prompts are human recordings at 8 kHz with transcripts, from the Debian packages
``asterisk-core-sounds-en-wav`` and ``asterisk-core-sounds-en`` (``.ci/run`` installs them). A
voicemail is prompts joined with silences, given a low noise floor and passed through a telephone codec
(G.711 mu-law or GSM 06.10, both at 8 kHz). Silent cases are made from silence, noise and a tone.
"""

from __future__ import annotations

import gzip
import random
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
import numpy as np
import numpy.typing as npt

SOUNDS: Final = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
TRANSCRIPTS: Final = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
RATE: Final = 8000
MISSING: Final = (
    "Asterisk's core sounds are missing: apt-get install asterisk-core-sounds-en-wav "
    "asterisk-core-sounds-en sox (as .ci/run does)"
)


@dataclass(frozen=True, slots=True)
class Prompt:
    name: str
    text: str
    path: Path


def available() -> bool:
    return SOUNDS.is_dir() and TRANSCRIPTS.is_file() and shutil.which("sox") is not None


def prompts() -> dict[str, Prompt]:
    """Every prompt with a spoken transcript and a WAV file, by name (``digits/1`` style)."""
    if not available():
        raise RuntimeError(MISSING)
    found: dict[str, Prompt] = {}
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            name, sep, text = line.partition(":")
            name, text = name.strip(), text.strip()
            if not sep or name.startswith(";") or not text or text.startswith("["):
                continue
            path = SOUNDS / f"{name}.wav"
            if path.is_file():
                found[name] = Prompt(name, text, path)
    return found


def sentences(min_words: int = 3) -> list[Prompt]:
    """Prompts of at least ``min_words`` words, in name order."""
    return sorted((p for p in prompts().values() if len(p.text.split()) >= min_words), key=lambda p: p.name)


def read_pcm(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def join(
    parts: list[Prompt], gaps_s: list[float], *, noise_dbfs: float = -60.0, seed: int = 0
) -> npt.NDArray[np.int16]:
    """The prompts in order with ``gaps_s`` of silence before each (and one after the last), plus noise."""
    assert len(gaps_s) == len(parts) + 1
    pieces: list[npt.NDArray[np.int16]] = []
    for gap, prompt in zip(gaps_s, parts, strict=False):
        pieces.append(np.zeros(int(gap * RATE), dtype=np.int16))
        pieces.append(read_pcm(prompt.path))
    pieces.append(np.zeros(int(gaps_s[-1] * RATE), dtype=np.int16))
    return add_noise(np.concatenate(pieces), noise_dbfs, seed=seed)


def add_noise(pcm: npt.NDArray[np.int16], dbfs: float, *, seed: int = 0) -> npt.NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(pcm)) * 32768 * 10 ** (dbfs / 20)
    return np.clip(pcm.astype(np.float64) + noise, -32768, 32767).astype(np.int16)


def noise(seconds: float, dbfs: float = -23.0, *, seed: int = 1) -> npt.NDArray[np.int16]:
    """White noise at ``dbfs`` RMS."""
    return add_noise(np.zeros(int(seconds * RATE), dtype=np.int16), dbfs, seed=seed)


def tone(seconds: float, hz: float = 425.0, dbfs: float = -23.0) -> npt.NDArray[np.int16]:
    """A steady sine (425 Hz is the European dial and busy tone)."""
    t = np.arange(int(seconds * RATE)) / RATE
    amplitude = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def write_wav(path: Path, pcm: npt.NDArray[np.int16], codec: str = "pcm_s16le") -> Path:
    """``pcm`` (8 kHz) as a WAV file with ``codec``: ``pcm_s16le``, ``pcm_mulaw`` or ``pcm_alaw``."""
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream(codec, rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.rate = RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_mp3(path: Path, pcm: npt.NDArray[np.int16]) -> Path:
    with av.open(str(path), "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.rate = RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_gsm(path: Path, pcm: npt.NDArray[np.int16]) -> Path:
    """``pcm`` through GSM 06.10 with sox: ``.gsm`` gives Asterisk's headerless format, ``.wav`` WAV49."""
    source = path.with_suffix(".source.wav")
    write_wav(source, pcm)
    encoding = ["-t", "gsm"] if path.suffix == ".gsm" else ["-e", "gsm-full-rate"]
    subprocess.run(["sox", str(source), "-r", "8000", "-c", "1", *encoding, str(path)], check=True)
    source.unlink()
    return path


def telephone(path: Path, pcm: npt.NDArray[np.int16]) -> Path:
    """Write ``pcm`` in the codec the extension names: ``.ulaw.wav``/``.alaw.wav``/``.gsm``/``.mp3``/``.wav``."""
    name = path.name
    if name.endswith(".ulaw.wav"):
        return write_wav(path, pcm, "pcm_mulaw")
    if name.endswith(".alaw.wav"):
        return write_wav(path, pcm, "pcm_alaw")
    if name.endswith((".gsm", ".gsm.wav")):
        return write_gsm(path, pcm)
    if name.endswith(".mp3"):
        return write_mp3(path, pcm)
    return write_wav(path, pcm)


def voicemail_parts(
    count: int, seconds: tuple[float, float] = (30.0, 60.0), *, seed: int
) -> list[list[Prompt]]:
    """``count`` lists of sentence prompts, each adding up to a speech length within ``seconds``."""
    rng = random.Random(seed)
    pool = [p for p in sentences(4) if "/" not in p.name]
    lengths = {p.name: len(read_pcm(p.path)) / RATE for p in pool}
    out: list[list[Prompt]] = []
    for _ in range(count):
        target = rng.uniform(seconds[0] * 0.8, seconds[1] * 0.75)
        chosen: list[Prompt] = []
        total = 0.0
        for prompt in rng.sample(pool, len(pool)):
            if total + lengths[prompt.name] > target + 5:
                continue
            chosen.append(prompt)
            total += lengths[prompt.name]
            if total >= target:
                break
        out.append(chosen)
    return out
