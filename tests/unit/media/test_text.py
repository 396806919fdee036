"""Normalised words and word error rate, as the transcription tests and benchmark compare them."""

from __future__ import annotations

import pytest

from media.text import normalise_words, number_words, wer


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (15, "fifteen"),
        (40, "forty"),
        (42, "forty two"),
        (100, "one hundred"),
        (2007, "two thousand seven"),
        (1_000_001, "one million one"),
    ],
)
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Press 1 for sales.", ["press", "one", "for", "sales"]),
        (
            "Please enter your number, followed by #.",
            ["please", "enter", "your", "number", "followed", "by", "pound"],
        ),
        ("Press * to toggle", ["press", "star", "to", "toggle"]),
        ("your party's extension", ["your", "partys", "extension"]),
        ("Call-Forward on No Answer", ["call", "forward", "on", "no", "answer"]),
        ("It costs 2.50", ["it", "costs", "two", "point", "five", "zero"]),
        ("  ", []),
    ],
)
def test_normalise_words(text: str, words: list[str]) -> None:
    assert normalise_words(text) == words


def test_wer_counts_substitutions_deletions_and_insertions() -> None:
    assert wer("press one for sales", "Press 1 for sales!") == 0.0
    assert wer("press one for sales", "press two for sales") == 0.25
    assert wer("press one for sales", "press one sales") == 0.25
    assert wer("press one for sales", "please press one for sales") == 0.25
    assert wer("", "") == 0.0
    assert wer("", "you") == 1.0
