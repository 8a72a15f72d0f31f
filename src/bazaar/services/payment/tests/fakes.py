"""Test doubles for the payment service."""

import asyncio
from dataclasses import dataclass, field

from bazaar.services.payment.handlers import Processor


@dataclass
class HeldProcessor(Processor):
    """In `slow` mode, holds each charge at the processor until the test releases it."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def delay(self) -> None:
        self.arrived.set()
        await self.released.wait()
