"""The storefront's calls to the services: the same public API a browser app would call,
made server-side through the gateway's upstream clients, with the visitor's token.

Every failure comes back as a `ShopError` carrying a message fit for a person; the
storefront shows it on the page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from bazaar.platform.logs import get_logger
from bazaar.services.gateway.upstreams import Upstreams

log = get_logger(__name__)

Json = dict[str, Any]


class ShopError(Exception):
    def __init__(self, status: int, message: str, *, upstream: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.upstream = upstream


class Shop:
    def __init__(
        self,
        upstreams: Upstreams,
        token: str | None,
        request_id: str = "",
        forwarded_for: str = "",
    ) -> None:
        self._upstreams = upstreams
        self._token = token
        self._request_id = request_id
        # The visitor's address: auth limits logins per client, not per gateway.
        self._forwarded_for = forwarded_for

    async def _call(
        self,
        upstream: str,
        method: str,
        path: str,
        *,
        json: Json | None = None,
        params: dict[str, str | int] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Json:
        sent = dict(headers or {})
        if self._token:
            sent["Authorization"] = f"Bearer {self._token}"
        if self._request_id:
            sent["X-Request-ID"] = self._request_id
        if self._forwarded_for:
            sent["X-Forwarded-For"] = self._forwarded_for
        try:
            response = await self._upstreams.client(upstream).request(
                method, path, json=json, params=params, headers=sent
            )
        except httpx.TimeoutException as exc:
            log.warning("storefront call timed out", upstream=upstream, path=path)
            raise ShopError(
                504,
                f"The {upstream} service is slow to answer. Please try again.",
                upstream=upstream,
            ) from exc
        except httpx.HTTPError as exc:
            log.warning("storefront call failed", upstream=upstream, error=type(exc).__name__)
            raise ShopError(
                503,
                f"The {upstream} service is unavailable right now. Please try again in a moment.",
                upstream=upstream,
            ) from exc
        body = _json(response)
        if response.is_success:
            return body
        raise ShopError(
            response.status_code, _message(response.status_code, body), upstream=upstream
        )

    # -- auth --------------------------------------------------------------------------

    async def signup(self, email: str, password: str, name: str) -> Json:
        body = {"email": email, "password": password, "name": name}
        return await self._call("auth", "POST", "/api/auth/signup", json=body)

    async def login(self, email: str, password: str) -> Json:
        body = {"email": email, "password": password}
        return await self._call("auth", "POST", "/api/auth/login", json=body)

    # -- catalog -----------------------------------------------------------------------

    async def products(self, q: str, category: str, page: int, page_size: int) -> Json:
        params: dict[str, str | int] = {"page": page, "page_size": page_size}
        if q:
            params["q"] = q
        if category:
            params["category"] = category
        return await self._call("catalog", "GET", "/api/products", params=params)

    async def product(self, product_id: str) -> Json:
        return await self._call("catalog", "GET", f"/api/products/{_segment(product_id)}")

    async def categories(self) -> list[Json]:
        return _items(await self._call("catalog", "GET", "/api/categories"))

    # -- cart --------------------------------------------------------------------------

    async def cart(self) -> Json:
        return await self._call("cart", "GET", "/api/cart")

    async def add_to_cart(self, product_id: str, qty: int) -> Json:
        body = {"product_id": product_id, "qty": qty}
        return await self._call("cart", "POST", "/api/cart/items", json=body)

    async def set_qty(self, product_id: str, qty: int) -> Json:
        path = f"/api/cart/items/{_segment(product_id)}"
        return await self._call("cart", "PATCH", path, json={"qty": qty})

    async def remove(self, product_id: str) -> Json:
        return await self._call("cart", "DELETE", f"/api/cart/items/{_segment(product_id)}")

    # -- orders ------------------------------------------------------------------------

    async def checkout(self, idempotency_key: str) -> Json:
        headers = {"Idempotency-Key": idempotency_key}
        return await self._call("order", "POST", "/api/checkout", headers=headers)

    async def orders(self) -> list[Json]:
        return _items(await self._call("order", "GET", "/api/orders"))

    async def order(self, order_id: str) -> Json:
        return await self._call("order", "GET", f"/api/orders/{_segment(order_id)}")


def _segment(value: str) -> str:
    """One path segment, percent-encoded: an id can never climb to another path."""
    if value in ("", ".", ".."):
        raise ShopError(404, "There is no such page.")
    return quote(value, safe="")


def _json(response: httpx.Response) -> Json:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"items": body}


def _items(body: Json) -> list[Json]:
    items = body.get("items")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _message(status: int, problem: Json) -> str:
    """What to tell a person about an error answer (a problem+json body)."""
    if status >= 500:
        return "Something went wrong on our side. Please try again in a moment."
    if status == 429:
        return "Too many attempts. Please wait a little and try again."
    detail = problem.get("detail")
    if isinstance(detail, str) and detail:
        return detail[:300]
    title = problem.get("title")
    return title if isinstance(title, str) and title else f"The request failed ({status})."
