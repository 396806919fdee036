"""The prompt catalogue: every sentence our voice flows play, by name, with its English text (pure).

Asterisk finds a prompt as the sound ``callcenter/<name>`` (``sounds/en/callcenter/<name>.wav``).
Numbers, digits and times are never recorded here: the flows speak them with Asterisk's built-in say
(ARI ``number:``/``digits:`` media, AGI ``SAY NUMBER``/``SAY DIGITS``), between these fragments.
``callcenter prompts build DIR`` renders the catalogue to 8 kHz 16-bit mono WAV.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

#: Folder of our prompts among Asterisk's sounds.
SOUND_FOLDER: Final = "callcenter"

#: name -> text. Names are stable: flows and deployments refer to them.
PROMPTS: Final[Mapping[str, str]] = {
    # position and wait
    "you-are-next": "You are next in line.",
    "there-are": "There are",
    "callers-ahead": "callers ahead of you.",
    "wait-less-than": "Your wait should be less than",
    "wait-between": "Your wait should be between",
    "and": "and",
    "minutes": "minutes.",
    # the offer
    "offer-keep-place": "To keep your place in line and have us call you back by about",
    "press-1": "press 1.",
    "offer-later": "To choose a later time for us to call you, press 2.",
    "offer-stay": "Or stay on the line to keep waiting.",
    "not-understood": "Sorry, I did not get that.",
    "keep-waiting": "Please stay on the line. We will be with you as soon as we can.",
    # voicemail by key (the key is said after it)
    "leave-message": "To leave a message instead, press",
    # the number
    "we-will-call": "We will call you back on",
    "confirm-or-change": "Press 1 to confirm, or 2 to enter another number.",
    "enter-number": "Please enter the number to call you back on, with its area code, then press the pound key.",
    "number-invalid": "That number is not valid.",
    "number-premium": "We cannot call back premium rate numbers.",
    "number-region": "We cannot call back numbers in that country.",
    # later times
    "choose-time": "Choose a time for us to call you back.",
    "for": "For",
    "press": "press",
    "no-later-time": "Sorry, no later time is free.",
    "time-taken": "Sorry, that time has just been taken.",
    # confirmation
    "confirm-by": "Thank you. We will call you back by about",
    "confirm-between": "Thank you. We will call you back between",
    "goodbye": "Goodbye.",
    # a caller who already has a callback
    "have-callback": "You already have a callback booked, for",
    "keep-or-cancel": "Press 1 to keep it and hang up, or 2 to cancel it and wait in line.",
    "callback-kept": "Your callback is kept.",
    "callback-cancelled": "Your callback is cancelled.",
    # times of day
    "oclock": "o'clock",
    "oh": "oh",
    "am": "a m",
    "pm": "p m",
    "today": "today",
    "tomorrow": "tomorrow",
    "day-mon": "on Monday",
    "day-tue": "on Tuesday",
    "day-wed": "on Wednesday",
    "day-thu": "on Thursday",
    "day-fri": "on Friday",
    "day-sat": "on Saturday",
    "day-sun": "on Sunday",
    # the whisper to an agent before a callback (who, why, how long they waited)
    "whisper-callback": "Callback to the number ending in",
    "whisper-kept-place": "They kept their place in the queue.",
    "whisper-chosen-time": "They booked this time.",
    "whisper-voicemail": "They left a voicemail.",
    "whisper-sms-reply": "They asked by text message.",
    "whisper-sms-text": "They sent a text message. Read it on your worklist.",
    "whisper-follow-up": "This is a follow-up call.",
    "whisper-missed-call": "Their call was missed.",
    "whisper-waited": "They have waited",
    "whisper-waited-under-minute": "They have waited less than a minute.",
    "minute": "minute.",
    "hours": "hours.",
}


#: How fast our voices say the catalogue, for a prompt's length without rendering it (espeak-ng and
#: Piper say about 2.5 words a second at their defaults).
WORDS_PER_S: Final = 2.5


def spoken_s(name: str) -> float:
    """About how long prompt ``name`` lasts when said (the simulated Asterisk of the demo plays it that
    long). :raises KeyError: for a prompt not in the catalogue."""
    return round(0.2 + len(PROMPTS[name].split()) / WORDS_PER_S, 2)


def sound(name: str) -> str:
    """The Asterisk sound name of prompt ``name``. :raises KeyError: for a prompt not in the catalogue."""
    if name not in PROMPTS:
        raise KeyError(f"no prompt named {name!r} in the catalogue")
    return f"{SOUND_FOLDER}/{name}"
