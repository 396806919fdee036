"""Triage rules: intents, urgency and the one-line preview."""

from __future__ import annotations

import pytest

from callcenter.errors import ConfigError
from callcenter.voicemail.triage import DEFAULT_RULES, parse_rules, preview, triage


@pytest.mark.parametrize(
    ("text", "intents", "urgency"),
    [
        (
            "Hi, I was charged twice on my last invoice. Please call me back.",
            ("billing", "callback"),
            "normal",
        ),
        ("I need to reschedule my appointment on Friday.", ("appointment",), "normal"),
        ("Please cancel my subscription, this is urgent!", ("cancellation",), "urgent"),
        ("I am very disappointed with the service, I want to make a complaint.", ("complaint",), "normal"),
        ("Water is leaking everywhere, it's an emergency, call back ASAP.", ("callback",), "urgent"),
        ("Just saying hello.", (), "normal"),
    ],
)
def test_default_rules(text: str, intents: tuple[str, ...], urgency: str) -> None:
    found = triage(text, DEFAULT_RULES)
    assert found.intents == intents
    assert found.urgency == urgency


def test_whole_words_only() -> None:
    assert triage("The billboard outside", DEFAULT_RULES).intents == ()


def test_preview_is_one_line_cut_at_a_word() -> None:
    text = "Hello,\nthis is Anna  from accounts. " + "We need to talk about the renewal of the contract. " * 5
    line = preview(text, limit=60)
    assert "\n" not in line and len(line) <= 60 and line.endswith("…")
    assert line.startswith("Hello, this is Anna from accounts.")
    assert preview("short", limit=60) == "short"


def test_rules_from_json() -> None:
    rules = parse_rules('{"intents": {"sales": ["quote", "price list"]}, "urgent": ["today"]}', "rules.json")
    found = triage("Can you send me the price list today?", rules)
    assert found.intents == ("sales",) and found.urgency == "urgent"


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '{"intents": {"x": "not a list"}}', '{"intents": {}, "urgent": [""]}'],
)
def test_bad_rules_name_the_source(text: str) -> None:
    with pytest.raises(ConfigError, match="rules.json"):
        parse_rules(text, "rules.json")
