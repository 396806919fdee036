"""What an agent hears before a callback's customer is dialled: who, why, their message, how long they waited (pure).

A media list of catalogue prompts (``media/prompts.py``) and Asterisk's built-in say, the same on
every driver: "Callback to the number ending in 0 1 0 0. They kept their place in the queue. They
have waited 12 minutes."
"""

from __future__ import annotations

from typing import Final

from callcenter.callbacks.dispatch_ports import Whisper
from callcenter.callbacks.reasons import Reason
from ivr.channel import Media, MediaKind
from media.prompts import sound

#: The prompt saying each reason.
REASON_PROMPTS: Final = {
    Reason.KEPT_PLACE: "whisper-kept-place",
    Reason.CHOSEN_TIME: "whisper-chosen-time",
    Reason.VOICEMAIL: "whisper-voicemail",
    Reason.SMS_REPLY: "whisper-sms-reply",
    Reason.SMS_TEXT: "whisper-sms-text",
    Reason.FOLLOW_UP: "whisper-follow-up",
    Reason.MISSED_CALL: "whisper-missed-call",
}
_DIGITS_SAID: Final = 4
#: Waits at least this long are said in whole hours.
_HOURS_FROM_MIN: Final = 120


def _prompt(name: str) -> Media:
    return Media(MediaKind.SOUND, sound(name))


def whisper_media(whisper: Whisper) -> tuple[Media, ...]:
    """The whisper as a media list: the number's last four digits, the reason (when known), the start
    of the caller's voicemail (when there is a preview), the wait (under a minute; whole minutes;
    whole hours from two hours)."""
    digits = "".join(ch for ch in whisper.number if ch.isdigit())[-_DIGITS_SAID:]
    media: list[Media] = [_prompt("whisper-callback"), Media(MediaKind.DIGITS, digits)] if digits else []
    if whisper.reason is not None:
        media.append(_prompt(REASON_PROMPTS[whisper.reason]))
    if whisper.preview:
        media.append(Media(MediaKind.SOUND, whisper.preview))  # the caller's own voice
    minutes = int(max(whisper.waited_s, 0.0) // 60)
    if minutes < 1:
        media.append(_prompt("whisper-waited-under-minute"))
    elif minutes < _HOURS_FROM_MIN:
        unit = "minute" if minutes == 1 else "minutes"
        media += [_prompt("whisper-waited"), Media(MediaKind.NUMBER, str(minutes)), _prompt(unit)]
    else:
        media += [_prompt("whisper-waited"), Media(MediaKind.NUMBER, str(minutes // 60)), _prompt("hours")]
    return tuple(media)
