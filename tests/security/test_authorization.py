"""Object-level and function-level authorization on the real platform (OWASP API1, API3,
API5): nobody reaches another user's order or cart, no response carries a password hash
or another user's data, management needs the admin role, nobody grants themselves a
role, internal endpoints are not reachable through the gateway, and in the embedded
default every process listens on loopback only."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from bazaar.runner.platform import Platform
from bazaar.testing.api import ok

from .support import (
    PASSWORD,
    Shopper,
    admin_headers,
    assert_problem,
    sign_up,
)

pytestmark = pytest.mark.system

USER_FIELDS = {"id", "email", "name", "roles"}
# gRPC binds an IPv6 socket to the IPv4-mapped loopback: still loopback only.
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def a_product(api: httpx.Client) -> dict[str, Any]:
    page = ok(api.get("/api/products", params={"page_size": 100}))
    product: dict[str, Any] = max(page["items"], key=lambda p: p["stock"])
    assert product["stock"] >= 5
    return product


def place_order(api: httpx.Client, shopper: Shopper) -> str:
    product = a_product(api)
    item = {"product_id": product["id"], "qty": 1}
    ok(api.post("/api/cart/items", json=item, headers=shopper.headers))
    created = ok(api.post("/api/checkout", headers=shopper.headers), 201)
    return str(created["order_id"])


def test_another_users_order_is_404_and_never_listed(api: httpx.Client) -> None:
    alice, mallory = sign_up(api), sign_up(api)
    order_id = place_order(api, alice)
    assert ok(api.get(f"/api/orders/{order_id}", headers=alice.headers))["id"] == order_id

    for path in (f"/api/orders/{order_id}", f"/api/orders/{order_id}/events"):
        problem = assert_problem(api.get(path, headers=mallory.headers), 404)
        assert alice.email not in str(problem)
    unknown = assert_problem(api.get(f"/api/orders/{uuid.uuid4()}", headers=mallory.headers), 404)
    assert unknown["title"] == "Not Found"  # the same answer as for an order that exists
    assert ok(api.get("/api/orders", headers=mallory.headers))["items"] == []


def test_another_users_cart_is_unreachable(api: httpx.Client) -> None:
    alice, mallory = sign_up(api), sign_up(api)
    product = a_product(api)
    ok(
        api.post(
            "/api/cart/items", json={"product_id": product["id"], "qty": 2}, headers=alice.headers
        )
    )

    # Whatever names Alice in the request, Mallory's token decides whose cart it is.
    tricks: list[dict[str, Any]] = [
        {"params": {"user_id": alice.user["id"]}},
        {"headers": {"X-User-Id": alice.user["id"]}},
    ]
    for trick in tricks:
        headers = {**mallory.headers, **trick.get("headers", {})}
        cart = ok(api.get("/api/cart", params=trick.get("params"), headers=headers))
        assert cart["user_id"] == mallory.user["id"] and cart["items"] == []
    removed = api.delete(f"/api/cart/items/{product['id']}", headers=mallory.headers)
    assert removed.status_code in {200, 404}
    assert_problem(api.get(f"/internal/carts/{alice.user['id']}", headers=mallory.headers), 404)

    cart = ok(api.get("/api/cart", headers=alice.headers))
    assert [(i["product_id"], i["qty"]) for i in cart["items"]] == [(product["id"], 2)]


def keys_in(body: Any) -> set[str]:
    if isinstance(body, dict):
        return set(body) | {k for value in body.values() for k in keys_in(value)}
    if isinstance(body, list):
        return {k for value in body for k in keys_in(value)}
    return set()


def assert_no_secrets(body: Any, shopper_password: str) -> None:
    text = str(body)
    for secret in (shopper_password, "$argon2"):
        assert secret not in text, f"{secret!r} in {text}"
    assert not {k for k in keys_in(body) if "password" in k or "hash" in k}, text


def test_no_auth_response_carries_a_hash_or_another_users_data(api: httpx.Client) -> None:
    first = sign_up(api)
    other_password = "another long passphrase"
    second = api.post(
        "/api/auth/signup",
        json={
            "email": f"b-{uuid.uuid4().hex[:8]}@example.com",
            "password": other_password,
            "name": "B",
        },
    )
    answers = [
        (second, 201),
        (api.post("/api/auth/login", json={"email": first.email, "password": PASSWORD}), 200),
        (api.get("/api/auth/me", headers=first.headers), 200),
        (api.post("/api/auth/login", json={"email": first.email, "password": "wrong!!"}), 401),
        (api.post("/api/auth/login", json={"email": "ghost@example.com", "password": "x"}), 401),
        (
            api.post(
                "/api/auth/signup", json={"email": first.email, "password": PASSWORD, "name": "X"}
            ),
            409,
        ),
        (api.post("/api/auth/signup", json={"email": "bad", "password": "short"}), 422),
        (api.get("/api/auth/me"), 401),
    ]
    for answer, status in answers:
        assert answer.status_code == status, answer.text
        assert_no_secrets(answer.json(), PASSWORD)
        assert_no_secrets(answer.json(), other_password)
        if status < 300:  # signup and login carry `user`, /me is the user
            user = answer.json().get("user", answer.json())
            assert set(user) == USER_FIELDS
            assert user["email"] in {first.email, second.json()["user"]["email"]}
    me = ok(api.get("/api/auth/me", headers=first.headers))
    assert me["email"] == first.email and set(me) == USER_FIELDS


def test_management_needs_the_admin_role(api: httpx.Client) -> None:
    customer = sign_up(api)
    product = a_product(api)
    new_product = {
        "name": "Forged",
        "description": "x",
        "category": "kitchen",
        "price_cents": 1,
    }
    attempts: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", "/api/products", new_product),
        ("PATCH", f"/api/products/{product['id']}", {"price_cents": 1}),
        ("PUT", f"/api/admin/products/{product['id']}/stock", {"delta": 1000}),
        ("GET", "/api/admin/stock", None),
    ]
    for method, path, body in attempts:
        assert_problem(api.request(method, path, headers=customer.headers, json=body), 403)
        assert_problem(api.request(method, path, json=body), 401)
    after = ok(api.get(f"/api/products/{product['id']}"))
    assert (after["price_cents"], after["stock"]) == (product["price_cents"], product["stock"])
    assert ok(api.get("/api/admin/stock", headers=admin_headers(api)))  # the admin may


def test_nobody_grants_themselves_a_role(api: httpx.Client) -> None:
    for extra in ({"roles": ["admin"]}, {"role": "admin"}, {"is_admin": True}):
        body = {"email": f"eve-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
        attempt = api.post("/api/auth/signup", json={**body, "name": "Eve", **extra})
        assert_problem(attempt, 422)
    eve = sign_up(api)
    assert eve.user["roles"] == ["customer"]
    for method in ("PUT", "PATCH", "POST"):
        answer = api.request(method, "/api/auth/me", json={"roles": ["admin"]}, headers=eve.headers)
        assert answer.status_code in {404, 405}, answer.text
    login = {"email": eve.email, "password": PASSWORD, "roles": ["admin"]}
    assert_problem(api.post("/api/auth/login", json=login), 422)
    assert ok(api.get("/api/auth/me", headers=eve.headers))["roles"] == ["customer"]


INTERNAL = [
    ("GET", "/internal/mode"),
    ("PUT", "/internal/mode"),
    ("POST", "/internal/payments"),
    ("GET", f"/internal/payments/{uuid.uuid4()}"),
    ("POST", f"/internal/payments/{uuid.uuid4()}/refund"),
    ("GET", f"/internal/carts/{uuid.uuid4()}"),
    ("GET", "/api/../internal/mode"),
    ("GET", "/api/%2e%2e/internal/mode"),
    ("GET", "//internal/mode"),
    ("GET", "/api/cart/..%2F..%2Finternal%2Fmode"),
    ("PUT", "/api/products/..%2F..%2Finternal%2Fmode"),
]


@pytest.mark.parametrize(("method", "path"), INTERNAL)
def test_internal_endpoints_are_not_reachable_through_the_gateway(
    api: httpx.Client, platform: Platform, method: str, path: str
) -> None:
    # A raw target: httpx would otherwise normalize the dots away before sending.
    request = api.build_request(method, platform.public_url, json={"mode": "outage"})
    request.url = request.url.copy_with(raw_path=path.encode())
    answer = api.send(request)
    assert answer.status_code in {404, 405}, f"{method} {path}: {answer.status_code}"
    assert answer.headers["content-type"].startswith("application/problem+json")
    with httpx.Client(base_url=platform.url("payment"), trust_env=False) as payment:
        assert ok(payment.get("/internal/mode"))["mode"] == "ok"


def listening_sockets() -> dict[int, set[str]]:
    """Port -> local addresses of every listening TCP socket of this machine."""
    found: dict[int, set[str]] = {}
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state != "0A":  # LISTEN
                continue
            address_hex, port_hex = local.split(":")
            raw = bytes.fromhex(address_hex)
            # /proc prints each 32-bit word in host (little-endian) order.
            words = [raw[i : i + 4][::-1] for i in range(0, width, 4)]
            packed = b"".join(words)
            family = socket.AF_INET if width == 4 else socket.AF_INET6
            found.setdefault(int(port_hex, 16), set()).add(socket.inet_ntop(family, packed))
    return found


def test_every_process_listens_on_loopback_only(platform: Platform) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp on this system")
    sockets = listening_sockets()
    ports = {
        f"{name}:{role}": port
        for name, roles in platform.ports.items()
        for role, port in roles.items()
    }
    assert len(ports) >= 12
    for what, port in ports.items():
        addresses = sockets.get(port)
        assert addresses, f"{what} ({port}) is not listening"
        assert addresses <= LOOPBACK, f"{what} ({port}) listens on {addresses}"


def outward_address() -> str | None:
    """This machine's address on its default route, if it has one (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address


def test_no_process_answers_on_the_machines_other_address(platform: Platform) -> None:
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    for name, roles in platform.ports.items():
        for role, port in roles.items():
            with pytest.raises(OSError):
                socket.create_connection((address, port), timeout=1).close()
                pytest.fail(f"{name}:{role} answers on {address}:{port}")
