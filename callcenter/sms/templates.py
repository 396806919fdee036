"""Message templates per language, outcome and business-hours state, from a user-editable TOML file (pure).

:func:`parse_templates` checks the whole file when it is loaded: unknown placeholders, missing texts
and follow-ups that do not say how to stop are refused with the key at fault, so a bad edit fails at
start-up rather than at 23:00 on a customer's phone.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Final

from callcenter.errors import ValidationError

PLACEHOLDERS: Final = frozenset({"business", "contact", "hello", "name", "window", "was"})


class Reply(StrEnum):
    """Texts answering an inbound message."""

    HELP = "help"
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    CALLBACK_REQUESTED = "callback_requested"
    CALLBACK_CANCELLED = "callback_cancelled"
    NO_OPEN_CALLBACK = "no_open_callback"


class Notice(StrEnum):
    """Texts about the recipient's own callback, sent when the callback changes (``callback.<key>``)."""

    CONFIRM_KEEP_PLACE = "confirm_keep_place"
    CONFIRM_SCHEDULED = "confirm_scheduled"
    REMINDER = "reminder"
    LATE = "late"
    FAILED = "failed"

    @property
    def about_open_callback(self) -> bool:
        """Whether the callback is still open when this goes: the text must say how to cancel it."""
        return self is not Notice.FAILED


@dataclass(frozen=True, slots=True)
class Personal:
    """What a text may say about its recipient and our promise.

    :param window: the promise as words ("between 14:00 and 14:30"); see :func:`describe_window`.
    :param was: the promise we are about to break, as words (late notices).
    """

    name: str = ""
    window: str = ""
    was: str = ""


@dataclass(frozen=True, slots=True)
class Templates:
    """The parsed file: business facts and ``texts[language][key]``."""

    business: str
    contact: str
    language: str
    texts: Mapping[str, Mapping[str, str]]

    def follow_up(self, outcome: str, *, open_now: bool, language: str | None, personal: Personal) -> str:
        """The follow-up text for a missed call with ``outcome`` (fallbacks in the module TOML)."""
        table = self._table(language)
        state = "open" if open_now else "closed"
        for key in (f"follow_up.{outcome}_{state}", f"follow_up.{outcome}", f"follow_up.missed_{state}"):
            if key in table:
                return self._render(table[key], personal)
        return self._render(table["follow_up.missed"], personal)

    def reply(self, kind: Reply, *, language: str | None, personal: Personal = Personal()) -> str:
        return self._render(self._table(language)[kind.value], personal)

    def notice(self, kind: Notice, *, language: str | None, personal: Personal) -> str:
        """A callback notice in the recipient's language (the business language where it has none)."""
        key = f"callback.{kind.value}"
        table = self._table(language)
        return self._render(table[key] if key in table else self.texts[self.language][key], personal)

    def language_of(self, language: str | None) -> str:
        """The table actually used for ``language``."""
        table = self._table(language)
        return next(lang for lang, t in self.texts.items() if t is table)

    def _table(self, language: str | None) -> Mapping[str, str]:
        if language:
            tag = language.lower().replace("_", "-")
            for candidate in (tag, tag.split("-")[0]):
                if candidate in self.texts:
                    return self.texts[candidate]
        return self.texts[self.language]

    def _render(self, template: str, personal: Personal) -> str:
        values = {
            "business": self.business,
            "contact": self.contact,
            "name": personal.name,
            "hello": f" {personal.name}" if personal.name else "",
            "window": f" {personal.window}" if personal.window else "",
            "was": personal.was,
        }
        return template.format_map(values).strip()


