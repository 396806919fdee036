"""Which numbers a callback may go to: valid, not premium, in an allowed country, not withheld."""

from __future__ import annotations

import pytest

from callcenter.callbacks.numbers import NumberRefusal, check_callback_number, keyed_number


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+14155550100", "+14155550100"),
        ("(415) 555-0100", "+14155550100"),
        ("4155550100", "+14155550100"),
        ("011 33 6 12 34 56 78", "+33612345678"),
    ],
)
def test_accepted_numbers_come_back_in_e164(raw: str, e164: str) -> None:
    assert check_callback_number(raw).e164 == e164


@pytest.mark.parametrize(
    ("raw", "refusal"),
    [
        ("anonymous", NumberRefusal.WITHHELD),
        ("", NumberRefusal.WITHHELD),
        ("12", NumberRefusal.INVALID),
        ("1" * 40, NumberRefusal.INVALID),
        ("not a number", NumberRefusal.INVALID),
        ("+19005550123", NumberRefusal.PREMIUM),
        ("+33891234567", NumberRefusal.PREMIUM),
    ],
)
def test_refused_numbers_say_why(raw: str, refusal: NumberRefusal) -> None:
    checked = check_callback_number(raw)
    assert (checked.e164, checked.refusal, checked.ok) == (None, refusal, False)


def test_allowed_regions_limit_the_countries_called_back() -> None:
    assert check_callback_number("+33612345678", allowed_regions=("US", "CA")).refusal is NumberRefusal.REGION
    assert check_callback_number("+14155550100", allowed_regions=("US",)).ok


def test_a_star_on_the_keypad_stands_for_plus() -> None:
    assert keyed_number("*33612345678") == "+33612345678"
    assert check_callback_number(keyed_number("*33612345678")).e164 == "+33612345678"
