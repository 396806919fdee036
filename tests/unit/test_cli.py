"""The command line: expiry parsing, the settings table, and clear failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callcenter.cli import main, parse_expiry
from callcenter.errors import ConfigError

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", NOW + timedelta(days=30)),
        ("12h", NOW + timedelta(hours=12)),
        ("90m", NOW + timedelta(minutes=90)),
        ("2027-01-01T00:00:00+01:00", datetime(2026, 12, 31, 23, 0, tzinfo=UTC)),
    ],
)
def test_expiry_accepts_durations_and_iso_times(text: str, expected: datetime) -> None:
    assert parse_expiry(text, NOW) == expected


@pytest.mark.parametrize(("text", "reason"), [("soon", "duration"), ("2027-01-01T00:00:00", "offset")])
def test_expiry_refuses_what_it_cannot_read(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        parse_expiry(text, NOW)


def test_settings_markdown_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "--markdown"]) == 0

    assert "| `CALLCENTER_DATABASE_URL` |" in capsys.readouterr().out


def test_a_bad_setting_exits_2_with_the_variable_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCENTER_HTTP_PORT", "http")

    assert main(["settings"]) == 2

    assert "CALLCENTER_HTTP_PORT='http'" in capsys.readouterr().err


def test_unknown_benchmark_lists_the_available_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "nosuch"]) == 2

    assert "no benchmark 'nosuch'" in capsys.readouterr().err
