"""Triage of transcribed voicemails: intents, urgency and a one-line preview (pure).

Rules are keyword phrases matched on whole words of the normalised transcript (lowercase, digits as
words, punctuation gone), so "cancel" matches "Cancel." but not "cancellation" unless listed. The
built-in rules cover billing, appointment, cancellation, complaint and callback requests; a JSON file
named by ``CALLCENTER_VOICEMAIL_TRIAGE_RULES`` replaces them::

    {"intents": {"billing": ["invoice", "bill", "charged"], ...},
     "urgent": ["urgent", "as soon as possible", "emergency"]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from callcenter.errors import ConfigError
from media.text import normalise_words

PREVIEW_CHARS: Final = 120
URGENT: Final = "urgent"
NORMAL: Final = "normal"


@dataclass(frozen=True, slots=True)
class TriageRules:
    """Intent name -> phrases, and the phrases that make a message urgent."""

    intents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    urgent: tuple[str, ...] = ()


DEFAULT_RULES: Final = TriageRules(
    intents={
        "billing": ("bill", "billing", "invoice", "charge", "charged", "payment", "refund", "overcharged"),
        "appointment": ("appointment", "reschedule", "booking", "book", "schedule a visit"),
        "cancellation": ("cancel", "cancellation", "terminate", "close my account", "stop my subscription"),
        "complaint": ("complaint", "complain", "unhappy", "disappointed", "not acceptable", "terrible"),
        "callback": ("call me back", "call back", "give me a call", "return my call"),
    },
    urgent=("urgent", "urgently", "emergency", "as soon as possible", "asap", "immediately", "right away"),
)


@dataclass(frozen=True, slots=True)
class Triage:
    """What the rules found in one transcript."""

    intents: tuple[str, ...]
    urgency: str
    preview: str


def triage(text: str, rules: TriageRules = DEFAULT_RULES) -> Triage:
    """Intents (in rule order), urgency and preview of transcript ``text``."""
    words = normalise_words(text)
    intents = tuple(name for name, phrases in rules.intents.items() if _any_phrase(words, phrases))
    urgency = URGENT if _any_phrase(words, rules.urgent) else NORMAL
    return Triage(intents=intents, urgency=urgency, preview=preview(text))


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters (with "…")."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:.-")
    return cut + "…"


def _any_phrase(words: Sequence[str], phrases: Sequence[str]) -> bool:
    for phrase in phrases:
        target = normalise_words(phrase)
        n = len(target)
        if n and any(list(words[i : i + n]) == target for i in range(len(words) - n + 1)):
            return True
    return False


def parse_rules(text: str, source: str) -> TriageRules:
    """Rules from the JSON ``text`` of file ``source``.

    :raises ConfigError: naming ``source`` for JSON that is not of the documented shape.
    """
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not JSON ({exc})") from None
    if not isinstance(body, dict) or not isinstance(body.get("intents", {}), dict):
        raise ConfigError(f'{source}: expected {{"intents": {{name: [phrases]}}, "urgent": [phrases]}}')
    intents: dict[str, tuple[str, ...]] = {}
    for name, phrases in body.get("intents", {}).items():
        if not isinstance(phrases, list) or not all(isinstance(p, str) and p.strip() for p in phrases):
            raise ConfigError(f"{source}: intent {name!r} needs a list of non-empty phrases")
        intents[str(name)] = tuple(phrases)
    urgent = body.get("urgent", [])
    if not isinstance(urgent, list) or not all(isinstance(p, str) and p.strip() for p in urgent):
        raise ConfigError(f"{source}: 'urgent' must be a list of non-empty phrases")
    return TriageRules(intents=intents, urgent=tuple(urgent))
