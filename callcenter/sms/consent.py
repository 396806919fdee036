"""The consent ledger: hash-chained records per number, current consent, per-program policy (pure).

Records are appended, never changed. Each names the number by a keyed hash (HMAC-SHA256 with the
site's secret), so an opt-out still holds after the number's personal data is erased; the readable
number and the evidence text live beside the record and may be erased, while the chain covers only
the key and a digest of the evidence. A record's ``hash`` covers its fields and the ``hash`` of the
previous record of the same number, so a changed, removed or reordered record breaks the chain.

An opt-out through an SMS keyword applies to every program (``ALL_PROGRAMS``): the sender may not
pick which of its messages a "STOP" stops.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from callcenter.errors import ValidationError

ALL_PROGRAMS: Final = "*"
#: Follow-ups to someone who just called us (missed-call texts, callback notices).
INFORMATIONAL: Final = "informational"
MARKETING: Final = "marketing"
GENESIS_HASH: Final = "0" * 64


class ConsentAction(StrEnum):
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"


class ConsentSource(StrEnum):
    SMS_KEYWORD = "sms_keyword"
    IVR = "ivr"
    API = "api"
    AGENT = "agent"
    IMPORT = "import"


class ConsentStatus(StrEnum):
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"
    UNKNOWN = "unknown"


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsentEntry:
    """What a new record says, before it is chained."""

    program: str
    action: ConsentAction
    source: ConsentSource
    actor: str
    at: datetime
    evidence_ref: str = ""
    evidence_text: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsentRecord:
    """One chained record; ``seq`` counts from 1 per number."""

    number_key: str
    seq: int
    program: str
    action: ConsentAction
    source: ConsentSource
    actor: str
    at: datetime
    evidence_ref: str
    evidence_digest: str
    prev_hash: str
    hash: str


def number_key(e164: str, secret: bytes) -> str:
    """The keyed hash that names a number in the ledger (stable across erasure)."""
    if not secret:
        raise ValidationError("the consent ledger needs a non-empty secret")
    return hmac.new(secret, e164.encode(), hashlib.sha256).hexdigest()


def chain(previous: ConsentRecord | None, key: str, entry: ConsentEntry) -> ConsentRecord:
    """The record that follows ``previous`` (``None`` for a number's first) for ``entry``."""
    if entry.at.tzinfo is None:
        raise ValidationError("consent times must be timezone-aware")
    if not entry.program:
        raise ValidationError("a consent record needs a program")
    unhashed = ConsentRecord(
        number_key=key,
        seq=previous.seq + 1 if previous is not None else 1,
        program=entry.program,
        action=entry.action,
        source=entry.source,
        actor=entry.actor,
        at=entry.at,
        evidence_ref=entry.evidence_ref,
        evidence_digest=hashlib.sha256(entry.evidence_text.encode()).hexdigest()
        if entry.evidence_text
        else "",
        prev_hash=previous.hash if previous is not None else GENESIS_HASH,
        hash="",
    )
    return dataclasses.replace(unhashed, hash=_hash(unhashed))


def _hash(record: ConsentRecord) -> str:
    fields = {
        "number_key": record.number_key,
        "seq": record.seq,
        "program": record.program,
        "action": str(record.action),
        "source": str(record.source),
        "actor": record.actor,
        "at": record.at.isoformat(),
        "evidence_ref": record.evidence_ref,
        "evidence_digest": record.evidence_digest,
    }
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{record.prev_hash}\n{body}".encode()).hexdigest()


def verify_chain(records: Sequence[ConsentRecord]) -> int | None:
    """The index of the first record that breaks its number's chain, or ``None`` when all hold.

    ``records`` are one number's, in ``seq`` order. The evidence text may have been erased: the chain
    covers its digest, which stays.
    """
    prev_hash, seq = GENESIS_HASH, 0
    for index, record in enumerate(records):
        if record.seq != seq + 1 or record.prev_hash != prev_hash or record.hash != _hash(record):
            return index
        prev_hash, seq = record.hash, record.seq
    return None


def status_of(records: Iterable[ConsentRecord], program: str) -> ConsentStatus:
    """Current consent of one number for ``program``: its latest record for it or for every program."""
    latest: ConsentRecord | None = None
    for record in records:
        if record.program in (program, ALL_PROGRAMS) and (latest is None or record.seq > latest.seq):
            latest = record
    if latest is None:
        return ConsentStatus.UNKNOWN
    return ConsentStatus.OPTED_IN if latest.action is ConsentAction.OPT_IN else ConsentStatus.OPTED_OUT


def overall_status(records: Iterable[ConsentRecord]) -> ConsentStatus:
    """Opted out if the latest record says so for every program; else opted in if any opt-in stands."""
    ordered = sorted(records, key=lambda r: r.seq)
    if not ordered:
        return ConsentStatus.UNKNOWN
    programs = {r.program for r in ordered if r.program != ALL_PROGRAMS} | {ALL_PROGRAMS}
    states = {p: status_of(ordered, p) for p in programs}
    if all(s is ConsentStatus.OPTED_OUT for s in states.values()):
        return ConsentStatus.OPTED_OUT
    if any(s is ConsentStatus.OPTED_IN for s in states.values()):
        return ConsentStatus.OPTED_IN
    return ConsentStatus.UNKNOWN


@dataclass(frozen=True, slots=True)
class ConsentPolicy:
    """Whether a program may text a number that never opted in (``unknown``)."""

    program: str
    needs_opt_in: bool

    def allows(self, status: ConsentStatus) -> bool:
        if status is ConsentStatus.OPTED_OUT:
            return False
        return status is ConsentStatus.OPTED_IN or not self.needs_opt_in


#: Informational follow-ups may answer someone who just called us; marketing never without opt-in.
DEFAULT_POLICIES: Final = {
    INFORMATIONAL: ConsentPolicy(INFORMATIONAL, needs_opt_in=False),
    MARKETING: ConsentPolicy(MARKETING, needs_opt_in=True),
}


def policy_for(program: str, policies: Mapping[str, ConsentPolicy] = DEFAULT_POLICIES) -> ConsentPolicy:
    """The program's policy; a program without one needs an opt-in (the safe reading)."""
    return policies.get(program, ConsentPolicy(program, needs_opt_in=True))


def consent_event_id(key: str, evidence_ref: str) -> str:
    """The event id of a ledger entry's ``sms_consent_changed`` (the number by its keyed hash only)."""
    return f"consent:{key}:{evidence_ref}"
