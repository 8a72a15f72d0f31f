from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from bazaar.platform.config import ServiceSettings


class AuthSettings(ServiceSettings):
    service_name: ClassVar[str] = "auth"

    http_threads: int = Field(
        default=4,
        ge=1,
        le=64,
        description="waitress worker threads; each password hash takes 64 MiB while it runs.",
    )
