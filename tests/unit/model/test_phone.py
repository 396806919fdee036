"""Caller ids become E.164 where they parse and are never lost or shown in full in logs."""

from __future__ import annotations

import pytest

from callcenter.errors import InvalidPhoneNumberError
from callcenter.model.phone import parse_phone, require_e164


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+14155550100", "US", "+14155550100"),
        ("(415) 555-0100", "US", "+14155550100"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("0033 1 42 68 53 00", "FR", "+33142685300"),
    ],
)
def test_numbers_parse_to_e164(raw: str, region: str, e164: str) -> None:
    assert parse_phone(raw, region).e164 == e164


@pytest.mark.parametrize("raw", ["anonymous", "Restricted", "", "  "])
def test_withheld_caller_ids_are_recognised_and_have_no_e164(raw: str) -> None:
    number = parse_phone(raw)

    assert number.is_withheld
    assert number.e164 is None


@pytest.mark.parametrize("raw", ["12", "sip:alice@example.com", "+1 555", "ext 204"])
def test_unparseable_caller_ids_keep_the_raw_text(raw: str) -> None:
    number = parse_phone(raw)

    assert number.e164 is None
    assert number.display == raw


def test_masked_form_hides_all_but_the_last_two_digits() -> None:
    number = parse_phone("+14155550100")

    assert number.masked == "+1********00"
    assert str(number) == number.masked
    assert "5550" not in f"{number}"


def test_require_e164_explains_a_bad_number() -> None:
    with pytest.raises(InvalidPhoneNumberError, match="not a valid phone number: '555'"):
        require_e164("555")
