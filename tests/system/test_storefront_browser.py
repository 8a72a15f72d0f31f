"""The storefront in a real headless Chromium: a visitor finds a product, signs up, fills
the cart, checks out, watches the order get paid and reads the confirmation mail."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.system


def test_a_visitor_buys_a_product_and_reads_the_mail(page: Page) -> None:
    page.goto("/")
    page.get_by_label("Search products").fill("skillet")
    page.get_by_role("button", name="Search").click()
    page.locator(".card a").first.click()
    product_name = page.locator("h1").inner_text()

    product_url = page.url
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()

    # Not logged in: the shop asks to log in first; the visitor signs up instead and is
    # sent back to the product.
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_role("link", name="Create an account").click()
    email = f"browser-{uuid.uuid4().hex[:8]}@example.com"
    page.get_by_label("Name").fill("Grace")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("a long enough password")
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(product_url)

    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()

    page.goto("/cart")
    expect(page.locator("table.lines")).to_contain_text(product_name)
    page.get_by_role("button", name="Check out").click()

    # The order page refreshes itself until the saga is done.
    expect(page.locator("#order-status")).to_have_text("paid", timeout=30_000)
    order_url = page.url

    page.goto("/mail")
    expect(page.locator("body")).to_contain_text("is confirmed", timeout=15_000)
    expect(page.locator("body")).to_contain_text(email)

    page.goto("/cart")
    expect(page.locator(".empty")).to_contain_text("Your cart is empty")
    assert "/orders/" in order_url
