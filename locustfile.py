"""Load-test your own Bazaar deployment the way Online Boutique's load generator tests
its shop: people who browse, search, look at products, fill a cart, check out and look at
their orders, with think time in between.

    locust -f locustfile.py --host http://localhost:8000                 # web UI on :8089
    locust -f locustfile.py --host http://localhost:8000 --headless -u 50 -r 5 -t 5m

Each simulated shopper signs up once (argon2id: slow on purpose, so ramp up gently, and
raise the auth rate limits of the deployment under test if it has them). Checkouts need
stock: give the products plenty with the admin API first
(PUT /api/admin/products/{id}/stock {"delta": 100000}), or expect `out_of_stock`
cancellations. Besides the HTTP requests, locust reports "checkout -> final" (ORDER):
the time from POST /api/checkout until the order is paid or cancelled.

For side-by-side numbers on one machine use `make bench` instead (bench/).
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from locust import HttpUser, between, task

PASSWORD = "locust passphrase 2026"
FINAL = {"paid", "cancelled"}
FOLLOW_SECONDS = 30.0


class Shopper(HttpUser):
    """One person in the shop. Task weights follow a shop's usual mix: mostly browsing."""

    wait_time = between(1, 5)

    def on_start(self) -> None:
        self.product_ids: list[str] = []
        self.words: list[str] = []
        self.categories: list[str] = []
        self.cart_items = 0
        email = f"locust-{uuid.uuid4().hex[:16]}@example.com"
        answer = self.client.post(
            "/api/auth/signup",
            json={"email": email, "password": PASSWORD, "name": "Locust Shopper"},
            name="/api/auth/signup",
        )
        token = answer.json().get("access_token", "") if answer.status_code == 201 else ""
        self.auth = {"Authorization": f"Bearer {token}"}
        self._learn_the_catalog()

    def _learn_the_catalog(self) -> None:
        page = self.client.get("/api/products", params={"page_size": 100}, name="/api/products")
        items = page.json().get("items", []) if page.status_code == 200 else []
        self.product_ids = [item["id"] for item in items]
        self.words = sorted(
            {w.lower() for item in items for w in item["name"].split() if len(w) > 3}
        )
        categories = self.client.get("/api/categories", name="/api/categories")
        if categories.status_code == 200:
            self.categories = [c["slug"] for c in categories.json().get("items", [])]

    @task(1)
    def home(self) -> None:
        self.client.get("/", name="/ (storefront)")

    @task(10)
    def browse(self) -> None:
        self.client.get(
            "/api/products",
            params={"page": random.randint(1, 2), "page_size": 20},
            name="/api/products?page=[n]",
        )

    @task(4)
    def search(self) -> None:
        if self.words:
            self.client.get(
                "/api/products",
                params={"q": random.choice(self.words)},
                name="/api/products?q=[word]",
            )

    @task(2)
    def by_category(self) -> None:
        if self.categories:
            self.client.get(
                "/api/products",
                params={"category": random.choice(self.categories)},
                name="/api/products?category=[slug]",
            )

    @task(8)
    def view_product(self) -> None:
        if self.product_ids:
            product_id = random.choice(self.product_ids)
            self.client.get(f"/api/products/{product_id}", name="/api/products/[id]")

    @task(3)
    def add_to_cart(self) -> None:
        if not self.product_ids:
            return
        answer = self.client.post(
            "/api/cart/items",
            json={"product_id": random.choice(self.product_ids), "qty": random.randint(1, 3)},
            headers=self.auth,
            name="/api/cart/items",
        )
        if answer.status_code == 200:
            self.cart_items = answer.json().get("item_count", self.cart_items + 1)

    @task(2)
    def view_cart(self) -> None:
        answer = self.client.get("/api/cart", headers=self.auth, name="/api/cart")
        if answer.status_code == 200:
            self.cart_items = answer.json().get("item_count", 0)

    @task(1)
    def checkout(self) -> None:
        if not self.cart_items:
            self.add_to_cart()
            return
        started = time.perf_counter()
        answer = self.client.post(
            "/api/checkout",
            headers={**self.auth, "Idempotency-Key": uuid.uuid4().hex},
            name="/api/checkout",
        )
        if answer.status_code != 201:
            return
        self.cart_items = 0
        order = self._follow(answer.json()["order_id"])
        self._report_order(order, started)

    def _follow(self, order_id: str) -> dict[str, Any] | None:
        """Poll the order, as a shop page would, until it is final (or we give up)."""
        deadline = time.monotonic() + FOLLOW_SECONDS
        pause = 0.25
        while time.monotonic() < deadline:
            time.sleep(pause)
            answer = self.client.get(
                f"/api/orders/{order_id}", headers=self.auth, name="/api/orders/[id]"
            )
            if answer.status_code == 200 and answer.json().get("status") in FINAL:
                order: dict[str, Any] = answer.json()
                return order
            pause = min(pause * 2, 2.0)
        return None

    def _report_order(self, order: dict[str, Any] | None, started: float) -> None:
        status = order["status"] if order else "unfinished"
        self.environment.events.request.fire(
            request_type="ORDER",
            name=f"checkout -> final ({status})",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=None if order else TimeoutError(f"not final in {FOLLOW_SECONDS:g} s"),
            context={},
        )

    @task(1)
    def view_orders(self) -> None:
        self.client.get("/api/orders", headers=self.auth, name="/api/orders")