def parse_templates(text: str) -> Templates:
    """Read and check a templates file.

    :raises ValidationError: naming the key at fault.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"templates: not valid TOML: {exc}") from exc
    business = data.get("business")
    if not isinstance(business, dict):
        raise ValidationError("templates: a [business] table with name, contact and language is needed")
    name, contact, language = (business.get(k) for k in ("name", "contact", "language"))
    if not (isinstance(name, str) and isinstance(contact, str) and isinstance(language, str)):
        raise ValidationError("templates: [business] needs name, contact and language as text")
    texts: dict[str, dict[str, str]] = {}
    for lang, table in data.items():
        if lang == "business":
            continue
        if not isinstance(table, dict):
            raise ValidationError(f"templates: {lang!r} must be a table")
        texts[lang.lower()] = _flatten(lang, table)
    if language.lower() not in texts:
        raise ValidationError(f"templates: no [{language}] table for the business language")
    for lang, table in texts.items():
        _check_language(lang, table)
    for notice in Notice:
        if f"callback.{notice.value}" not in texts[language.lower()]:
            raise ValidationError(f"templates: {language.lower()}.callback.{notice.value} is missing")
    return Templates(business=name, contact=contact, language=language.lower(), texts=texts)


def _flatten(lang: str, table: Mapping[str, object]) -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            for sub, text in value.items():
                if not isinstance(text, str):
                    raise ValidationError(f"templates: {lang}.{key}.{sub} must be text")
                flat[f"{key}.{sub}"] = text
        elif isinstance(value, str):
            flat[key] = value
        else:
            raise ValidationError(f"templates: {lang}.{key} must be text or a table")
    return flat


def _check_language(lang: str, table: Mapping[str, str]) -> None:
    for kind in Reply:
        if kind.value not in table:
            raise ValidationError(f"templates: {lang}.{kind.value} is missing")
    if "follow_up.missed" not in table and not {"follow_up.missed_open", "follow_up.missed_closed"} <= set(
        table
    ):
        raise ValidationError(f"templates: {lang}.follow_up needs missed, or missed_open and missed_closed")
    for key, text in table.items():
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        except ValueError as exc:
            raise ValidationError(f"templates: {lang}.{key}: {exc}") from exc
        unknown = fields - PLACEHOLDERS
        if unknown:
            raise ValidationError(f"templates: {lang}.{key} uses unknown placeholders {sorted(unknown)}")
        if key.startswith(("follow_up.", "callback.")) and "STOP" not in text:
            raise ValidationError(f"templates: {lang}.{key} must tell how to opt out (STOP)")
        if key.startswith("callback.") and key.removeprefix("callback.") not in {n.value for n in Notice}:
            raise ValidationError(f"templates: {lang}.{key} is not a callback notice")
        if key.startswith("callback.") and Notice(key.removeprefix("callback.")).about_open_callback:
            # "CANCEL" is an opt-out word by law: a callback is cancelled by replying 2.
            if not re.search(r"\b2\b", text):
                raise ValidationError(
                    f"templates: {lang}.{key} must say how to cancel the callback (reply 2)"
                )


#: How a promise reads, per language: (by a time, between two times, on another day).
_WINDOW_WORDS: Final = {
    "en": ("by {end}", "between {start} and {end}", "on {day}"),
    "fr": ("d'ici {end}", "entre {start} et {end}", "le {day}"),
}


def describe_window(
    start: datetime, end: datetime, *, by_only: bool, zone: tzinfo, now: datetime, language: str
) -> str:
    """A promise in the recipient's local time: "by 14:20" (keep-my-place), "between 14:00 and 14:30"
    (a booked slot), with the day ("on 25/11") when it is not today there."""
    by, between, on_day = _WINDOW_WORDS.get(language, _WINDOW_WORDS["en"])
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    words = (
        by.format(end=f"{local_end:%H:%M}")
        if by_only
        else between.format(start=f"{local_start:%H:%M}", end=f"{local_end:%H:%M}")
    )
    if (local_end if by_only else local_start).date() != now.astimezone(zone).date():
        day = (local_end if by_only else local_start).strftime("%d/%m")
        words = f"{on_day.format(day=day)} {words}"
    return words
