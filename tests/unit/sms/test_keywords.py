"""Inbound keyword classification: every opt-out form, plain-language revocation, precedence."""

from __future__ import annotations

import pytest

from callcenter.sms.keywords import Intent, KeywordRules, classify

OPT_OUT_FORMS = [
    "STOP",
    "STOPALL",
    "STOP ALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "OPT OUT",
]


def _variants(word: str) -> list[str]:
    return [
        word,
        word.lower(),
        word.title(),
        word[0].lower() + word[1:],
        f"  {word}  ",
        f"{word}.",
        f"{word}!!!",
        f'"{word}"',
        f"\t{word.lower()}\n",
        f"*{word}*",
        f"{word} please",
        f"please {word.lower()}",
    ]


@pytest.mark.parametrize("text", [v for w in OPT_OUT_FORMS for v in _variants(w)])
def test_every_opt_out_form_in_any_case_with_punctuation_is_an_opt_out(text: str) -> None:
    assert classify(text) is Intent.OPT_OUT


@pytest.mark.parametrize("text", ["opt-out", "Opt-Out!", "stop-all", "Stop  All", "ＳＴＯＰ", "Stóp"])
def test_spelling_variants_are_opt_outs(text: str) -> None:
    assert classify(text) is Intent.OPT_OUT


@pytest.mark.parametrize(
    "text",
    [
        "please stop texting me",
        "Don't text me again",
        "don’t text me again!!",
        "DO NOT TEXT THIS NUMBER",
        "remove me",
        "Remove me from your list please",
        "take me off your list",
        "no more texts",
        "wrong number",
        "Who is this? Please stop messaging me.",
    ],
)
def test_plain_language_revocations_are_opt_outs(text: str) -> None:
    assert classify(text) is Intent.OPT_OUT


def test_the_phrase_list_is_configurable() -> None:
    rules = KeywordRules.with_phrases(["arrête", "laisse-moi tranquille"])
    assert classify("Laisse-moi tranquille !", rules) is Intent.OPT_OUT
    assert classify("arrete", rules) is Intent.OPT_OUT
    # The configured list replaces the default phrases, never the statutory keywords.
    assert classify("remove me", rules) is Intent.OTHER
    assert classify("STOP", rules) is Intent.OPT_OUT


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("HELP", Intent.HELP),
        ("help?", Intent.HELP),
        ("Info", Intent.HELP),
        ("START", Intent.OPT_IN),
        ("unstop", Intent.OPT_IN),
        ("Yes!", Intent.OPT_IN),
        ("1", Intent.CALL_ME),
        (" 1. ", Intent.CALL_ME),
        ("CALL", Intent.CALL_ME),
        ("call me", Intent.CALL_ME),
        ("Call me!", Intent.CALL_ME),
        ("CALLBACK", Intent.CALL_ME),
        ("2", Intent.CANCEL_CALLBACK),
        ("2!", Intent.CANCEL_CALLBACK),
        ("What time do you open tomorrow?", Intent.OTHER),
        ("I can't stop laughing at this, thanks for the call", Intent.OTHER),
        ("12", Intent.OTHER),
        ("", Intent.OTHER),
        ("   ", Intent.OTHER),
        ("🙂", Intent.OTHER),
    ],
)
def test_other_keywords(text: str, intent: Intent) -> None:
    assert classify(text) is intent


@pytest.mark.parametrize(
    "text", ["1 STOP", "call me. STOP", "HELP stop", "YES stop", "stop 2", "Start? no, STOP"]
)
def test_an_opt_out_wins_over_anything_else_in_the_same_message(text: str) -> None:
    assert classify(text) is Intent.OPT_OUT


def test_cancel_stays_an_opt_out_even_where_a_callback_is_open() -> None:
    """'CANCEL' is an opt-out word by law; '2' is how a callback is cancelled."""
    assert classify("cancel") is Intent.OPT_OUT
    assert classify("Cancel my callback") is Intent.OPT_OUT
