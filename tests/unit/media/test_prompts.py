"""The prompt catalogue: its Asterisk names, and how long a prompt lasts where nothing renders it
(the demo's simulated Asterisk plays each that long)."""

from __future__ import annotations

import pytest

from media.prompts import PROMPTS, sound, spoken_s


def test_prompts_are_found_in_our_sound_folder() -> None:
    assert sound("offer-keep-place") == "callcenter/offer-keep-place"
    with pytest.raises(KeyError, match="no prompt named 'nope'"):
        sound("nope")


def test_a_prompt_lasts_as_long_as_its_words_take_to_say() -> None:
    # 14 words at 2.5 words a second, with a breath: about what espeak-ng and Piper take.
    assert spoken_s("offer-keep-place") == pytest.approx(5.8)
    assert spoken_s("and") == pytest.approx(0.6)
    assert all(spoken_s(name) > 0.2 for name in PROMPTS)
