from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from bazaar.platform.config import ServiceSettings
from bazaar.platform.ratelimit import MEMORY, parse_rate


class GatewaySettings(ServiceSettings):
    service_name: ClassVar[str] = "gateway"

    # The public port: the storefront and API are on http://localhost:8000 by default.
    port: int = Field(default=8000, ge=0, le=65535, description="Public port; 0 picks one.")
    auth_url: str = Field(default="http://127.0.0.1:8001", pattern=r"^https?://\S+$")
    catalog_url: str = Field(default="http://127.0.0.1:8002", pattern=r"^https?://\S+$")
    cart_url: str = Field(default="http://127.0.0.1:8003", pattern=r"^https?://\S+$")
    order_url: str = Field(default="http://127.0.0.1:8004", pattern=r"^https?://\S+$")
    inventory_addr: str = Field(default="127.0.0.1:50051", pattern=r"^\S+:\d+$")
    maildir: Path | None = Field(
        default=None, description="The Maildir the storefront reads; empty: $HOME/mail."
    )
    upstream_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds an upstream may take to answer."
    )
    stream_timeout: float = Field(
        default=300.0, gt=0, le=3600, description="Seconds a stream (SSE) may stay silent."
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request body accepted (413 past it)."
    )
    checkout_rate: str = Field(
        default="10 per 10 seconds",
        description="Checkouts one user may start (429 past it); the storefront's count too.",
    )
    ops_api_url: str = Field(
        default="",
        pattern=r"^(https?://\S+)?$",
        description="The ops API of `bazaar up` (set by the runner); empty: no ops page data.",
    )
    rate_limit_url: str = Field(
        default=MEMORY,
        pattern=r"^(memory://|rediss?://\S+)$",
        description="memory:// (per process) or redis://host:port/db (shared).",
    )

    @field_validator("checkout_rate")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @model_validator(mode="after")
    def _default_maildir(self) -> GatewaySettings:
        if self.maildir is None:
            object.__setattr__(self, "maildir", self.home / "mail")
        return self

    @property
    def mail_folder(self) -> Path:
        assert self.maildir is not None  # set by the validator
        return self.maildir

    def upstream_urls(self) -> dict[str, str]:
        return {
            "auth": self.auth_url,
            "catalog": self.catalog_url,
            "cart": self.cart_url,
            "order": self.order_url,
        }
