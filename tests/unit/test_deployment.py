"""The compose file is valid, only sets variables the service knows, and runs Asterisk as documented."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

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


# -- the Asterisk service: a public image, our configuration mounted, names in step ----------------


def _compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")  # PyYAML comes with the dev tools (openapi-spec-validator)
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def _conf_value(path: Path, key: str) -> str:
    match = re.search(rf"^{key}\s*=\s*(\S+)", path.read_text(), flags=re.MULTILINE)
    assert match, f"{key} in {path.name}"
    return match[1]


def test_asterisk_runs_from_a_pinned_public_image_and_only_our_service_is_built() -> None:
    services = _compose()["services"]
    asterisk = services["asterisk"]

    assert "build" not in asterisk
    image, _, tag = asterisk["image"].partition(":")
    assert image == "andrius/asterisk" and tag and tag != "latest"
    assert [name for name, s in services.items() if "build" in s] == ["callcenter"]


def test_every_asterisk_conf_and_the_dialplan_are_mounted_where_asterisk_reads_them() -> None:
    volumes = _compose()["services"]["asterisk"]["volumes"]
    mounted = {v.split(":")[0]: v.split(":")[1] for v in volumes if v.startswith("./")}

    for conf in sorted((ROOT / "asterisk").glob("*.conf")):
        assert mounted.get(f"./asterisk/{conf.name}") == f"/etc/asterisk/{conf.name}", conf.name
    # extensions.conf says "#include dialplan/extensions_callcenter.conf", relative to /etc/asterisk.
    assert mounted["./dialplan"] == "/etc/asterisk/dialplan"
    assert all(v.endswith(":ro") for v in volumes if v.startswith("./"))


def test_the_fastagi_server_is_reachable_from_asterisk_and_not_published() -> None:
    callcenter = _compose()["services"]["callcenter"]
    env = callcenter["environment"]
    agi_url = _conf_value(ROOT / "asterisk" / "extensions.conf", "CC_AGI_URL")

    assert env["CALLCENTER_AGI_ENABLED"] == "true"
    assert env["CALLCENTER_AGI_HOST"] == "0.0.0.0"
    assert agi_url == f"agi://callcenter:{env['CALLCENTER_AGI_PORT']}"
    assert str(env["CALLCENTER_AGI_PORT"]) in callcenter["expose"]
    assert not any(str(p).split(":")[-1] == env["CALLCENTER_AGI_PORT"] for p in callcenter["ports"])


def test_the_ari_settings_of_the_service_match_asterisk_conf() -> None:
    env = _compose()["services"]["callcenter"]["environment"]
    port = _conf_value(ROOT / "asterisk" / "http.conf", "bindport")
    password = _conf_value(ROOT / "asterisk" / "ari.conf", "password")

    assert env["CALLCENTER_ARI_URL"] == f"${{CALLCENTER_ARI_URL:-http://asterisk:{port}}}"
    assert env["CALLCENTER_ARI_PASSWORD"] == f"${{CALLCENTER_ARI_PASSWORD:-{password}}}"


def test_the_published_media_ports_are_the_range_of_rtp_conf() -> None:
    ports = _compose()["services"]["asterisk"]["ports"]
    start = _conf_value(ROOT / "asterisk" / "rtp.conf", "rtpstart")
    end = _conf_value(ROOT / "asterisk" / "rtp.conf", "rtpend")

    assert f"{start}-{end}:{start}-{end}/udp" in ports
    assert "5060:5060/udp" in ports


def test_asterisk_starts_after_its_prompts_and_music_are_in_place() -> None:
    services = _compose()["services"]
    assert services["asterisk"]["depends_on"]["asterisk-sounds"] == {
        "condition": "service_completed_successfully"
    }
    sounds = {v.split(":")[1]: v.split(":")[0] for v in services["asterisk"]["volumes"]}
    fetched = {v.split(":")[0] for v in services["asterisk-sounds"]["volumes"]}
    assert {sounds["/var/lib/asterisk/sounds"], sounds["/var/lib/asterisk/moh"]} == fetched
