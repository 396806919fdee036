"""``callcenter prompts build``: the catalogue rendered by espeak-ng and sox to 8 kHz 16-bit mono WAV."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from callcenter.cli import main
from media.prompts import PROMPTS
from media.render import RenderError, render_prompts, tools_missing

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.skipif(bool(tools_missing()), reason="espeak-ng and sox are installed by .ci/run"),
]


def test_prompts_render_as_asterisk_plays_them(tmp_path: Path) -> None:
    rendered = render_prompts(tmp_path, names=["goodbye", "offer-keep-place"])
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


def test_cli_builds_every_prompt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "build", str(tmp_path)]) == 0
    assert sorted(p.stem for p in (tmp_path / "callcenter").glob("*.wav")) == sorted(PROMPTS)
    assert f"{len(PROMPTS)} prompts written" in capsys.readouterr().out


def test_cli_without_the_tools_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["prompts", "build", str(tmp_path)]) == 2
    assert "apt-get install espeak-ng sox" in capsys.readouterr().err


def test_cli_lists_sound_names_and_texts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(PROMPTS)
    assert "callcenter/goodbye\tGoodbye." in lines
