"""Settings shared by every service: 12-factor, from `BAZAAR_*` environment variables.

Each service subclasses `ServiceSettings` with the fields it needs. The defaults are
the embedded ones (SQLite files under `BAZAAR_HOME`, NATS on loopback), so a service
runs on a laptop with no configuration at all.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from bazaar.platform.brokers import check_broker_url

# A bad value of these is not echoed in the error: it would end up in a log.
_SECRET = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY\b|_URL\b")  # URLs may hold a password


class ConfigurationError(SystemExit):
    """Raised at start-up when a setting is invalid; names the variable."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BAZAAR_", extra="ignore", frozen=True)

    # Which service these settings belong to; subclasses set it.
    service_name: ClassVar[str] = "service"

    home: Path = Field(default=Path(".bazaar"), description="Data folder of the embedded mode.")
    host: str = Field(default="127.0.0.1", description="Interface this service listens on.")
    port: int = Field(default=0, ge=0, le=65535, description="Port; 0 picks a free one.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty: a SQLite file.")
    broker_url: str = Field(
        default="nats://127.0.0.1:4222",
        description="The broker: nats:// (or tls://) URLs, comma-separated for a cluster; "
        "amqp:// (or amqps://) for RabbitMQ; memory://NAME in tests.",
    )
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: str = Field(default="json", pattern="^(json|console)$")
    event_loop: str = Field(
        default="uvloop",
        pattern="^(uvloop|asyncio)$",
        description="uvloop (faster; where installed) or the standard library's loop.",
    )
    environment: str = Field(default="embedded", pattern="^(embedded|production|test)$")
    migrate_on_start: bool = Field(
        default=False, description="Upgrade the database before serving (the embedded mode)."
    )
    seed_file: Path | None = Field(
        default=None, description="Demo data loaded before serving, where absent (idempotent)."
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request body accepted (413 past it)."
    )
    jwks_url: str = Field(
        default="http://127.0.0.1:8001/.well-known/jwks.json",
        pattern=r"^https?://\S+$",
        description="Where the auth service publishes its signing keys.",
    )

    @field_validator("broker_url")
    @classmethod
    def _a_broker_offered(cls, url: str) -> str:
        return check_broker_url(url)  # its message lists the schemes offered, and why

    @field_validator("database_url")
    @classmethod
    def _a_database_sqlalchemy_knows(cls, url: str) -> str:
        # Checked here, so that a typo stops start-up with the variable's name instead of
        # a traceback from deep inside the first connection.
        if url:
            try:
                make_url(url).get_dialect()
            except (ArgumentError, NoSuchModuleError, ImportError) as exc:
                raise ValueError(f"not a database URL SQLAlchemy can use: {exc}") from None
        return url

    @model_validator(mode="after")
    def _default_database(self) -> ServiceSettings:
        if not self.database_url:
            path = (self.home / f"{self.service_name}.db").resolve()
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{path}")
        return self

    @classmethod
    def load(cls, **overrides: object) -> Self:
        """Read the environment; a bad value stops start-up with the variable's name."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            lines = [f"invalid configuration for the {cls.service_name} service:"]
            for error in exc.errors():
                name = "BAZAAR_" + "_".join(str(p) for p in error["loc"]).upper()
                given = "***" if _SECRET.search(name) else repr(error.get("input"))
                lines.append(f"  {name}: {error['msg']} (got {given})")
            raise ConfigurationError("\n".join(lines)) from None
