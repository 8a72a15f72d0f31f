from datetime import UTC, datetime

import pytest

from bazaar.services.catalog import domain
from bazaar.services.catalog.domain import (
    Category,
    PageRequest,
    ProductChanges,
    Quote,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_product(**overrides: object) -> domain.Product:
    fields: dict[str, object] = {
        "name": "Kettle",
        "description": "Steel",
        "category": "kitchen",
        "price_cents": 2590,
        "image_url": "",
        "now": NOW,
    }
    fields.update(overrides)
    return domain.new_product(**fields)  # type: ignore[arg-type]


def test_a_new_category_is_named_after_its_slug() -> None:
    assert domain.category_named_after("home-garden") == Category("home-garden", "Home Garden")
    assert domain.category_named_after("toys") == Category("toys", "Toys")


def test_categories_for_products_keep_given_names_and_name_the_rest() -> None:
    wanted = domain.categories_for(
        [Category("toys", "Toys & Games")], ["toys", "books", "books", "home-garden"]
    )
    assert wanted == [
        Category("toys", "Toys & Games"),
        Category("books", "Books"),
        Category("home-garden", "Home Garden"),
    ]


def test_a_new_product_gets_a_fresh_uuid_unless_given_one() -> None:
    first, second = make_product(), make_product()
    assert first.id != second.id
    assert len(first.id) == 36
    assert make_product(product_id="p-1").id == "p-1"
    assert first.created_at == NOW


@pytest.mark.parametrize("price", [-1, 1.5, "100"])
def test_a_price_is_a_non_negative_integer_of_cents(price: object) -> None:
    with pytest.raises(ValueError, match="price_cents"):
        make_product(price_cents=price)


def test_changes_touch_only_the_fields_given() -> None:
    product = make_product()
    changed = ProductChanges(price_cents=2000, category="tea").applied_to(product)
    assert (changed.price_cents, changed.category) == (2000, "tea")
    assert (changed.id, changed.name, changed.description) == (
        product.id,
        product.name,
        product.description,
    )
    assert ProductChanges(price_cents=0).applied_to(product).price_cents == 0
    with pytest.raises(ValueError):
        ProductChanges(price_cents=-5).applied_to(product)


def test_a_page_request_knows_its_offset_and_bounds() -> None:
    assert PageRequest(1, 20).offset == 0
    assert PageRequest(3, 25).offset == 50
    for page, size in [(0, 20), (1, 0), (1, domain.MAX_PAGE_SIZE + 1)]:
        with pytest.raises(ValueError):
            PageRequest(page, size)


def test_a_quote_follows_the_request_order_once_per_id_and_names_the_missing() -> None:
    prices = {"a": Quote("a", "Anvil", 9900), "b": Quote("b", "Bell", 100)}
    result = domain.quote(["b", "x", "a", "b", "x"], prices)
    assert result.quotes == [prices["b"], prices["a"]]
    assert result.missing == ["x"]
    assert domain.quote(["z"], {}).missing == ["z"]
