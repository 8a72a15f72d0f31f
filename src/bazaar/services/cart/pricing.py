"""Where names and prices come from: a port, and its implementation over the bus.

The cart asks the catalog for quotes by request/reply on `bazaar.rpc.catalog.quote`
(contracts/README.md). The service layer sees only `Pricing`, so tests pass a fake.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from pydantic import ValidationError

from bazaar.contracts.quotes import MAX_QUOTED_PRODUCTS, QUOTE_SUBJECT, QuoteReply, QuoteRequest
from bazaar.platform.bus import Bus, RemoteError
from bazaar.platform.consumers import ask
from bazaar.services.cart.domain import Quote


class PricingUnavailable(Exception):
    """The catalog did not answer in time: try again shortly."""


class PricingFailed(Exception):
    """The catalog answered with an error or with something that is not a quote."""


class Pricing(Protocol):
    async def quote(self, product_ids: Collection[str]) -> Mapping[str, Quote]:
        """Quotes of the products that exist, by product id; unknown products are absent.
        Raises `PricingUnavailable` or `PricingFailed`."""
        ...


class BusPricing:
    """`Pricing` by request/reply to the catalog over the bus."""

    def __init__(self, bus: Bus, timeout: float = 2.0) -> None:
        self._bus = bus
        self._timeout = timeout

    async def quote(self, product_ids: Collection[str]) -> Mapping[str, Quote]:
        wanted = sorted(set(product_ids))
        quotes: dict[str, Quote] = {}
        for start in range(0, len(wanted), MAX_QUOTED_PRODUCTS):
            batch = wanted[start : start + MAX_QUOTED_PRODUCTS]
            reply = await self._ask(batch)
            quotes.update(
                (q.product_id, Quote(q.product_id, q.name, q.price_cents))
                for q in reply.quotes
                if q.product_id in batch
            )
        return quotes

    async def _ask(self, product_ids: list[str]) -> QuoteReply:
        request = QuoteRequest(product_ids=product_ids)
        try:
            answer = await ask(self._bus, QUOTE_SUBJECT, request, timeout=self._timeout)
        except RemoteError as exc:
            if exc.code in ("timeout", "unavailable"):
                raise PricingUnavailable(f"the catalog did not answer: {exc.detail}") from exc
            raise PricingFailed(f"the catalog refused the price quote: {exc}") from exc
        except ValueError as exc:  # a reply that is not JSON
            raise PricingFailed(f"unreadable price quote: {exc}") from exc
        try:
            return QuoteReply.model_validate(answer)
        except ValidationError as exc:
            raise PricingFailed(f"malformed price quote: {exc}") from exc
