"""Shared fixtures: a clean environment, a settings factory and a controllable clock."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import is_hypothesis_test
from hypothesis import settings as hypothesis_settings

from callcenter.config import Settings

# Property tests judge behaviour, not speed: no per-example deadline, so a busy machine (CI shares its
# two cores) cannot turn a slow example into a "flaky" failure.
hypothesis_settings.register_profile("callcenter", deadline=None)
hypothesis_settings.load_profile("callcenter")

#: pytest-timeout's limit for a property test without its own: a hundred examples take a few seconds
#: alone but may take over the default 10 s on a machine whose two cores are busy elsewhere.
PROPERTY_TEST_TIMEOUT_S = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        function = getattr(item, "obj", None)
        if is_hypothesis_test(function) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(PROPERTY_TEST_TIMEOUT_S))


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """The root logger as it was: a command-line test installs our handler on the stderr that pytest
    captured for that test and closes after it; left in place, it fails every later log line."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def clean_environ() -> Iterator[None]:
    """No test sees ``CALLCENTER_*`` variables of the shell that started pytest."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("CALLCENTER_")}
    for name in saved:
        del os.environ[name]
    yield
    for name in [k for k in os.environ if k.startswith("CALLCENTER_")]:
        del os.environ[name]
    os.environ.update(saved)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 23, 14, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Build settings from a dict of ``CALLCENTER_*`` overrides, with the data dir in ``tmp_path``."""

    def build(**overrides: str) -> Settings:
        env = {"CALLCENTER_DATA_DIR": str(tmp_path / "data")}
        env.update({f"CALLCENTER_{k.upper()}": v for k, v in overrides.items()})
        return Settings.from_env(env)

    return build
