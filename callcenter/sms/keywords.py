"""What an inbound text asks for: opt-out, opt-in, help, a call, cancel a callback, or a person (pure).

Opt-out wins over everything else in the same message: "1 STOP" and "HELP stop" are opt-outs. The law
says consent may be revoked "by any reasonable means", so besides the keywords a configurable list of
plain-language phrases ("please stop texting me") also counts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Intent(StrEnum):
    """What a reply means to us."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    CALL_ME = "call_me"
    CANCEL_CALLBACK = "cancel_callback"
    OTHER = "other"


#: Opt-out keywords (FCC per-se words, carriers' and platforms' sets), normalised.
OPT_OUT_KEYWORDS: Final = frozenset(
    {"stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "revoke", "optout", "opt out"}
)
OPT_IN_KEYWORDS: Final = frozenset({"start", "unstop", "yes"})
HELP_KEYWORDS: Final = frozenset({"help", "info"})
CALL_ME_KEYWORDS: Final = frozenset({"1", "call", "call me", "callback", "call back", "please call me"})
CANCEL_CALLBACK_KEYWORDS: Final = frozenset({"2"})

#: Plain-language revocations matched anywhere in the message (normalised, on word boundaries).
DEFAULT_REVOCATION_PHRASES: Final = (
    "stop texting",
    "stop messaging",
    "stop sending",
    "stop contacting",
    "dont text",
    "do not text",
    "dont message",
    "do not message",
    "dont contact",
    "do not contact",
    "no more texts",
    "no more messages",
    "remove me",
    "take me off",
    "leave me alone",
    "unsubscribe me",
    "opt me out",
    "not interested",
    "wrong number",
)

_NON_WORD = re.compile(r"[^\w]+")


def normalise(text: str) -> str:
    """Case-folded words separated by single spaces; punctuation, apostrophes and accents dropped."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    # "don't" -> "dont", "opt-out" -> "opt out"
    stripped = stripped.replace("'", "").replace("\u2019", "")
    return _NON_WORD.sub(" ", stripped.casefold()).replace("_", " ").strip()


@dataclass(frozen=True, slots=True)
class KeywordRules:
    """The phrase list used besides the fixed keywords (configurable, normalised on construction)."""

    revocation_phrases: tuple[str, ...] = DEFAULT_REVOCATION_PHRASES

    def __post_init__(self) -> None:
        phrases = tuple(p for p in (normalise(p) for p in self.revocation_phrases) if p)
        object.__setattr__(self, "revocation_phrases", phrases)

    @classmethod
    def with_phrases(cls, phrases: Iterable[str]) -> KeywordRules:
        return cls(revocation_phrases=tuple(phrases))


DEFAULT_RULES: Final = KeywordRules()


def classify(text: str, rules: KeywordRules = DEFAULT_RULES) -> Intent:
    """The intent of one inbound message (see the module docstring for the precedence)."""
    words = normalise(text)
    if _is_opt_out(words, rules):
        return Intent.OPT_OUT
    if words in OPT_IN_KEYWORDS:
        return Intent.OPT_IN
    if words in HELP_KEYWORDS:
        return Intent.HELP
    if words in CALL_ME_KEYWORDS:
        return Intent.CALL_ME
    if words in CANCEL_CALLBACK_KEYWORDS:
        return Intent.CANCEL_CALLBACK
    return Intent.OTHER


def _is_opt_out(words: str, rules: KeywordRules) -> bool:
    if not words:
        return False
    if words in OPT_OUT_KEYWORDS:
        return True
    tokens = words.split(" ")
    # A keyword leading or closing the message ("STOP please", "thanks. STOP", "1 stop") revokes; one in
    # the middle of a sentence ("can't stop laughing") does not, unless a phrase below matches.
    edges = {tokens[0], tokens[-1], " ".join(tokens[:2]), " ".join(tokens[-2:])}
    if edges & OPT_OUT_KEYWORDS:
        return True
    padded = f" {words} "
    return any(f" {phrase} " in padded for phrase in rules.revocation_phrases)
