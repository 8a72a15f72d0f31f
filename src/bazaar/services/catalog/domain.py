"""The catalog rules, free of I/O: products, categories, pages, the stock read model and
price quotes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
MAX_PAGE_SIZE = 100

# Explicit classes rather than `\s` or Unicode categories, whose meaning differs between
# regex engines: the gateway's OpenAPI document states these rules character for character.
# A name: no controls, line separators or invisible formatting (bidi, zero-width, BOM).
NOT_IN_A_NAME = re.compile(
    r"[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    r"\u2060-\u206f\ufeff\ufff9-\ufffb]"
)
# A description may break lines (tab, LF, CR); no other control character.
NOT_IN_A_DESCRIPTION = re.compile(r"[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]")
# An image URL: empty, absolute http(s), or a path on the storefront; no blank or control
# character anywhere, so never `javascript:` and never a second line.
URL_CHAR = r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
IMAGE_URL_PATTERN = rf"^(https?://{URL_CHAR}+|/{URL_CHAR}*)?$"


def product_name(text: str) -> str:
    """The name without surrounding blanks, or ValueError."""
    if NOT_IN_A_NAME.search(text):
        raise ValueError("a name cannot contain control or invisible formatting characters")
    name = text.strip()
    if not name:
        raise ValueError("a name needs at least one visible character")
    return name


def description(text: str) -> str:
    """The description without surrounding blanks, or ValueError."""
    if NOT_IN_A_DESCRIPTION.search(text):
        raise ValueError("a description cannot contain control characters but line breaks")
    return text.strip()


@dataclass(frozen=True)
class Category:
    slug: str
    name: str


def category_named_after(slug: str) -> Category:
    """A category first met as a product's slug gets a readable name: `home-garden` is
    `Home Garden`."""
    return Category(slug, slug.replace("-", " ").title())


def categories_for(explicit: Iterable[Category], slugs: Iterable[str]) -> list[Category]:
    """The categories a set of products needs: the named ones, then one per other slug."""
    wanted = {c.slug: c for c in explicit}
    for slug in slugs:
        wanted.setdefault(slug, category_named_after(slug))
    return list(wanted.values())


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    description: str
    category: str
    price_cents: int
    image_url: str
    created_at: datetime

    def __post_init__(self) -> None:
        # Money is integer cents, never negative: a last guard below every entrypoint.
        if not isinstance(self.price_cents, int) or self.price_cents < 0:
            raise ValueError(f"price_cents must be a non-negative integer: {self.price_cents!r}")


def new_product(
    *,
    name: str,
    description: str,
    category: str,
    price_cents: int,
    image_url: str,
    now: datetime,
    product_id: str | None = None,
) -> Product:
    return Product(
        id=product_id or str(uuid.uuid4()),
        name=name,
        description=description,
        category=category,
        price_cents=price_cents,
        image_url=image_url,
        created_at=now,
    )


@dataclass(frozen=True)
class ProductChanges:
    """A partial update: the fields left None stay as they are."""

    name: str | None = None
    description: str | None = None
    category: str | None = None
    price_cents: int | None = None
    image_url: str | None = None

    def applied_to(self, product: Product) -> Product:
        given = {k: v for k, v in self.__dict__.items() if v is not None}
        return replace(product, **given)


@dataclass(frozen=True)
class Listing:
    """A product as shoppers see it: with the units available now."""

    product: Product
    stock: int


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    page_size: int = 20

    def __post_init__(self) -> None:
        if self.page < 1:
            raise ValueError("page starts at 1")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


@dataclass(frozen=True)
class ProductQuery:
    text: str = ""
    category: str = ""
    page: PageRequest = field(default_factory=PageRequest)


@dataclass(frozen=True)
class Page:
    items: list[Listing]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class StockLevel:
    product_id: str
    available: int
    version: int


@dataclass(frozen=True)
class Quote:
    product_id: str
    name: str
    price_cents: int


@dataclass(frozen=True)
class Quotes:
    quotes: list[Quote]
    missing: list[str]


def quote(requested: Sequence[str], prices: Mapping[str, Quote]) -> Quotes:
    """Today's price of each requested product, in the order asked, each id once."""
    unique = list(dict.fromkeys(requested))
    return Quotes(
        quotes=[prices[pid] for pid in unique if pid in prices],
        missing=[pid for pid in unique if pid not in prices],
    )
