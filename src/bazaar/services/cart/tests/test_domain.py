import pytest

from bazaar.services.cart import domain
from bazaar.services.cart.domain import MAX_LINES, MAX_QTY, Cart, Quote


def a_cart(**lines: int) -> Cart:
    return Cart("u1", dict(lines))


def test_adding_creates_a_line_then_adds_to_it() -> None:
    cart = a_cart()
    cart.add("mug", 2)
    cart.add("mug", 3)
    assert cart.lines == {"mug": 5}


@pytest.mark.parametrize("qty", [0, -1, MAX_QTY + 1])
def test_a_quantity_out_of_range_is_refused(qty: int) -> None:
    cart = a_cart(mug=1)
    with pytest.raises(domain.QuantityOutOfRange):
        cart.add("mug", qty)
    with pytest.raises(domain.QuantityOutOfRange):
        cart.set_quantity("mug", qty)
    assert cart.lines == {"mug": 1}


def test_adding_never_takes_a_line_past_the_limit() -> None:
    cart = a_cart(mug=90)
    with pytest.raises(domain.QuantityOutOfRange, match="already holds 90"):
        cart.add("mug", 10)
    assert cart.lines == {"mug": 90}
    cart.add("mug", 9)
    assert cart.lines == {"mug": MAX_QTY}


def test_a_cart_holds_a_limited_number_of_products() -> None:
    cart = a_cart(**{f"p{n}": 1 for n in range(MAX_LINES)})
    with pytest.raises(domain.TooManyLines):
        cart.add("one-more", 1)
    assert "one-more" not in cart.lines
    cart.add("p0", 1)  # more of a product already there is fine
    assert cart.lines["p0"] == 2


def test_setting_and_removing_need_the_line() -> None:
    cart = a_cart(mug=1)
    cart.set_quantity("mug", 7)
    assert cart.lines == {"mug": 7}
    with pytest.raises(domain.NotInCart):
        cart.set_quantity("teapot", 1)
    with pytest.raises(domain.NotInCart):
        cart.remove("teapot")
    cart.remove("mug")
    assert cart.lines == {}


def test_an_order_removes_what_it_ordered_and_keeps_the_rest() -> None:
    cart = a_cart(mug=5, teapot=1, spoon=2)
    assert cart.remove_ordered({"mug": 2, "teapot": 1, "absent": 4})
    assert cart.lines == {"mug": 3, "spoon": 2}


def test_an_order_of_more_than_the_line_drops_it() -> None:
    cart = a_cart(mug=1)
    assert cart.remove_ordered({"mug": 3})
    assert cart.lines == {}


def test_an_order_of_nothing_in_the_cart_changes_nothing() -> None:
    cart = a_cart(mug=1)
    assert not cart.remove_ordered({"teapot": 1})
    assert cart.lines == {"mug": 1}


def test_pricing_totals_lines_and_leaves_out_withdrawn_products() -> None:
    cart = a_cart(mug=3, teapot=1, gone=2)
    quotes = {"mug": Quote("mug", "Mug", 450), "teapot": Quote("teapot", "Teapot", 2500)}
    priced = domain.price(cart, quotes)
    assert [(line.product_id, line.line_total_cents) for line in priced.lines] == [
        ("mug", 1350),
        ("teapot", 2500),
    ]
    assert priced.total_cents == 3850
    assert priced.item_count == 4
