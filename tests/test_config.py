"""Settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from pactvault.config import Settings
from pactvault.errors import InvalidInputError


def test_defaults_are_the_embedded_instance() -> None:
    settings = Settings.from_env({})
    assert settings.home == Path("pactvault-data")
    assert settings.resolved_database_url.startswith("sqlite:///")
    assert settings.resolved_database_url.endswith("pactvault-data/pactvault.db")
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.tsa_url is None and settings.passphrase is None


def test_public_url_follows_the_listening_port_unless_set() -> None:
    assert Settings.from_env({"PACTVAULT_PORT": "9001"}).public_url == "http://127.0.0.1:9001"
    assert Settings.from_env({}, port=9002).public_url == "http://127.0.0.1:9002"
    explicit = Settings.from_env(
        {"PACTVAULT_PORT": "9001", "PACTVAULT_PUBLIC_URL": "https://sign.example.com/"}
    )
    assert explicit.public_url == "https://sign.example.com"


def test_environment_overrides() -> None:
    settings = Settings.from_env(
        {
            "PACTVAULT_HOME": "/srv/pv",
            "PACTVAULT_DATABASE_URL": "postgresql+psycopg://u@h/db",
            "PACTVAULT_PASSPHRASE": "s3cret",
            "PACTVAULT_MAX_UPLOAD_BYTES": "1024",
            "PACTVAULT_ACTIVE_CONTENT": "flag",
        }
    )
    assert settings.home == Path("/srv/pv")
    assert settings.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert settings.max_upload_bytes == 1024
    assert settings.active_content_policy == "flag"
    assert "s3cret" not in repr(settings), "the passphrase never shows up in logs or tracebacks"


@pytest.mark.parametrize(
    "env,message",
    [
        ({"PACTVAULT_PORT": "eighty"}, "must be an integer"),
        ({"PACTVAULT_MAX_UPLOAD_BYTES": "-5"}, "must be positive"),
        ({"PACTVAULT_ACTIVE_CONTENT": "allow"}, "'reject' or 'flag'"),
    ],
)
def test_bad_values_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Settings.from_env(env)
