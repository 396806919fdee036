"""Transcript text normalised for comparison, and word error rate (pure).

Normalised means: lowercase, numbers written as words ("10" -> "ten"), ``#``/``*`` as the words a
phone prompt uses ("pound", "star"), punctuation and apostrophes removed, hyphens split words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

_ONES: Final = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS: Final = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SYMBOLS: Final = {"#": " pound ", "*": " star ", "%": " percent ", "&": " and ", "+": " plus "}
_NUMBER: Final = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def number_words(n: int) -> str:
    """``n`` (0 to 999,999,999) in English words, e.g. 2007 -> "two thousand seven"."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    for size, name in ((1_000_000, "million"), (1000, "thousand")):
        if n >= size:
            rest = n % size
            return number_words(n // size) + f" {name}" + ("" if rest == 0 else " " + number_words(rest))
    raise AssertionError(n)


def _spoken_number(match: re.Match[str]) -> str:
    text = match.group().replace(",", "")
    whole, _, fraction = text.partition(".")
    if len(whole) > 9 or (len(whole) > 1 and whole.startswith("0")):
        words = " ".join(_ONES[int(d)] for d in whole)  # a digit string: read digit by digit
    else:
        words = number_words(int(whole))
    if fraction:
        words += " point " + " ".join(_ONES[int(d)] for d in fraction)
    return f" {words} "


def normalise_words(text: str) -> list[str]:
    """The words of ``text`` in normal form (see the module docstring)."""
    lowered = text.lower()
    for symbol, word in _SYMBOLS.items():
        lowered = lowered.replace(symbol, word)
    lowered = _NUMBER.sub(_spoken_number, lowered)
    lowered = lowered.replace("'", "").replace("’", "")
    return re.sub(r"[^a-z0-9]+", " ", lowered).split()


def word_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Substitutions, deletions and insertions turning ``reference`` into ``hypothesis`` (Levenshtein)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference``, both normalised (0 when both empty)."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return word_errors(ref, hyp) / len(ref)
