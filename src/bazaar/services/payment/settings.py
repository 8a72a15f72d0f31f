from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from bazaar.platform.config import ServiceSettings
from bazaar.services.payment.domain import ProcessorMode


class PaymentSettings(ServiceSettings):
    service_name: ClassVar[str] = "payment"

    payment_mode: ProcessorMode = Field(
        default=ProcessorMode.OK, description="Initial failure mode."
    )
    payment_slow_seconds: float = Field(
        default=2.0, ge=0, le=60, description="Delay in `slow` mode."
    )
