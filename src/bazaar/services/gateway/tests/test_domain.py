from __future__ import annotations

import pytest

from bazaar.services.gateway import domain


@pytest.mark.parametrize(
    ("cents", "shown"),
    [(0, "$0.00"), (5, "$0.05"), (1999, "$19.99"), (123456789, "$1,234,567.89"), (-250, "-$2.50")],
)
def test_money_is_formatted_from_cents(cents: int, shown: str) -> None:
    assert domain.format_cents(cents) == shown


@pytest.mark.parametrize("garbage", [None, "12", 1.5, True])
def test_a_price_that_is_not_cents_shows_as_a_dash(garbage: object) -> None:
    assert domain.format_cents(garbage) == "—"


@pytest.mark.parametrize(
    ("raw", "qty"),
    [("1", 1), ("99", 99), (" 7 ", 7), ("0", None), ("100", None), ("-1", None), ("x", None)],
)
def test_quantities_from_forms(raw: str, qty: int | None) -> None:
    assert domain.parse_qty(raw) == qty


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/cart", "/cart"),
        ("/?q=tea&page=2", "/?q=tea&page=2"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_only_local_paths_are_followed_after_login(target: str | None, safe: str) -> None:
    assert domain.safe_next(target) == safe


@pytest.mark.parametrize(
    ("origin", "referer", "ok"),
    [
        ("http://shop.test", None, True),
        ("https://SHOP.test", None, True),
        ("http://evil.example", "http://shop.test/", False),
        ("http://shop.test.evil.example", None, False),
        ("null", "http://shop.test/cart", True),
        (None, "http://shop.test/cart", True),
        (None, "http://evil.example/shop.test", False),
        (None, None, False),
        ("http://shop.test:8080", None, False),
    ],
)
def test_form_posts_must_come_from_this_site(
    origin: str | None, referer: str | None, ok: bool
) -> None:
    assert domain.is_same_origin(origin, referer, "shop.test") is ok


def test_a_request_without_host_is_never_same_origin() -> None:
    assert not domain.is_same_origin("http://shop.test", None, None)


def test_pagination() -> None:
    pages = domain.paginate(total=25, page=2, page_size=12)
    assert (pages.page, pages.pages, pages.has_previous, pages.has_next) == (2, 3, True, True)
    assert domain.paginate(total=0, page=1, page_size=12).pages == 1
    assert domain.paginate(total="?", page=None, page_size=0).page == 1
    assert domain.page_link(1) == "/"
    assert domain.page_link(3, q="tea pot", category="kitchen") == (
        "/?q=tea+pot&category=kitchen&page=3"
    )


def test_image_urls_are_only_http_or_local() -> None:
    assert domain.safe_image_url("https://img.example/a.png") == "https://img.example/a.png"
    assert domain.safe_image_url("/static/a.png") == "/static/a.png"
    assert domain.safe_image_url("javascript:alert(1)") == ""
    assert domain.safe_image_url("//evil.example/a.png") == ""
    assert domain.safe_image_url(None) == ""


def test_order_states_and_reasons() -> None:
    assert domain.is_final("paid") and domain.is_final("cancelled")
    assert not domain.is_final("pending")
    assert domain.cancel_reason("out_of_stock").startswith("Out of stock")
    assert domain.cancel_reason("something_new") == "Something new."
    assert domain.cancel_reason(None) == ""


def test_who_may_read_a_mail() -> None:
    to = domain.recipients("Ada <Ada@Example.com>, bob@example.com", None, "carol@example.com")
    assert to == {"ada@example.com", "bob@example.com", "carol@example.com"}
    assert domain.may_read_mail(to, "ADA@example.com", is_admin=False)
    assert not domain.may_read_mail(to, "da@example.com", is_admin=False)
    assert domain.may_read_mail(frozenset(), "x@example.com", is_admin=True)
