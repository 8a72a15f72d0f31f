from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from bazaar.platform.config import ServiceSettings
from bazaar.platform.ratelimit import LOOPBACK_PROXIES, MEMORY, TrustedProxies, parse_rate

# Public (it is in the source), so only good enough for the embedded default on a laptop.
EMBEDDED_KEY_SECRET = "bazaar-embedded-default-not-a-secret"
KEY_SECRET_MIN_LENGTH = 16


class AuthSettings(ServiceSettings):
    service_name: ClassVar[str] = "auth"

    http_threads: int = Field(
        default=4,
        ge=1,
        le=64,
        description="waitress worker threads; each password hash takes 64 MiB while it runs.",
    )
    auth_key_secret: SecretStr = Field(
        default=SecretStr(EMBEDDED_KEY_SECRET),
        description="Encrypts the private signing keys at rest. Required in production.",
    )
    auth_key_activation_seconds: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="How long a rotated-in key is published before it signs: longer than "
        "any verifier takes to refetch the JWKS, so no verifier meets an unknown kid.",
    )
    rate_limit_url: str = Field(
        default=MEMORY,
        pattern=r"^(memory://|rediss?://\S+)$",
        description="memory:// (per process) or redis://host:port/db (shared).",
    )
    trusted_proxies: str = Field(
        default=LOOPBACK_PROXIES,
        description="Networks whose X-Forwarded-For names the client (comma-separated).",
    )
    # Per address: generous (one office, one NAT, a test suite signing up hundreds of
    # shoppers), still a ceiling on a flood. Per account: what stops password guessing.
    signup_rate_per_address: str = Field(default="1000/hour")
    signup_rate_per_account: str = Field(default="10/hour")
    login_rate_per_address: str = Field(default="1000/hour")
    login_rate_per_account: str = Field(default="10/minute")

    @field_validator(
        "signup_rate_per_address",
        "signup_rate_per_account",
        "login_rate_per_address",
        "login_rate_per_account",
    )
    @classmethod
    def _a_rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        TrustedProxies.parse(value)
        return value

    @field_validator("auth_key_secret")
    @classmethod
    def _a_real_secret_in_production(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if info.data.get("environment") != "production":
            return value
        secret = value.get_secret_value()
        if not secret or secret == EMBEDDED_KEY_SECRET:
            raise ValueError("production needs a secret of its own to encrypt the signing keys")
        if len(secret) < KEY_SECRET_MIN_LENGTH:
            raise ValueError(f"use at least {KEY_SECRET_MIN_LENGTH} random characters")
        return value

    @property
    def uses_embedded_key_secret(self) -> bool:
        return self.auth_key_secret.get_secret_value() == EMBEDDED_KEY_SECRET
