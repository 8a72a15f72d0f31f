"""The price quote: request/reply over the bus, answered by catalog, asked by cart and
order (contracts/README.md). Prices are those at the moment of the answer."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

QUOTE_SUBJECT = "bazaar.rpc.catalog.quote"
MAX_QUOTED_PRODUCTS = 100

ProductId = Annotated[str, Field(min_length=1, max_length=200)]


class QuoteRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    product_ids: list[ProductId] = Field(min_length=1, max_length=MAX_QUOTED_PRODUCTS)


class Quote(BaseModel):
    model_config = ConfigDict(extra="ignore")

    product_id: ProductId
    name: str = Field(max_length=500)
    price_cents: int = Field(ge=0)


class QuoteReply(BaseModel):
    """The `ok` part of the reply: the products found, and the ids of those not found."""

    model_config = ConfigDict(extra="ignore")

    quotes: list[Quote]
    missing: list[str] = []
