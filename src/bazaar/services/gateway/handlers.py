"""What the gateway's routes and pages work with: one object that bootstrap builds and
hands to the app, which routes ask for as `Gateway`. The gateway owns no data, so its
dependencies are the services behind it and what checks its callers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import jinja2

from bazaar.platform.dependencies import uses
from bazaar.platform.tokens import TokenVerifier
from bazaar.services.gateway.opsapi import OpsApi
from bazaar.services.gateway.throttling import CheckoutThrottle
from bazaar.services.gateway.upstreams import Inventory, Upstreams

READINESS_TIMEOUT = 1.0


@dataclass(frozen=True)
class GatewayService:
    upstreams: Upstreams  # auth, catalog, cart, order: the public API and the storefront's calls
    inventory: Inventory  # the admin stock routes' service
    tokens: TokenVerifier  # bearer tokens and the storefront's session cookie
    checkouts: CheckoutThrottle  # each user's checkout budget, the API's and the storefront's
    templates: jinja2.Environment  # the storefront's pages
    mail_folder: Path  # the Maildir /mail reads
    # The admins' ops page's source (`bazaar up` runs one); none by default.
    ops: OpsApi = field(default_factory=lambda: OpsApi(""))

    async def upstreams_ready(self) -> None:
        """Every HTTP upstream's /healthz and inventory's gRPC health, asked all at once."""
        results = await asyncio.gather(
            self.upstreams.check_ready(READINESS_TIMEOUT),
            self.inventory.check_serving(READINESS_TIMEOUT),
            return_exceptions=True,
        )
        failures = [str(result) for result in results if isinstance(result, BaseException)]
        if failures:
            raise RuntimeError(", ".join(failures))

    async def aclose(self) -> None:
        await asyncio.gather(self.upstreams.aclose(), self.inventory.aclose(), self.ops.aclose())


Gateway = Annotated[GatewayService, uses(GatewayService)]
