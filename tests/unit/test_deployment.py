"""The compose file is valid and only sets variables the service knows."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from callcenter.config import SPECS

ROOT = Path(__file__).parents[2]


def test_compose_sets_only_known_settings() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"^\s+(CALLCENTER_[A-Z0-9_]+):", text, flags=re.MULTILINE))

    assert used, "compose configures the service through CALLCENTER_* variables"
    assert used <= {spec.name for spec in SPECS}


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose not installed (.ci/run installs it)"
)
def test_compose_file_validates() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
