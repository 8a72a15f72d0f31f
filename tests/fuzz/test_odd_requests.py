"""What schemathesis does not send: header bytes past ASCII, NULs and encoded surrogates
in paths and queries, JSON too deep for Python's parser, bodies in other charsets, numbers
past any integer. Each goes through the real gateway to the service behind it, on every
public route that takes it; the answer is a 4xx problem (or a success), never a 5xx."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from bazaar.runner.platform import Platform

if TYPE_CHECKING:
    from tests.fuzz.conftest import Credentials

pytestmark = pytest.mark.system

PROBLEM = "application/problem+json"
ROUTES = [
    ("POST", "/api/auth/signup"),
    ("POST", "/api/auth/login"),
    ("GET", "/api/auth/me"),
    ("GET", "/api/products"),
    ("POST", "/api/products"),
    ("GET", "/api/products/p-1"),
    ("PATCH", "/api/products/p-1"),
    ("GET", "/api/cart"),
    ("POST", "/api/cart/items"),
    ("PATCH", "/api/cart/items/p-1"),
    ("DELETE", "/api/cart/items/p-1"),
    ("POST", "/api/checkout"),
    ("GET", "/api/orders"),
    ("GET", "/api/orders/o-1"),
    ("PUT", "/api/admin/products/p-1/stock"),
    ("GET", "/api/admin/stock"),
]
# Header values are bytes: these pass HTTP/1.1 parsing (no control characters) but not
# ASCII.
ODD_HEADERS: list[dict[str, bytes]] = [
    {"Idempotency-Key": b"\xff\xfe-key"},
    {"Authorization": b"Bearer \xff\xfe.\x80\x81.\xe9"},
    {"Authorization": b"\xe9"},
    {"Accept": b"\xff"},
    {"Accept-Language": b"\xe9t\xe9"},
    {"Content-Type": b"application/json; charset=\xff"},
    {"Content-Type": b"application/json; charset=utf-16"},
    {"Content-Type": b"text/plain"},
    {"X-Request-ID": b"\xff" * 200},
    {"X-Forwarded-For": b"\xff, not-an-address, 999.1.1.1"},
    {"Last-Event-ID": b"\xe9"},
]
ODD_BODIES: list[bytes] = [
    b"[" * 30_000 + b"]" * 30_000,  # deeper than Python's JSON parser goes, under 64 KiB
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b'{"product_id": "\\ud800", "qty": 1, "name": "\\udfff", "email": "\\ud800@x.io"}',
    b'{"product_id": "p\\u0000", "qty": 1e400, "delta": NaN, "price_cents": Infinity}',
    b'{"qty": 99999999999999999999999999999999, "delta": -1e308, "price_cents": 1e20}',
    '{"name": "\u00e9", "qty": 1}'.encode("latin-1"),  # not UTF-8
    b"\xef\xbb\xbf{}",  # a BOM
    b'{"email": "a@b.co", "email": "c@d.co", "password": "x", "password": 1}',
]
ODD_PATHS: list[str] = [
    "/api/products/%00",
    "/api/products/%ED%A0%80",  # an encoded surrogate
    "/api/products/%FF%FE",
    "/api/products/" + "x" * 4000,
    "/api/orders/%00",
    "/api/orders/%ED%A0%80/events",
    "/api/cart/items/%00",
    "/api/admin/products/%00/stock",
    "/api/products?q=%00%ED%A0%80&category=%FF&page=%00",
    "/api/products?page=1e3&page_size=0x10",
    "/api/products?q=" + "%F0%9F%98%80" * 500,
    "/api/admin/stock?product_id=%00&product_id=" + "x" * 2000,
]


@pytest.fixture(scope="module")
def api(fuzz_platform: Platform, credentials: Credentials) -> httpx.Client:
    client = httpx.Client(base_url=fuzz_platform.public_url, timeout=15.0, trust_env=False)
    client.headers["Authorization"] = credentials.admin["Authorization"]
    return client


def assert_answered_cleanly(answer: httpx.Response) -> None:
    what = f"{answer.request.method} {answer.request.url}: {answer.status_code} {answer.text}"
    assert answer.status_code < 500, what
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == PROBLEM, what
        assert answer.json()["detail"], what


@pytest.mark.parametrize("headers", ODD_HEADERS, ids=lambda h: next(iter(h)))
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_odd_header_bytes(api: httpx.Client, method: str, path: str, headers: dict) -> None:
    body = b'{"qty": 1, "product_id": "p-1", "delta": 1}' if method != "GET" else None
    assert_answered_cleanly(api.request(method, path, content=body, headers=headers))


@pytest.mark.parametrize("body", ODD_BODIES, ids=lambda b: repr(b[:20]))
@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[0] != "GET"])
def test_odd_bodies(api: httpx.Client, method: str, path: str, body: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    assert_answered_cleanly(api.request(method, path, content=body, headers=headers))


@pytest.mark.parametrize("path", ODD_PATHS)
def test_odd_paths_and_queries(api: httpx.Client, path: str) -> None:
    method = "PUT" if path.endswith("/stock") else "GET"
    body = b'{"delta": 1}' if method == "PUT" else None
    headers = {"Content-Type": "application/json"}
    assert_answered_cleanly(api.request(method, path, content=body, headers=headers))
