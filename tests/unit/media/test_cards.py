"""Card-like numbers are masked however they were written or spoken; other numbers are kept."""

from __future__ import annotations

import pytest

from media.cards import MASK, mask_card_numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My card is 4111 1111 1111 1111, thanks.", f"My card is {MASK}, thanks."),
        ("card 4111111111111111", f"card {MASK}"),
        ("number 4111-1111-1111-1111 ok", f"number {MASK} ok"),
        ("Amex 3782 822463 10005.", f"Amex {MASK}."),  # 15 digits
        ("it's 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", f"it's {MASK}"),
        (
            "four one one one, one one one one, one one one one, one one one one please",
            f"{MASK} please",
        ),
        ("forty one eleven double one one one triple one one one one one", MASK),
        ("Four one one one one one one one one one one one one", MASK),  # 13 digits spoken
        ("card 4111 1111 1111 1111 12/27 cvv 123", f"card {MASK} cvv 123"),  # card read into expiry
    ],
)
def test_card_numbers_are_masked(text: str, expected: str) -> None:
    assert mask_card_numbers(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Call me back on 415 555 0100 tomorrow.",
        "My account number is 1234 5678 9012.",  # 12 digits
        "I am twenty one and have three kids",
        "one two three",
        "Order 12, item 7, room 1050.",
        "",
    ],
)
def test_other_numbers_are_kept(text: str) -> None:
    assert mask_card_numbers(text) == text


def test_two_cards_separated_by_words_are_both_masked() -> None:
    text = "old 4111 1111 1111 1111 and new 5500 0000 0000 0004"
    assert mask_card_numbers(text) == f"old {MASK} and new {MASK}"
