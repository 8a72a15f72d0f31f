from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from bazaar.platform.config import ServiceSettings


class CartSettings(ServiceSettings):
    service_name: ClassVar[str] = "cart"

    cart_quote_timeout_seconds: float = Field(
        default=2.0, gt=0, le=30, description="How long to wait for the catalog's price quote."
    )
