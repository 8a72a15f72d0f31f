"""The inventory service's settings (`BAZAAR_*` environment variables)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from bazaar.platform.config import ServiceSettings


class InventorySettings(ServiceSettings):
    service_name: ClassVar[str] = "inventory"

    # `port` (BAZAAR_PORT) is the gRPC port; this one serves /healthz, /readyz, /metrics.
    ops_port: int = Field(default=0, ge=0, le=65535, description="HTTP port of the ops side-app.")
    shutdown_grace_seconds: float = Field(
        default=3.0, ge=0, le=60, description="How long in-flight gRPC calls may finish on stop."
    )
