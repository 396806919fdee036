"""The whisper an agent hears before a callback: who (the last four digits), why, how long they waited."""

from __future__ import annotations

import pytest

from callcenter.callbacks.dispatch_ports import Whisper
from callcenter.callbacks.reasons import Reason
from ivr.channel import Media, MediaKind
from ivr.whisper import REASON_PROMPTS, whisper_media
from media.prompts import PROMPTS


def _said(media: tuple[Media, ...]) -> list[str]:
    return [f"{m.kind.value}:{m.value}" for m in media]


@pytest.mark.parametrize(
    ("reason", "prompt"),
    [
        (Reason.KEPT_PLACE, "whisper-kept-place"),
        (Reason.CHOSEN_TIME, "whisper-chosen-time"),
        (Reason.VOICEMAIL, "whisper-voicemail"),
        (Reason.SMS_REPLY, "whisper-sms-reply"),
        (Reason.SMS_TEXT, "whisper-sms-text"),
        (Reason.FOLLOW_UP, "whisper-follow-up"),
        (Reason.MISSED_CALL, "whisper-missed-call"),
    ],
)
def test_the_whisper_says_who_why_and_how_long(reason: Reason, prompt: str) -> None:
    media = whisper_media(Whisper(number="+14155550100", waited_s=12 * 60 + 59, reason=reason))
    assert _said(media) == [
        "sound:callcenter/whisper-callback",
        "digits:0100",
        f"sound:callcenter/{prompt}",
        "sound:callcenter/whisper-waited",
        "number:12",
        "sound:callcenter/minutes",
    ]


def test_every_reason_has_a_prompt_of_the_catalogue() -> None:
    assert set(REASON_PROMPTS) == set(Reason)
    assert all(name in PROMPTS for name in REASON_PROMPTS.values())


@pytest.mark.parametrize(
    ("waited_s", "wait"),
    [
        (0.0, ["sound:callcenter/whisper-waited-under-minute"]),
        (59.9, ["sound:callcenter/whisper-waited-under-minute"]),
        (-5.0, ["sound:callcenter/whisper-waited-under-minute"]),  # a clock step back: not "-1"
        (60.0, ["sound:callcenter/whisper-waited", "number:1", "sound:callcenter/minute"]),
        (119 * 60 + 59, ["sound:callcenter/whisper-waited", "number:119", "sound:callcenter/minutes"]),
        (120 * 60, ["sound:callcenter/whisper-waited", "number:2", "sound:callcenter/hours"]),
        (26 * 3600 + 1, ["sound:callcenter/whisper-waited", "number:26", "sound:callcenter/hours"]),
    ],
)
def test_the_wait_is_said_in_minutes_then_hours(waited_s: float, wait: list[str]) -> None:
    media = whisper_media(Whisper(number="+33612345678", waited_s=waited_s))
    assert _said(media) == ["sound:callcenter/whisper-callback", "digits:5678", *wait], "no reason: not said"


def test_every_sound_of_a_whisper_is_in_the_catalogue() -> None:
    """Asterisk plays only files that exist: each sound is one ``callcenter prompts build`` renders."""
    for reason in (*Reason, None):
        for waited_s in (0.0, 60.0, 600.0, 7200.0):
            media = whisper_media(Whisper(number="+14155550100", waited_s=waited_s, reason=reason))
            sounds = [m.value for m in media if m.kind is MediaKind.SOUND]
            assert all(s.removeprefix("callcenter/") in PROMPTS for s in sounds), sounds


def test_a_voicemail_preview_is_played_after_the_reason() -> None:
    """The caller's own first words, by the absolute path Asterisk plays them from."""
    whisper = Whisper(
        number="+14155550100",
        waited_s=30.0,
        reason=Reason.VOICEMAIL,
        preview="/var/spool/callcenter/callcenter-preview-vm-1",
    )
    assert _said(whisper_media(whisper)) == [
        "sound:callcenter/whisper-callback",
        "digits:0100",
        "sound:callcenter/whisper-voicemail",
        "sound:/var/spool/callcenter/callcenter-preview-vm-1",
        "sound:callcenter/whisper-waited-under-minute",
    ]
