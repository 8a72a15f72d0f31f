"""Test doubles of the cart's ports."""

from collections.abc import Collection, Mapping

from bazaar.services.cart.domain import Quote
from bazaar.services.cart.pricing import PricingUnavailable

PRODUCTS = {
    "teapot": ("Teapot", 2500),
    "mug": ("Mug", 450),
    **{f"p{n:02}": (f"Product {n}", 100 + n) for n in range(60)},
}


class FakeCatalog:
    """`Pricing` without a catalog: a fixed price list that can be switched off."""

    def __init__(self, products: Mapping[str, tuple[str, int]]) -> None:
        self.products = dict(products)
        self.down = False

    async def quote(self, product_ids: Collection[str]) -> Mapping[str, Quote]:
        if self.down:
            raise PricingUnavailable("the catalog did not answer: timeout")
        return {p: Quote(p, *self.products[p]) for p in product_ids if p in self.products}
