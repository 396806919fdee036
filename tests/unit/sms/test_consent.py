"""The consent ledger: hash chain, tamper evidence, derived status and per-program policy."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.errors import ValidationError
from callcenter.sms.consent import (
    ALL_PROGRAMS,
    INFORMATIONAL,
    MARKETING,
    ConsentAction,
    ConsentEntry,
    ConsentRecord,
    ConsentSource,
    ConsentStatus,
    chain,
    number_key,
    overall_status,
    policy_for,
    status_of,
    verify_chain,
)

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
KEY = number_key("+14155550100", b"secret")


def ledger(*steps: tuple[str, ConsentAction]) -> list[ConsentRecord]:
    records: list[ConsentRecord] = []
    for i, (program, action) in enumerate(steps):
        entry = ConsentEntry(
            program=program,
            action=action,
            source=ConsentSource.SMS_KEYWORD,
            actor="sms",
            at=T0 + timedelta(minutes=i),
            evidence_ref=f"msg-{i}",
            evidence_text="STOP" if action is ConsentAction.OPT_OUT else "START",
        )
        records.append(chain(records[-1] if records else None, KEY, entry))
    return records


def test_the_number_key_is_keyed_and_stable() -> None:
    assert number_key("+14155550100", b"secret") == KEY
    assert number_key("+14155550100", b"other") != KEY
    assert number_key("+14155550101", b"secret") != KEY
    assert "4155550100" not in KEY
    with pytest.raises(ValidationError):
        number_key("+14155550100", b"")


def test_an_untouched_chain_verifies() -> None:
    records = ledger((INFORMATIONAL, ConsentAction.OPT_IN), (ALL_PROGRAMS, ConsentAction.OPT_OUT))
    assert [r.seq for r in records] == [1, 2]
    assert records[1].prev_hash == records[0].hash
    assert verify_chain(records) is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda rs: [dataclasses.replace(rs[0], action=ConsentAction.OPT_OUT), *rs[1:]],
        lambda rs: [rs[0], dataclasses.replace(rs[1], at=rs[1].at + timedelta(days=20)), rs[2]],
        lambda rs: [rs[0], rs[2]],  # a record removed
        lambda rs: [rs[1], rs[0], rs[2]],  # reordered
        lambda rs: [rs[0], rs[1], dataclasses.replace(rs[2], evidence_digest="0" * 64)],
        lambda rs: [rs[0], rs[1], dataclasses.replace(rs[2], actor="someone else")],
    ],
)
def test_tampering_breaks_the_chain(tamper) -> None:  # type: ignore[no-untyped-def]
    records = ledger(
        (INFORMATIONAL, ConsentAction.OPT_IN),
        (ALL_PROGRAMS, ConsentAction.OPT_OUT),
        (INFORMATIONAL, ConsentAction.OPT_IN),
    )
    assert verify_chain(tamper(records)) is not None


def test_status_follows_the_latest_record_for_the_program_or_all() -> None:
    assert status_of([], INFORMATIONAL) is ConsentStatus.UNKNOWN
    records = ledger((MARKETING, ConsentAction.OPT_IN))
    assert status_of(records, MARKETING) is ConsentStatus.OPTED_IN
    assert status_of(records, INFORMATIONAL) is ConsentStatus.UNKNOWN
    records = ledger((MARKETING, ConsentAction.OPT_IN), (ALL_PROGRAMS, ConsentAction.OPT_OUT))
    assert status_of(records, MARKETING) is ConsentStatus.OPTED_OUT
    assert status_of(records, INFORMATIONAL) is ConsentStatus.OPTED_OUT
    assert overall_status(records) is ConsentStatus.OPTED_OUT
    records = ledger((ALL_PROGRAMS, ConsentAction.OPT_OUT), (INFORMATIONAL, ConsentAction.OPT_IN))
    assert status_of(records, INFORMATIONAL) is ConsentStatus.OPTED_IN
    assert status_of(records, MARKETING) is ConsentStatus.OPTED_OUT
    assert overall_status(records) is ConsentStatus.OPTED_IN


def test_default_policy_informational_without_opt_in_marketing_never() -> None:
    informational, marketing = policy_for(INFORMATIONAL), policy_for(MARKETING)
    assert informational.allows(ConsentStatus.UNKNOWN)
    assert not informational.allows(ConsentStatus.OPTED_OUT)
    assert not marketing.allows(ConsentStatus.UNKNOWN)
    assert marketing.allows(ConsentStatus.OPTED_IN)
    assert not policy_for("surveys").allows(ConsentStatus.UNKNOWN)


def test_naive_times_are_refused() -> None:
    entry = ConsentEntry(
        program=INFORMATIONAL,
        action=ConsentAction.OPT_OUT,
        source=ConsentSource.API,
        actor="x",
        at=datetime(2026, 1, 1),
    )
    with pytest.raises(ValidationError):
        chain(None, KEY, entry)
