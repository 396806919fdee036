"""Why a callback is owed, from how it was asked for (pure).

The worklist shows it beside each callback and the dispatcher whispers it to the agent before the
customer is dialled.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from callcenter.callbacks.attempts import CallbackSource, SourceNote
from callcenter.model.callbacks import Callback, CallbackChange
from callcenter.model.vocabulary import CallbackKind


class Reason(StrEnum):
    """Why a callback is owed, in the words of the worklist."""

    MISSED_CALL = "missed_call"  # booked by staff for a caller whose call was missed
    KEPT_PLACE = "kept_place"  # the caller kept their place in line
    CHOSEN_TIME = "chosen_time"  # the caller chose a time
    VOICEMAIL = "voicemail"
    SMS_REPLY = "sms_reply"  # asked for a call by text ("1")
    SMS_TEXT = "sms_text"  # wrote a text that is no keyword: read the thread, call or answer
    FOLLOW_UP = "follow_up"  # an agent's own follow-up


_BY_SOURCE: Final = {
    CallbackSource.VOICEMAIL: Reason.VOICEMAIL,
    CallbackSource.SMS_REPLY: Reason.SMS_REPLY,
    CallbackSource.SMS_TEXT: Reason.SMS_TEXT,
    CallbackSource.AGENT_FOLLOW_UP: Reason.FOLLOW_UP,
}


def reason_of(callback: Callback, sources: Sequence[SourceNote], first: CallbackChange | None) -> Reason:
    """Why the callback exists: its first source, else how it was asked for.

    A request made by the caller in the IVR (or on the web) kept their place or chose a time; one made
    through the API on a caller's behalf for a call of theirs (``via <token>``) follows a missed call.
    """
    for note in sources:
        if not note.merged and note.source in _BY_SOURCE:
            return _BY_SOURCE[note.source]
        if not note.merged:
            break
    on_behalf = first is not None and first.actor.name.startswith("via ")
    if on_behalf and callback.call_id is not None:
        return Reason.MISSED_CALL
    return Reason.KEPT_PLACE if callback.kind is CallbackKind.KEEP_PLACE else Reason.CHOSEN_TIME


def voicemail_of(sources: Sequence[SourceNote]) -> str | None:
    """The voicemail a callback was made for (its first source), else ``None``."""
    for note in sources:
        if note.merged:
            continue
        if note.source is CallbackSource.VOICEMAIL and note.ref:
            return note.ref
        return None
    return None
