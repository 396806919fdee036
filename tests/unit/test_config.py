"""Settings are built from a mapping, fail loudly on bad values, and never show secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.config import SPECS, Settings, settings_markdown
from callcenter.errors import ConfigError


def test_defaults_serve_the_embedded_mode() -> None:
    settings = Settings.from_env({"CALLCENTER_DATA_DIR": "/srv/cc"})

    assert settings.data_dir == Path("/srv/cc")
    assert settings.database.url == "sqlite+aiosqlite:////srv/cc/callcenter.db"
    assert settings.database.is_sqlite
    assert settings.redis.embedded
    assert settings.ari.url is None
    assert (settings.http.host, settings.http.port) == ("127.0.0.1", 8080)


def test_production_values_are_read_and_normalised() -> None:
    settings = Settings.from_env(
        {
            "CALLCENTER_DATABASE_URL": "postgresql://cc:pw@db/cc",
            "CALLCENTER_REDIS_URL": "redis://redis:6379/2",
            "CALLCENTER_ARI_URL": "http://asterisk:8088/",
            "CALLCENTER_HTTP_PORT": "9000",
            "CALLCENTER_METRICS_REQUIRE_TOKEN": "yes",
            "CALLCENTER_LOG_FORMAT": "JSON",
            "CALLCENTER_DEFAULT_REGION": "gb",
        }
    )

    assert settings.database.url == "postgresql+asyncpg://cc:pw@db/cc"
    assert not settings.database.is_sqlite
    assert settings.redis.url == "redis://redis:6379/2"
    assert settings.ari.url == "http://asterisk:8088"
    assert settings.http.port == 9000
    assert settings.http.metrics_require_token is True
    assert settings.log.format == "json"
    assert settings.default_region == "GB"


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("CALLCENTER_HTTP_PORT", "eighty", "whole number"),
        ("CALLCENTER_HTTP_PORT", "70000", "port number"),
        ("CALLCENTER_BUS_MAX_DELIVERIES", "0", "positive"),
        ("CALLCENTER_DATABASE_URL", "mysql://x/y", "postgresql:// or sqlite://"),
        ("CALLCENTER_REDIS_URL", "http://redis", "redis://"),
        ("CALLCENTER_ARI_URL", "asterisk:8088", "http://"),
        ("CALLCENTER_METRICS_REQUIRE_TOKEN", "maybe", "true or false"),
        ("CALLCENTER_LOG_FORMAT", "xml", "text, json"),
        ("CALLCENTER_DEFAULT_REGION", "USA", "two-letter"),
        ("CALLCENTER_REDIS_KEY_PREFIX", "cc", "end with ':'"),
        ("CALLCENTER_SHUTDOWN_GRACE_S", "-1", "positive"),
    ],
)
def test_invalid_value_fails_naming_the_variable(name: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({name: value})

    assert str(err.value).startswith(name)
    assert reason in str(err.value)


def test_unknown_variable_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="CALLCENTER_HTTP_PROT: unknown setting.*CALLCENTER_HTTP_PORT"):
        Settings.from_env({"CALLCENTER_HTTP_PROT": "8080"})


def test_other_variables_are_ignored() -> None:
    assert Settings.from_env({"HOME": "/root", "PATH": "/bin"}).http.port == 8080


def test_secrets_never_appear_in_repr_or_errors() -> None:
    settings = Settings.from_env(
        {
            "CALLCENTER_DATABASE_URL": "postgresql://cc:db-secret@db/cc",
            "CALLCENTER_REDIS_URL": "redis://:redis-secret@redis:6379/0",
            "CALLCENTER_ARI_PASSWORD": "ari-secret",
        }
    )

    shown = repr(settings)
    for secret in ("db-secret", "redis-secret", "ari-secret"):
        assert secret not in shown
    assert settings.database.url_redacted == "postgresql+asyncpg://cc:***@db/cc"
    assert "redis-secret" not in settings.redis.url_redacted

    with pytest.raises(ConfigError) as err:
        Settings.from_env({"CALLCENTER_DATABASE_URL": "mysql://cc:db-secret@db/cc"})
    assert "db-secret" not in str(err.value)


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()

    assert settings_markdown() in readme, "regenerate with: callcenter settings --markdown"
    assert all(spec.name in readme for spec in SPECS)
