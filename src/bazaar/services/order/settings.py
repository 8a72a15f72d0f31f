from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field

from bazaar.platform.config import ServiceSettings
from bazaar.services.order.domain import SagaPolicy


class OrderSettings(ServiceSettings):
    service_name: ClassVar[str] = "order"

    cart_url: str = Field(
        default="http://127.0.0.1:8004", pattern=r"^https?://\S+$", description="The cart service."
    )
    payment_url: str = Field(
        default="http://127.0.0.1:8006",
        pattern=r"^https?://\S+$",
        description="The payment service.",
    )
    inventory_addr: str = Field(
        default="127.0.0.1:50051",
        pattern=r"^\S+:\d+$",
        description="The inventory service's gRPC host:port.",
    )

    payment_deadline_seconds: float = Field(
        default=30.0, gt=0, le=86_400, description="How long a charge is retried before giving up."
    )
    payment_refund_grace_seconds: float = Field(
        default=5.0,
        ge=0,
        le=600,
        description="Wait after giving up on a charge before refunding it, so a charge still "
        "in flight at the processor has landed.",
    )
    payment_timeout_seconds: float = Field(default=3.0, gt=0, le=120)
    inventory_timeout_seconds: float = Field(default=2.0, gt=0, le=120)
    quote_timeout_seconds: float = Field(default=2.0, gt=0, le=60)

    saga_concurrency: int = Field(default=32, ge=1, le=1000, description="Sagas run at once.")
    saga_retry_initial_seconds: float = Field(default=0.2, gt=0, le=60)
    saga_retry_max_seconds: float = Field(default=5.0, gt=0, le=600)
    saga_poll_seconds: float = Field(
        default=0.5, gt=0, le=60, description="How often the runner looks for due steps."
    )
    saga_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long a runner owns an order it works on; longer than any one step.",
    )

    order_events_poll_seconds: float = Field(default=0.2, gt=0, le=10)
    order_events_max_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Lifetime of one order event stream."
    )

    def saga_policy(self) -> SagaPolicy:
        return SagaPolicy(
            payment_deadline=timedelta(seconds=self.payment_deadline_seconds),
            refund_grace=timedelta(seconds=self.payment_refund_grace_seconds),
            retry_initial=timedelta(seconds=self.saga_retry_initial_seconds),
            retry_max=timedelta(seconds=self.saga_retry_max_seconds),
        )
