"""Masking card-like numbers in transcripts, however they were spoken or written (pure).

A caller reading a card number to a voicemail gives 13 to 19 digits; Whisper writes them as digit
groups ("4111 1111 1111 1111"), one run ("4111111111111111"), words ("four one one one ...") or a
mix ("forty one eleven, double one ..."). Every run of digit-bearing tokens, joined only by spaces,
hyphens, dots, commas or slashes, whose digits add up to 13-19, is replaced by :data:`MASK`. Longer
runs are masked too: a card number read straight into its expiry date or security code makes one
run of 20 or more digits. Shorter runs (phone numbers, amounts, dates) are kept.
"""

from __future__ import annotations

import re
from typing import Final

MASK: Final = "[card number removed]"
MIN_DIGITS: Final = 13

_UNITS: Final = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "nought": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_TEENS: Final = {
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "thirteen": "13",
    "fourteen": "14",
    "fifteen": "15",
    "sixteen": "16",
    "seventeen": "17",
    "eighteen": "18",
    "nineteen": "19",
}
_TENS: Final = {
    "twenty": "2",
    "thirty": "3",
    "forty": "4",
    "fifty": "5",
    "sixty": "6",
    "seventy": "7",
    "eighty": "8",
    "ninety": "9",
}
_REPEAT: Final = {"double": 2, "triple": 3}

# Words and digit groups, with what lies between them kept so unmasked text is rebuilt unchanged.
_TOKEN: Final = re.compile(r"[A-Za-z]+|\d+")
_JOINER: Final = re.compile(r"^[\s\-.,/]*$")


def mask_card_numbers(text: str) -> str:
    """``text`` with every spoken or written run of 13 or more digits replaced by :data:`MASK`."""
    tokens = list(_TOKEN.finditer(text))
    out: list[str] = []
    last = 0
    i = 0
    while i < len(tokens):
        end, digits = _digit_run(text, tokens, i)
        if end > i and len(digits) >= MIN_DIGITS:
            out.append(text[last : tokens[i].start()])
            out.append(MASK)
            last = tokens[end - 1].end()
            i = end
        else:
            i = max(end, i + 1)
    out.append(text[last:])
    return "".join(out)


def _digit_run(text: str, tokens: list[re.Match[str]], start: int) -> tuple[int, str]:
    """From token ``start``: the index after the last token of the digit run, and its digits."""
    digits: list[str] = []
    i = start
    while i < len(tokens):
        if i > start and not _JOINER.match(text[tokens[i - 1].end() : tokens[i].start()]):
            break
        step, value = _token_digits(tokens, i)
        if step == 0:
            break
        digits.append(value)
        i += step
    return i, "".join(digits)


def _token_digits(tokens: list[re.Match[str]], i: int) -> tuple[int, str]:
    """How many tokens from ``i`` read as digits, and those digits; (0, "") for a non-digit token."""
    word = tokens[i].group().lower()
    if word.isdigit():
        return 1, word
    if word in _UNITS:
        return 1, _UNITS[word]
    if word in _TEENS:
        return 1, _TEENS[word]
    nxt = tokens[i + 1].group().lower() if i + 1 < len(tokens) else ""
    if word in _TENS:
        if nxt in _UNITS and _UNITS[nxt] != "0":
            return 2, _TENS[word] + _UNITS[nxt]
        return 1, _TENS[word] + "0"
    if word in _REPEAT and (nxt in _UNITS or (nxt.isdigit() and len(nxt) == 1)):
        digit = _UNITS.get(nxt, nxt)
        return 2, digit * _REPEAT[word]
    return 0, ""
