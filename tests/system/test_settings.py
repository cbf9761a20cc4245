"""Settings: bad values stop start-up with one line naming the variable; the embedded key is kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.settings import SettingsError, load_settings

VARIABLES = ["MONGODB_URL", "MONGODB_DB", "REDIS_URL", "SECRET_KEY", "JWT_ALGORITHM", "ACCESS_TOKEN_EXPIRE_MINUTES",
             "CORS_ORIGINS", "RATE_LIMIT_PER_MINUTE", "RATE_LIMIT_PER_HOUR", "HOST", "PORT", "LOG_LEVEL",
             "EMAIL_SERVICE_URL", "ORDER_CONFIRM_TIMEOUT_MINUTES", "DATA_DIR"]  # fmt: skip
GOOD_KEY = "k" * 32


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.embedded
    assert (settings.port, settings.host, settings.jwt_algorithm) == (8000, "127.0.0.1", "HS256")
    assert (settings.access_token_expire_minutes, settings.order_confirm_timeout_minutes) == (30, 15)
    assert (settings.rate_limit_per_minute, settings.rate_limit_per_hour) == (100, 1000)
    assert settings.cors_origins == []


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URL", "mongodb://db:27017")
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, http://b.example:8080/")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load_settings()
    assert not settings.embedded
    assert settings.cors_origins == ["https://a.example", "http://b.example:8080"]
    assert (settings.port, settings.log_level, settings.secret) == (9000, "DEBUG", GOOD_KEY)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("CORS_ORIGINS", "*"),
        ("CORS_ORIGINS", "https://ok.example,*"),
        ("CORS_ORIGINS", "ftp://files.example"),
        ("SECRET_KEY", "k" * 31),
        ("JWT_ALGORITHM", "none"),
        ("JWT_ALGORITHM", "RS256"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "0"),
        ("RATE_LIMIT_PER_MINUTE", "-1"),
        ("LOG_LEVEL", "loud"),
        ("EMAIL_SERVICE_URL", "http://mail.example"),
        ("ORDER_CONFIRM_TIMEOUT_MINUTES", "0"),
        ("MONGODB_DB", "bad name/with slash"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"{name}: "), message
    assert "\n" not in message


def test_secret_key_is_required_with_mongodb_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URL", "mongodb://db:27017")
    with pytest.raises(SettingsError, match=r"^SECRET_KEY: required"):
        load_settings()
    monkeypatch.setenv("SECRET_KEY", "x" * 31 + "é")  # 33 bytes, 32 characters
    assert load_settings().secret.endswith("é")


def test_embedded_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = load_settings(data_dir=tmp_path / "var").ensure_secret()
    key_file = tmp_path / "var" / "secret_key"
    assert key_file.stat().st_mode & 0o077 == 0
    assert len(first.secret.encode()) >= 32
    assert load_settings(data_dir=tmp_path / "var").ensure_secret().secret == first.secret
