"""Test doubles shared by the inventory tests."""

import asyncio
from typing import Any


class Published:
    """The stock.changed envelopes that reached the (in-memory) bus."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    def add(self, envelope: dict[str, Any]) -> None:
        self.envelopes.append(envelope)
        self._arrived.set()

    async def wait_for(self, count: int) -> None:
        """Callers bound the wait with `asyncio.timeout`."""
        while len(self.envelopes) < count:
            await self._arrived.wait()
            self._arrived.clear()
