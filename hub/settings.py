"""Settings: one object, read from the environment, validated at start-up."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_SECRET_BYTES = 32


class SettingsError(Exception):
    """A setting is missing or wrong; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    mongodb_url: str | None = None
    mongodb_db: str = Field(default="market_hub", pattern=r"^[A-Za-z0-9_-]{1,63}$")
    redis_url: str | None = None
    # The Socket.IO pub/sub channel in Redis: instances (and outside publishers) on one channel share events.
    redis_channel: str = Field(default="market-hub", pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    # An emit to one room goes on that room's own sharded channel (Redis >= 7), which only the instances
    # with members of the room subscribe to. False: every event on the one shared channel.
    redis_room_channels: bool = True
    secret_key: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_expire_minutes: int = Field(default=30, ge=1, le=60 * 24 * 30)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(default=100, ge=1)
    rate_limit_per_hour: int = Field(default=1000, ge=1)
    # Sign-in attempts per email address, whoever makes them (slows password guessing).
    login_rate_limit_per_minute: int = Field(default=10, ge=1)
    login_rate_limit_per_hour: int = Field(default=100, ge=1)
    rate_limit_strategy: Literal["moving-window", "fixed-window"] = "moving-window"
    # Namespace of the rate limit keys in Redis: instances that share it share their limits.
    rate_limit_key_prefix: str = Field(default="market-hub", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # Rate limit checks in flight to Redis at once (connections per Redis node); more wait their turn.
    rate_limit_redis_connections: int = Field(default=32, ge=1, le=1000)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    email_service_url: str | None = Field(default=None, pattern=r"^smtp://[^:/\s]+(:\d{1,5})?/?$")
    email_sender: str = "Market Hub <no-reply@market-hub.local>"
    order_confirm_timeout_minutes: float = Field(default=15, gt=0)
    order_sweep_interval_seconds: float = Field(default=30, gt=0)
    # How many reverse proxies in front of the hub may be trusted to append to
    # X-Forwarded-For. 0 (default): the socket peer is the client.
    trusted_proxy_count: int = Field(default=0, ge=0, le=10)
    data_dir: Path = Path("./var")
    db_timeout_seconds: float = Field(default=4.0, gt=0, le=60)
    stats_interval_seconds: float = Field(default=0.25, gt=0, le=1)
    event_history_size: int = Field(default=1000, ge=1000)
    event_history_hours: float = Field(default=24, ge=24)
    shutdown_timeout_seconds: float = Field(default=10, ge=0)
    socket_max_queue_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)
    # Events one Socket.IO connection may send: a token bucket of this rate and burst; past it, disconnected.
    socket_events_per_second: float = Field(default=20, gt=0)
    socket_events_burst: int = Field(default=60, ge=1)
    # Namespace handshakes (authentication, room joins, replay) run at most this many at once per instance;
    # up to SOCKET_HANDSHAKE_QUEUE more wait their turn, any beyond are refused with "busy" (clients retry).
    socket_handshake_concurrency: int = Field(default=16, ge=1)
    socket_handshake_queue: int = Field(default=10_000, ge=0)
    # A waiting handshake is refused with "busy" after this long: below the clients' connect timeout
    # (10 s in static/js/live.js), past which they have given up and retry anyway.
    socket_handshake_max_wait_seconds: float = Field(default=5.0, gt=0, le=60)
    # Multiplies every webhook retry delay and the 24 h retry horizon (tests run a day in seconds).
    webhook_retry_scale: float = Field(default=1.0, gt=0, le=1)
    # Development and tests only: webhooks to http:// and to loopback/private addresses (logged at start-up).
    webhook_allow_insecure: bool = False

    @field_validator("log_level", "jwt_algorithm", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("rate_limit_strategy", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip().rstrip("/") for item in value.split(",") if item.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_urls(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*":
                raise ValueError("'*' is not allowed; list the origins")
            if not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r} is not an http(s) origin")
        return value

    @model_validator(mode="after")
    def _secret_outside_embedded(self) -> Settings:
        if self.secret_key is not None and len(self.secret_key.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"SECRET_KEY: must be at least {MIN_SECRET_BYTES} bytes")
        if self.mongodb_url and self.secret_key is None:
            raise ValueError("SECRET_KEY: required when MONGODB_URL is set")
        return self

    @property
    def embedded(self) -> bool:
        return not self.mongodb_url

    @property
    def token_lifetime(self) -> timedelta:
        return timedelta(minutes=self.access_token_expire_minutes)

    @property
    def secret(self) -> str:
        if self.secret_key is None:
            raise SettingsError("SECRET_KEY: not set (call ensure_secret first)")
        return self.secret_key.get_secret_value()

    def ensure_secret(self) -> Settings:
        """The embedded mode keeps a generated key under the data dir, so tokens survive a restart."""
        if self.secret_key is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key_file = self.data_dir / "secret_key"
        if not key_file.exists():
            key_file.touch(mode=0o600)
            key_file.write_text(secrets.token_urlsafe(48))
        return self.model_copy(update={"secret_key": SecretStr(key_file.read_text().strip())})


def load_settings(**overrides: object) -> Settings:
    """Read the environment; raise SettingsError with one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        name = "_".join(str(part) for part in error["loc"]).upper()
        # Model-level checks already start their message with the variable's name.
        raise SettingsError(f"{name}: {message}" if name else message) from None
