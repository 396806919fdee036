"""Quiet hours: local windows, regional rules, several zones, deferral across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from callcenter.errors import ValidationError
from callcenter.sms.quiet import QuietRules, Recipient, Window, is_allowed, next_opening
from callcenter.sms.recipient import LineType, line_type, recipient_for, region_of

NY = ZoneInfo("America/New_York")
LA = ZoneInfo("America/Los_Angeles")
PARIS = ZoneInfo("Europe/Paris")
RULES = QuietRules()


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("at", "allowed"),
    [
        (local(NY, 2026, 11, 23, 7, 59, 59), False),
        (local(NY, 2026, 11, 23, 8, 0), True),
        (local(NY, 2026, 11, 23, 20, 59, 59), True),
        (local(NY, 2026, 11, 23, 21, 0), False),
        (local(NY, 2026, 11, 23, 23, 0), False),
        (local(NY, 2026, 11, 24, 3, 0), False),
    ],
)
def test_default_window_is_8_to_21_local(at: datetime, allowed: bool) -> None:
    assert is_allowed(at.astimezone(UTC), Recipient(zones=(NY,)), RULES) is allowed


def test_the_same_instant_is_open_in_one_zone_and_quiet_in_another() -> None:
    at = local(NY, 2026, 11, 23, 9, 0)  # 06:00 in Los Angeles
    assert is_allowed(at, Recipient(zones=(NY,)), RULES)
    assert not is_allowed(at, Recipient(zones=(LA,)), RULES)
    assert not is_allowed(at, Recipient(zones=(NY, LA)), RULES)
    assert next_opening(at, Recipient(zones=(NY, LA)), RULES) == local(LA, 2026, 11, 23, 8, 0)


def test_several_zones_take_the_most_restrictive_reading_at_both_ends() -> None:
    both = Recipient(zones=(NY, LA))
    # 20:30 in New York is 17:30 in LA: quiet by New York's end.
    assert not is_allowed(local(NY, 2026, 11, 23, 21, 30), both, RULES)
    assert next_opening(local(NY, 2026, 11, 23, 21, 30), both, RULES) == local(LA, 2026, 11, 24, 8, 0)


def test_a_late_message_is_deferred_to_the_next_morning_not_dropped() -> None:
    at = local(PARIS, 2026, 11, 23, 22, 15)
    assert next_opening(at, Recipient(zones=(PARIS,)), RULES) == local(PARIS, 2026, 11, 24, 8, 0)


def test_an_early_message_waits_for_the_same_morning() -> None:
    at = local(PARIS, 2026, 11, 23, 6, 15)
    assert next_opening(at, Recipient(zones=(PARIS,)), RULES) == local(PARIS, 2026, 11, 23, 8, 0)


def test_an_allowed_time_is_its_own_next_opening() -> None:
    at = local(PARIS, 2026, 11, 23, 12, 0)
    assert next_opening(at, Recipient(zones=(PARIS,)), RULES) == at


def test_deferral_across_spring_forward_lands_on_local_eight() -> None:
    # New York springs forward on 8 March 2026 at 02:00: the night is an hour shorter.
    at = local(NY, 2026, 3, 7, 22, 0)
    opening = next_opening(at, Recipient(zones=(NY,)), RULES)
    assert opening.astimezone(NY).replace(tzinfo=None) == datetime(2026, 3, 8, 8, 0)
    assert opening == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)  # EDT, UTC-4


def test_deferral_across_fall_back_lands_on_local_eight() -> None:
    # New York falls back on 1 November 2026 at 02:00: the night is an hour longer.
    at = local(NY, 2026, 10, 31, 22, 0)
    opening = next_opening(at, Recipient(zones=(NY,)), RULES)
    assert opening == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # EST, UTC-5


def test_a_window_start_skipped_by_dst_opens_after_the_gap() -> None:
    rules = QuietRules(default=tuple(Window(time(2, 30), time(21)) for _ in range(7)), regions={})
    opening = next_opening(local(NY, 2026, 3, 8, 1, 0), Recipient(zones=(NY,)), rules)
    assert opening == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT: 02:30 never happened
    assert is_allowed(opening, Recipient(zones=(NY,)), rules)


def test_europe_and_us_dst_changes_on_different_weekends() -> None:
    # Between 8 and 29 March 2026 New York is on EDT and Paris still on CET: 5 hours apart, not 6.
    both = Recipient(zones=(NY, PARIS))
    at = local(PARIS, 2026, 3, 20, 12, 0)  # 07:00 in New York
    assert next_opening(at, both, RULES) == local(NY, 2026, 3, 20, 8, 0) == local(PARIS, 2026, 3, 20, 13, 0)


@pytest.mark.parametrize(
    ("region", "at", "allowed"),
    [
        ("US-FL", local(NY, 2026, 11, 23, 20, 30), False),  # Florida stops at 20:00
        (None, local(NY, 2026, 11, 23, 20, 30), True),
        ("US-CT", local(NY, 2026, 11, 23, 8, 30), False),  # Connecticut starts at 9:00
        ("US-TX", local(ZoneInfo("America/Chicago"), 2026, 11, 22, 11, 0), False),  # Sunday: noon
        ("US-TX", local(ZoneInfo("America/Chicago"), 2026, 11, 22, 12, 0), True),
        ("US-TX", local(ZoneInfo("America/Chicago"), 2026, 11, 23, 9, 0), True),  # Monday: 9:00
        ("US-RI", local(NY, 2026, 11, 21, 9, 30), False),  # Saturday: 10-17
        ("US-RI", local(NY, 2026, 11, 23, 17, 30), True),  # Monday: 9-18
        ("US-RI", local(NY, 2026, 11, 22, 17, 30), False),  # Sunday: 10-17
    ],
)
def test_stricter_regional_rules(region: str | None, at: datetime, allowed: bool) -> None:
    zone = at.tzinfo
    assert isinstance(zone, ZoneInfo)
    assert is_allowed(at, Recipient(zones=(zone,), region=region), RULES) is allowed


def test_texas_sunday_defers_to_noon() -> None:
    chicago = ZoneInfo("America/Chicago")
    texan = Recipient(zones=(chicago,), region="US-TX")
    assert next_opening(local(chicago, 2026, 11, 21, 22, 0), texan, RULES) == local(
        chicago, 2026, 11, 22, 12, 0
    )


def test_the_regional_table_is_configurable() -> None:
    strict = QuietRules(regions={"FR": tuple(Window(time(10), time(19)) for _ in range(7))})
    assert not is_allowed(local(PARIS, 2026, 11, 23, 9, 30), Recipient(zones=(PARIS,), region="FR"), strict)
    assert is_allowed(local(PARIS, 2026, 11, 23, 9, 30), Recipient(zones=(PARIS,), region="DE"), strict)


def test_zones_without_shared_hours_are_refused_not_looped() -> None:
    # Two 13-hour windows always overlap somewhere in a day; one-hour windows 6 hours apart do not.
    short = QuietRules(default=tuple(Window(time(9), time(10)) for _ in range(7)), regions={})
    with pytest.raises(ValidationError):
        next_opening(datetime(2026, 11, 23, tzinfo=UTC), Recipient(zones=(NY, PARIS)), short)


def test_bad_windows_are_refused() -> None:
    with pytest.raises(ValidationError):
        Window(time(21), time(8))
    with pytest.raises(ValidationError):
        QuietRules(default=(Window(time(8), time(21)),))


@pytest.mark.parametrize(
    ("number", "zones", "region"),
    [
        ("+14155550100", ("America/Los_Angeles",), "US-CA"),
        ("+13055550100", ("America/New_York",), "US-FL"),
        ("+12035550100", ("America/New_York",), "US-CT"),
        ("+12142345678", ("America/Chicago",), "US-TX"),
        ("+33612345678", ("Europe/Paris",), "FR"),
    ],
)
def test_zone_and_region_from_the_number(number: str, zones: tuple[str, ...], region: str) -> None:
    recipient = recipient_for(number)
    assert tuple(z.key for z in recipient.zones) == zones
    assert recipient.region == region == region_of(number)


def test_the_contact_record_wins_over_the_number() -> None:
    recipient = recipient_for("+14155550100", zone="Europe/Paris", region="FR")
    assert [z.key for z in recipient.zones] == ["Europe/Paris"]
    assert recipient.region == "FR"
    # A zone name that does not exist falls back to the number's zones.
    assert [z.key for z in recipient_for("+14155550100", zone="Mars/Olympus").zones] == [
        "America/Los_Angeles"
    ]


def test_a_number_spanning_zones_keeps_them_all() -> None:
    recipient = recipient_for("+61412345678")  # an Australian mobile: any Australian zone
    assert {"Australia/Perth", "Australia/Sydney"} <= {z.key for z in recipient.zones}
    at = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)  # 09:30 Sydney, 06:30 Perth
    assert not is_allowed(at, recipient, RULES)


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("+33612345678", LineType.MOBILE),
        ("+33142345678", LineType.FIXED),
        ("+14155550100", LineType.UNKNOWN),  # the North American plan does not tell
        ("+18005550100", LineType.OTHER),
    ],
)
def test_line_type(number: str, kind: LineType) -> None:
    assert line_type(number) is kind


def test_quiet_rules_from_settings() -> None:
    from callcenter.sms.quiet import parse_quiet_rules

    rules = parse_quiet_rules("09:00-20:00", "FR=10:00-19:00; US-TX@sun=13:00-21:00 ; ")
    assert rules.default[0] == Window(time(9), time(20))
    assert rules.week_for("FR")[3] == Window(time(10), time(19))
    assert rules.week_for("US-TX")[6] == Window(time(13), time(21))
    assert rules.week_for("US-TX")[0] == Window(time(9), time(21))  # the built-in weekday rule stays
    assert rules.week_for("US-CT")[0] == Window(time(9), time(20))
    for bad in ("FR", "FR=10h-19h", "FR@someday=10:00-19:00", "FR=19:00-10:00"):
        with pytest.raises(ValidationError):
            parse_quiet_rules("08:00-21:00", bad)
