"""The ops page in a real headless Chromium, on `bazaar up`'s local trace store with
nothing else installed: a customer checks out, the admin opens the ops page, finds the
order and sees its trace as a waterfall with spans of all seven services beside its saga.

A screenshot of the order's page is saved in $BAZAAR_SCREENSHOTS (default: the test's
temporary folder)."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bazaar.runner.demo import admin_login

pytestmark = pytest.mark.system

SEVEN = ("gateway", "order", "cart", "catalog", "inventory", "payment", "notification")
# The viewport of this module's pages (conftest's `page` reads it; the screenshot's width).
VIEWPORT = {"width": 1400, "height": 1100}


def buy_as_a_customer(page: Page) -> str:
    page.goto("/signup")
    page.get_by_label("Name").fill("Olga")
    page.get_by_label("Email").fill(f"ops-{uuid.uuid4().hex[:8]}@example.com")
    page.get_by_label("Password").fill("a long enough password")
    page.get_by_role("button", name="Sign up").click()
    page.locator(".card a").first.click()
    page.get_by_label("Quantity").fill("1")
    page.get_by_role("button", name="Add to cart").click()
    page.goto("/cart")
    page.get_by_role("button", name="Check out").click()
    expect(page.locator("#order-status")).to_have_text("paid", timeout=30_000)
    found = re.search(r"/orders/([^/?#]+)", page.url)
    assert found, page.url
    page.get_by_role("button", name="Log out").click()
    return found.group(1)


def log_in_as_admin(page: Page) -> None:
    email, password = admin_login()
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".badge.admin")).to_be_visible()


def test_the_admin_finds_the_order_trace_across_seven_services(page: Page, tmp_path: Path) -> None:
    order_id = buy_as_a_customer(page)
    log_in_as_admin(page)

    page.get_by_role("link", name="Ops").click()
    expect(page.locator("#processes")).to_contain_text("gateway")
    expect(page.locator("#processes")).to_contain_text("ops")
    for section in ("#rates", "#outbox", "#dead-letters"):
        expect(page.locator(section)).to_be_visible()

    # The trace arrives within a second or so of the mail: look until the order is listed.
    link = page.get_by_role("link", name=order_id)
    deadline = time.monotonic() + 20
    while not link.count() and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        page.reload()
    link.click()

    services = page.locator("#trace-services")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(s in services.inner_text() for s in SEVEN):
        page.wait_for_timeout(500)
        page.reload()
    for service in SEVEN:
        expect(services).to_contain_text(service)
        expect(
            page.locator(f'.waterfall .span-row[data-service="{service}"]').first
        ).to_be_visible()
    expect(page.locator("#order-status")).to_have_text("paid")
    expect(page.locator("#saga-steps")).to_contain_text("reserve")
    expect(page.locator("#saga-steps")).to_contain_text("confirm")

    shots = Path(os.environ.get("BAZAAR_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "ops-order.png"), full_page=True)


def test_the_ops_page_is_for_admins_only(page: Page) -> None:
    page.goto("/signup")
    page.get_by_label("Name").fill("Nosy")
    page.get_by_label("Email").fill(f"nosy-{uuid.uuid4().hex[:8]}@example.com")
    page.get_by_label("Password").fill("a long enough password")
    page.get_by_role("button", name="Sign up").click()
    response = page.goto("/ops")
    assert response is not None and response.status == 403
    expect(page.locator("#processes")).to_have_count(0)
