"""Templates: the shipped file, lookup fallbacks, personalisation and refusal of bad edits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

import pytest

from callcenter.errors import ValidationError
from callcenter.sms.templates import Personal, Reply, describe_window, parse_templates

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


def _shipped() -> str:
    return resources.files("callcenter.sms").joinpath("templates.toml").read_text("utf-8")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('Reply 2 to cancel, STOP to opt out."\nreminder', 'STOP to opt out."\nreminder', "reply 2"),
        ('late = "{business}: sorry', 'late_ish = "{business}: sorry', "not a callback notice"),
    ],
)
def test_callback_notices_must_say_how_to_cancel_and_be_known(old: str, new: str, message: str) -> None:
    text = _shipped()
    assert old in text
    with pytest.raises(ValidationError, match=message):
        parse_templates(text.replace(old, new, 1))


def test_a_missing_notice_in_the_business_language_is_refused_at_load() -> None:
    text = _shipped().replace('failed = "{business}: we tried', 'failed_x = "{business}: we tried', 1)
    with pytest.raises(ValidationError, match="callback"):
        parse_templates(text)


@pytest.mark.parametrize(
    ("by_only", "language", "start_h", "expected"),
    [
        (True, "en", 14, "by 14:30"),
        (False, "en", 14, "between 14:00 and 14:30"),
        (False, "fr", 14, "entre 14:00 et 14:30"),
        (False, "en", 38, "on 25/11 between 14:00 and 14:30"),
        (True, "fr", 38, "le 25/11 d'ici 14:30"),
    ],
)
def test_a_promise_reads_in_local_time_with_its_day_when_not_today(
    by_only: bool, language: str, start_h: int, expected: str
) -> None:
    zone = ZoneInfo("America/New_York")
    now = datetime(2026, 11, 24, 9, 0, tzinfo=zone)
    start = datetime(2026, 11, 24, 0, 0, tzinfo=zone) + timedelta(hours=start_h)
    words = describe_window(
        start.astimezone(UTC),
        start + timedelta(minutes=30),
        by_only=by_only,
        zone=zone,
        now=now,
        language=language,
    )
    assert words == expected
