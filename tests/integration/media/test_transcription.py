"""Transcription of real telephone speech with the real tiny.en model, and silent recordings.

The prompts are Asterisk's human-recorded core sounds, passed through G.711 mu-law or GSM at 8 kHz
with a low noise floor, as a voicemail reaches us. Words are compared normalised (lowercase, digits as
words, punctuation stripped).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from media.cards import MASK
from media.errors import ModelUnavailableError
from media.pipeline import VoicemailAnalyser
from media.text import normalise_words, wer
from media.transcribe import WhisperOptions, WhisperTranscriber, resolve_model
from tests import audio_corpus as corpus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PROMPTS = [
    ("agent-incorrect", "login incorrect please enter your agent number followed by the pound key"),
    ("vm-nobodyavail", "nobody is available to take your call at the moment"),
    ("cannot-complete-as-dialed", "your call cannot be completed as dialed"),
    ("conf-waitforleader", "the conference will begin when the leader arrives"),
    ("demo-thanks", "goodbye thank you for trying out the asterisk open source pbx"),
]


@pytest.mark.parametrize(("name", "words"), PROMPTS)
@pytest.mark.parametrize("codec", ["ulaw.wav", "gsm"])
def test_prompt_words_through_the_telephone(
    analyser: VoicemailAnalyser, tmp_path: Path, name: str, words: str, codec: str
) -> None:
    prompt = corpus.prompts()[name]
    assert normalise_words(prompt.text) == words.split()  # the package's own transcript
    pcm = corpus.join([prompt], [1.0, 1.5], noise_dbfs=-60)
    analysis = analyser.analyse_file(corpus.telephone(tmp_path / f"p.{codec}", pcm))
    assert not analysis.silent
    assert analysis.transcript is not None
    assert normalise_words(analysis.transcript.text) == words.split()
    assert analysis.transcript.language == "en"
    assert 0.3 < analysis.transcript.confidence <= 1.0
    assert analysis.duration_s == pytest.approx(len(pcm) / 8000, abs=0.05)
    assert 0.4 < analysis.speech_ratio < 0.95


def test_a_voicemail_of_several_prompts_with_pauses(analyser: VoicemailAnalyser, tmp_path: Path) -> None:
    parts = [corpus.prompts()[n] for n in ("vm-dialout", "conf-onlyperson", "tt-weasels", "queue-thankyou")]
    pcm = corpus.join(parts, [2.0, 1.2, 0.8, 1.5, 3.0], noise_dbfs=-55, seed=3)
    analysis = analyser.analyse_file(corpus.telephone(tmp_path / "vm.gsm", pcm))
    assert analysis.transcript is not None
    reference = " ".join(p.text for p in parts)
    assert wer(reference, analysis.transcript.text) <= 0.1
    segments = analysis.transcript.segments
    assert segments, "segments with times"
    # Times are in the recording's clock, trimmed silence included: speech starts after the 2 s lead-in.
    assert 1.4 <= segments[0].start_s <= 2.6
    assert segments[-1].end_s <= analysis.duration_s + 0.01
    assert all(a.start_s <= b.start_s for a, b in zip(segments, segments[1:], strict=False))


def test_a_card_number_read_into_a_voicemail_is_masked(analyser: VoicemailAnalyser, tmp_path: Path) -> None:
    prompts = corpus.prompts()
    card = [prompts[f"digits/{d}"] for d in "4532015112830366"]
    parts = [prompts["vm-dialout"], *card, prompts["queue-thankyou"]]
    pcm = corpus.join(parts, [0.8, 0.7, *[0.12] * 15, 0.7, 1.0])
    analysis = analyser.analyse_file(corpus.telephone(tmp_path / "card.ulaw.wav", pcm))
    assert analysis.transcript is not None
    text = analysis.transcript.text
    assert MASK in text
    assert not re.search(r"\d{4}", text)
    words = normalise_words(text)
    assert words[:7] == "please wait while i connect your call".split()
    assert words[-5:] == "thank you for your patience".split()
    assert all(MASK not in s.text or not re.search(r"\d{4}", s.text) for s in analysis.transcript.segments)


@pytest.mark.parametrize(
    "kind",
    ["silence", "line-noise", "white-noise", "dial-tone", "busy-tone-1khz"],
)
@pytest.mark.parametrize("codec", ["ulaw.wav", "gsm"])
def test_recordings_without_speech_are_silent(
    analyser: VoicemailAnalyser, tmp_path: Path, kind: str, codec: str
) -> None:
    pcm = {
        "silence": lambda: np.zeros(20 * 8000, np.int16),
        "line-noise": lambda: corpus.noise(20.0, -60),
        "white-noise": lambda: corpus.noise(20.0, -23),
        "dial-tone": lambda: corpus.tone(20.0, 425),
        "busy-tone-1khz": lambda: corpus.tone(20.0, 1000, -18),
    }[kind]()
    analysis = analyser.analyse_file(corpus.telephone(tmp_path / f"{kind}.{codec}", pcm))
    assert analysis.silent
    assert analysis.transcript is None
    assert analysis.silent_reason
    assert analysis.duration_s == pytest.approx(20.0, abs=0.05)


def test_the_model_setting_resolves_paths_names_and_the_packaged_model(tmp_path: Path) -> None:
    assert Path(resolve_model("")).joinpath("model.bin").is_file()
    assert resolve_model("small.en") == "small.en"
    assert resolve_model("Systran/faster-whisper-small") == "Systran/faster-whisper-small"
    with pytest.raises(ModelUnavailableError, match="no model folder at"):
        resolve_model(str(tmp_path / "nowhere"))
    with pytest.raises(ModelUnavailableError, match="no model.bin"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="unknown model 'tiny-en'"):
        resolve_model("tiny-en")
    with pytest.raises(ModelUnavailableError, match="no model folder"):
        WhisperTranscriber(WhisperOptions(model="./missing-model"))


def test_masking_can_be_turned_off(transcriber: WhisperTranscriber, tmp_path: Path) -> None:
    prompts = corpus.prompts()
    card = [prompts[f"digits/{d}"] for d in "4532015112830366"]
    pcm = corpus.join(card, [0.5, *[0.12] * 15, 0.5])
    plain = VoicemailAnalyser(
        WhisperTranscriber(WhisperOptions(model=transcriber.model_path, cpu_threads=2, mask_cards=False))
    ).analyse_file(corpus.telephone(tmp_path / "card.ulaw.wav", pcm))
    assert plain.transcript is not None
    assert MASK not in plain.transcript.text
