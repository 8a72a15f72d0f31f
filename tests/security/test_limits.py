"""Resource limits on the real platform (OWASP API4, API6): signup and login floods,
password guessing, checkout floods, oversized bodies at every HTTP service, page sizes,
quantities and cart sizes; and limits shared by two auth replicas through Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bazaar.runner.platform import Platform
from bazaar.testing import free_port, redis_server
from bazaar.testing.api import ok, poll

from .support import (
    PASSWORD,
    SecurityPlatform,
    admin_headers,
    assert_problem,
    sign_up,
)

pytestmark = pytest.mark.system

SIGNUP_PER_ADDRESS = 5  # BAZAAR_SIGNUP_RATE_PER_ADDRESS of the security platform
LOGIN_PER_ACCOUNT = 10  # the default BAZAAR_LOGIN_RATE_PER_ACCOUNT
CHECKOUTS_PER_USER = 10  # the default BAZAAR_CHECKOUT_RATE (10 per 10 seconds)


def assert_throttled(response: httpx.Response) -> None:
    problem = assert_problem(response, 429)
    assert 1 <= int(response.headers["retry-after"]) <= 3600
    assert "too many" in problem["detail"]


def client_at(secure: SecurityPlatform, address: str) -> httpx.Client:
    return httpx.Client(
        base_url=secure.platform.public_url,
        timeout=15.0,
        trust_env=False,
        headers={"X-Forwarded-For": address},
    )


def test_a_signup_flood_from_one_address_is_throttled(secure: SecurityPlatform) -> None:
    flooder, neighbour = secure.new_address(), secure.new_address()
    with client_at(secure, flooder) as api:
        for n in range(SIGNUP_PER_ADDRESS):  # counted before the body is even read
            assert_problem(api.post("/api/auth/signup", json={"email": f"bot{n}"}), 422)
        body = {"email": f"bot-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
        assert_throttled(api.post("/api/auth/signup", json={**body, "name": "Bot"}))
        # The storefront's form goes through the same limit.
        form = {**body, "name": "Bot"}
        page = api.post("/signup", data=form, headers={"Origin": secure.platform.public_url})
        assert page.status_code == 429
    with client_at(secure, neighbour) as api:  # another client behind the same gateway
        sign_up(api)


def test_password_guessing_is_throttled_per_account_whatever_the_address(
    secure: SecurityPlatform, api: httpx.Client
) -> None:
    victim = sign_up(api)
    for n in range(LOGIN_PER_ACCOUNT):
        with client_at(secure, secure.new_address()) as guesser:
            guess = {"email": victim.email.upper(), "password": f"guess number {n}"}
            assert_problem(guesser.post("/api/auth/login", json=guess), 401)
    right = {"email": victim.email, "password": PASSWORD}
    with client_at(secure, secure.new_address()) as guesser:
        assert_throttled(guesser.post("/api/auth/login", json=right))
    other = sign_up(api)  # other accounts log in as usual
    ok(api.post("/api/auth/login", json={"email": other.email, "password": PASSWORD}))
    ok(api.get("/api/cart", headers=victim.headers))  # and issued tokens keep working


def test_a_checkout_flood_from_one_account_is_throttled(api: httpx.Client) -> None:
    flooder, bystander = sign_up(api), sign_up(api)
    for _ in range(CHECKOUTS_PER_USER):
        assert_problem(api.post("/api/checkout", headers=flooder.headers), 422)  # empty cart
    assert_throttled(api.post("/api/checkout", headers=flooder.headers))
    assert_problem(api.post("/api/checkout", headers=bystander.headers), 422)
    assert ok(api.get("/api/orders", headers=flooder.headers))["items"] == []


def http_services(platform: Platform) -> dict[str, str]:
    """Every HTTP listener: each service's API (or a gRPC service's ops app) and the gateway."""
    urls = {"gateway": platform.public_url}
    for name, roles in platform.ports.items():
        # The runner's own infrastructure; ops takes OTLP exports, which are larger than a
        # service's request bodies, and caps them itself (runner/tests/test_ops.py).
        if name in {"nats", "smtp", "gateway", "ops"}:
            continue
        role = "ops" if "ops" in roles else "http"
        urls[name] = f"http://127.0.0.1:{roles[role]}"
    return urls


# A route of each service that reads a JSON body.
BODY_ROUTES = {
    "gateway": "/api/auth/login",
    "auth": "/api/auth/login",
    "catalog": "/api/products",
    "cart": "/api/cart/items",
    "payment": "/internal/payments",
}


def test_every_http_service_refuses_a_body_over_64_kib(platform: Platform) -> None:
    services = http_services(platform)
    assert set(services) >= {*BODY_ROUTES, "order", "inventory", "notification"}
    big = b'{"email": "' + b"x" * (64 * 1024) + b'"}'
    json_type = {"Content-Type": "application/json"}

    def chunks() -> Iterator[bytes]:
        for _ in range(70):  # no Content-Length: only counting what arrives can catch it
            yield b"x" * 1024

    for name, url in services.items():
        with httpx.Client(base_url=url, trust_env=False, timeout=15) as client:
            path = BODY_ROUTES.get(name, "/api/anything")
            problem = assert_problem(client.post(path, content=big, headers=json_type), 413)
            assert "bytes" in problem["detail"], name
            if name in BODY_ROUTES:
                streamed = client.post(path, content=chunks(), headers=json_type)
                assert streamed.status_code == 413, (name, streamed.text)
            assert ok(client.get("/healthz"))  # and the service is fine


def test_page_sizes_are_bounded(api: httpx.Client) -> None:
    for page_size in (0, 101, 10**9, -1):
        assert_problem(api.get("/api/products", params={"page_size": page_size}), 422)
    assert_problem(api.get("/api/products", params={"page": 0}), 422)
    page = ok(api.get("/api/products", params={"page_size": 100}))
    assert len(page["items"]) <= 100


def test_quantities_are_bounded(api: httpx.Client) -> None:
    shopper = sign_up(api)
    product = ok(api.get("/api/products", params={"page_size": 1}))["items"][0]
    for qty in (0, -1, 100, 10**12, 1.5, "1", None, True):
        item = {"product_id": product["id"], "qty": qty}
        answer = api.post("/api/cart/items", json=item, headers=shopper.headers)
        assert_problem(answer, 422)
    ok(
        api.post(
            "/api/cart/items",
            json={"product_id": product["id"], "qty": 99},
            headers=shopper.headers,
        )
    )
    more = api.post(
        "/api/cart/items", json={"product_id": product["id"], "qty": 1}, headers=shopper.headers
    )
    assert_problem(more, 422)
    patched = api.patch(
        f"/api/cart/items/{product['id']}", json={"qty": 100}, headers=shopper.headers
    )
    assert_problem(patched, 422)
    cart = ok(api.get("/api/cart", headers=shopper.headers))
    assert [(i["product_id"], i["qty"]) for i in cart["items"]] == [(product["id"], 99)]


def test_a_cart_holds_at_most_50_products(api: httpx.Client) -> None:
    products: list[dict[str, Any]] = ok(api.get("/api/products", params={"page_size": 100}))[
        "items"
    ]
    admin = admin_headers(api)
    category = products[0]["category"]
    while len(products) < 51:
        new = {"name": f"Filler {uuid.uuid4().hex[:6]}", "category": category, "price_cents": 100}
        products.append(ok(api.post("/api/products", json=new, headers=admin), 201))
    shopper = sign_up(api)
    for product in products[:50]:
        item = {"product_id": product["id"], "qty": 1}
        ok(api.post("/api/cart/items", json=item, headers=shopper.headers))
    item = {"product_id": products[50]["id"], "qty": 1}
    problem = assert_problem(api.post("/api/cart/items", json=item, headers=shopper.headers), 422)
    assert "50" in problem["detail"]
    assert ok(api.get("/api/cart", headers=shopper.headers))["item_count"] == 50


# --- two auth replicas share their limits through Redis --------------------------------


def auth_replica(home: Path, redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "BAZAAR_HOME": str(home),
        "BAZAAR_PORT": str(port),
        "BAZAAR_ENVIRONMENT": "test",
        "BAZAAR_HTTP_THREADS": "2",
        "BAZAAR_RATE_LIMIT_URL": redis_url,
        "BAZAAR_LOGIN_RATE_PER_ACCOUNT": "4/minute",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bazaar.services.auth", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[str]]:
    with redis_server(tmp_path) as redis_url:
        migrated = subprocess.run(
            [sys.executable, "-m", "bazaar.services.auth", "migrate"],
            env={**os.environ, "BAZAAR_HOME": str(tmp_path), "BAZAAR_ENVIRONMENT": "test"},
            capture_output=True,
            timeout=60,
        )
        assert migrated.returncode == 0, migrated.stderr
        started = [auth_replica(tmp_path, redis_url) for _ in range(2)]
        try:
            for process, url in started:

                def healthy(url: str = url) -> bool:
                    try:
                        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
                    except httpx.TransportError:
                        return False

                poll(healthy, bool, timeout=30, what=f"auth replica {url}")
                assert process.poll() is None
            yield [url for _, url in started]
        finally:
            for process, _ in started:
                process.send_signal(signal.SIGTERM)
            for process, _ in started:
                process.wait(timeout=15)


def test_replicas_sharing_redis_count_one_budget(replicas: list[str]) -> None:
    first, second = replicas
    email = f"shared-{uuid.uuid4().hex[:8]}@example.com"
    ok(
        httpx.post(
            f"{first}/api/auth/signup", json={"email": email, "password": PASSWORD, "name": "S"}
        ),
        201,
    )
    guess = {"email": email, "password": "not the password"}
    for url in (first, second, first, second):
        assert_problem(httpx.post(f"{url}/api/auth/login", json=guess, timeout=15), 401)
    for url in (first, second):  # neither replica lets a fifth guess through
        assert_throttled(httpx.post(f"{url}/api/auth/login", json=guess, timeout=15))
