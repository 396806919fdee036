"""Templates: the shipped file, lookup fallbacks, personalisation and refusal of bad edits."""

from __future__ import annotations

from importlib import resources

import pytest

from callcenter.errors import ValidationError
from callcenter.sms.templates import Personal, Reply, parse_templates

SHIPPED = resources.files("callcenter.sms").joinpath("templates.toml").read_text(encoding="utf-8")


def test_the_shipped_file_parses_and_every_follow_up_says_how_to_stop() -> None:
    templates = parse_templates(SHIPPED)
    for lang in templates.texts:
        for outcome in ("abandoned", "voicemail", "after_hours", "failed"):
            for open_now in (True, False):
                text = templates.follow_up(outcome, open_now=open_now, language=lang, personal=Personal())
                assert "STOP" in text and "{" not in text


def test_lookup_by_outcome_business_hours_and_language() -> None:
    templates = parse_templates(SHIPPED)
    ann = Personal(name="Ann")
    open_text = templates.follow_up("abandoned", open_now=True, language=None, personal=ann)
    closed_text = templates.follow_up("abandoned", open_now=False, language=None, personal=ann)
    assert open_text.startswith("Hi Ann, sorry we missed your call to Example Co.")
    assert "closed right now" in closed_text
    assert "voicemail" in templates.follow_up("voicemail", open_now=True, language="en", personal=ann)
    assert templates.follow_up("abandoned", open_now=True, language="fr-FR", personal=ann).startswith(
        "Bonjour Ann,"
    )
    # An unknown language falls back to the business's.
    assert templates.follow_up("abandoned", open_now=True, language="de", personal=Personal()).startswith(
        "Hi, sorry"
    )


def test_replies_are_personalised() -> None:
    templates = parse_templates(SHIPPED)
    text = templates.reply(
        Reply.CALLBACK_REQUESTED, language="en", personal=Personal(window="at about 14:20")
    )
    assert (
        text
        == "Example Co: thanks, we will call you back at about 14:20. Reply 2 to cancel, STOP to opt out."
    )
    help_text = templates.reply(Reply.HELP, language=None)
    assert (
        "Msg & data rates may apply" in help_text and "STOP" in help_text and "+1 415 555 0100" in help_text
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s.replace("{business}: you are opted out", "{company}: you are opted out"),
            "unknown placeholders",
        ),
        (
            lambda s: s.replace('missed_open = "Hi{hello}, sorry', 'missed_open = "Hi{hello, sorry'),
            "en.follow_up",
        ),
        (
            lambda s: s.replace('Reply STOP to opt out."\nmissed_closed', '"\nmissed_closed'),
            "must tell how to opt out",
        ),
        (lambda s: s.replace('language = "en"', 'language = "de"'), "no [de] table"),
        (lambda s: s.replace("[business]", "[busyness]"), "[business]"),
        (lambda s: s + "\n[it]\nhelp = 'x'\n", "it.opt_out is missing"),
        (lambda s: s + "\n= broken", "not valid TOML"),
    ],
)
def test_bad_edits_are_refused_naming_the_fault(edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        parse_templates(edit(SHIPPED))
