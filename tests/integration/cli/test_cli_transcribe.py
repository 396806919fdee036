"""``callcenter transcribe``: one JSON line per file in order, per-file errors, the batch goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callcenter.cli import main
from media.text import normalise_words
from tests import audio_corpus as corpus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not corpus.available():
        pytest.fail(corpus.MISSING)
    folder = tmp_path_factory.mktemp("recordings")
    prompt = corpus.prompts()["cannot-complete-as-dialed"]
    made = {
        "speech": corpus.telephone(folder / "speech.ulaw.wav", corpus.join([prompt], [0.7, 1.0])),
        "gsm": corpus.telephone(folder / "speech.gsm", corpus.join([prompt], [0.7, 1.0])),
        "noise": corpus.telephone(folder / "noise.ulaw.wav", corpus.noise(8.0, -23)),
        "empty": folder / "empty.wav",
        "corrupt": folder / "corrupt.wav",
        "unsupported": folder / "notes.txt",
        "missing": folder / "missing.wav",
    }
    made["empty"].write_bytes(b"")
    good = made["speech"].read_bytes()
    made["corrupt"].write_bytes(good[:20] + bytes(range(256)) * 8)  # a torn header, then garbage
    made["unsupported"].write_text("call back Mrs Smith about her invoice\n" * 50)
    return made


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_a_batch_reports_every_file_in_order_and_fails_at_the_end(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    order = ["speech", "empty", "corrupt", "noise", "unsupported", "missing", "gsm"]
    status = main(["transcribe", "--json", *(str(files[name]) for name in order)])
    captured = capsys.readouterr()
    lines = _lines(captured.out)

    assert status == 1
    assert [line["file"] for line in lines] == [str(files[name]) for name in order]
    speech, empty, corrupt, noise, unsupported, missing, gsm = lines
    for ok in (speech, gsm):
        assert ok["silent"] is False
        assert normalise_words(str(ok["text"])) == "your call cannot be completed as dialed".split()
        assert ok["language"] == "en"
        assert isinstance(ok["duration_s"], float) and 2.5 < ok["duration_s"] < 5.0
        assert isinstance(ok["speech_ratio"], float) and 0.3 < ok["speech_ratio"] < 1.0
        assert isinstance(ok["seconds"], float) and ok["seconds"] > 0
        assert "error" not in ok
    assert noise["silent"] is True and noise["text"] == "" and noise["language"] is None
    assert empty == {"file": str(files["empty"]), "error": "empty file (0 bytes)"}
    assert "not a recognised audio file" in str(corrupt["error"])
    assert "not a recognised audio file" in str(unsupported["error"])
    assert "No such file" in str(missing["error"])
    # The progress bar and the summary go to stderr, never into the JSON stream.
    assert "7 file(s)" in captured.err and "4 failed" in captured.err
    assert "7/7 speech.gsm" in captured.err


def test_all_good_files_exit_0_with_plain_text(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["transcribe", str(files["speech"]), str(files["noise"])]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{files['speech']}: ") and "completed as dialed" in out[0]
    assert out[1] == f"{files['noise']}: (no speech)"


def test_a_missing_model_is_a_start_up_error_naming_the_setting(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALLCENTER_WHISPER_MODEL", str(tmp_path / "no-such-model"))
    assert main(["transcribe", "--json", str(files["speech"])]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "CALLCENTER_WHISPER_MODEL=" in captured.err and "no model folder" in captured.err

    assert main(["transcribe", "--model", str(tmp_path), str(files["speech"])]) == 2
    assert "--model=" in capsys.readouterr().err
