"""OWASP API8 / RFC 8725 hygiene: the whole checkout story (and its usual mistakes: a
wrong password, a too-short one, a forged token) runs on the real platform while every
process logs to <home>/logs/*.log; then no password, access token or signing key (as
stored, as PEM, as the JWK "d"), nor the key secret, appears in any log."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from bazaar.runner.demo import admin_login
from bazaar.testing.api import ok, poll

from .support import SecurityPlatform, assert_problem

pytestmark = pytest.mark.system


def pem_body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM: any one of them in a log is a leak."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def key_material(secure: SecurityPlatform) -> list[str]:
    found = [secure.key_secret]
    for stored in secure.active_keys():
        found += pem_body_lines(stored.private_key_pem)
        private = secure.keyring().open(stored.private_key_pem)
        plain_pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        found += pem_body_lines(plain_pem)
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        found += [base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), raw.hex()]
    return found


def token_parts(token: str) -> list[str]:
    """The token, and its signature alone (enough to replay it with the visible parts)."""
    return [token, token.rsplit(".", 1)[1]]


def test_the_checkout_story_leaves_no_secret_in_any_log(
    secure: SecurityPlatform, api: httpx.Client
) -> None:
    platform = secure.platform
    password = f"pw-{uuid.uuid4().hex}"
    wrong_password = f"wrong-{uuid.uuid4().hex}"
    short_password = uuid.uuid4().hex[:7]
    email = f"story-{uuid.uuid4().hex[:10]}@example.com"
    admin_email, admin_password = admin_login()
    tokens: list[str] = []

    # The mistakes first: each one's secret goes through as many code paths as it can.
    short = {"email": email, "password": short_password, "name": "Sam"}
    assert_problem(api.post("/api/auth/signup", json=short), 422)
    signed_up = ok(
        api.post("/api/auth/signup", json={"email": email, "password": password, "name": "Sam"}),
        201,
    )
    tokens.append(signed_up["access_token"])
    wrong = {"email": email, "password": wrong_password}
    assert_problem(api.post("/api/auth/login", json=wrong), 401)
    logged_in = ok(api.post("/api/auth/login", json={"email": email, "password": password}))
    tokens.append(logged_in["access_token"])
    auth = {"Authorization": f"Bearer {logged_in['access_token']}"}
    tampered = logged_in["access_token"][:-4] + "AAAA"
    assert_problem(api.get("/api/cart", headers={"Authorization": f"Bearer {tampered}"}), 401)

    # The story: browse, fill the cart, check out, get paid, get mail.
    product = max(ok(api.get("/api/products"))["items"], key=lambda p: p["stock"])
    ok(api.post("/api/cart/items", json={"product_id": product["id"], "qty": 1}, headers=auth))
    created = ok(api.post("/api/checkout", headers=auth), 201)
    order = poll(
        lambda: ok(api.get(f"/api/orders/{created['order_id']}", headers=auth)),
        lambda o: o["status"] in {"paid", "cancelled"},
        timeout=30,
        what="a final order status",
    )
    assert order["status"] == "paid", order
    poll(lambda: platform.mails_to(email), bool, timeout=15, what=f"a mail to {email}")

    # The admin and the storefront (a form post carries the password too).
    admin = ok(api.post("/api/auth/login", json={"email": admin_email, "password": admin_password}))
    tokens.append(admin["access_token"])
    store = api.post(
        "/login",
        data={"email": email, "password": password},
        headers={"Origin": platform.public_url},
    )
    assert store.status_code == 303, store.text
    tokens.append(store.cookies.get("bazaar_session") or api.cookies.get("bazaar_session") or "")
    tokens = [t for t in tokens if t]
    assert all(jwt.get_unverified_header(t)["kid"] for t in tokens)

    secrets = {
        "a password": [password, wrong_password, short_password, admin_password],
        "an access token": [part for token in tokens for part in token_parts(token)],
        "signing key material": key_material(secure),
    }
    logs = sorted(Path(platform.home.logs).glob("*.log"))
    assert {p.stem for p in logs} >= {"auth", "gateway", "cart", "order", "payment", "catalog"}
    assert any("user logged in" in p.read_text(errors="replace") for p in logs)  # they do log
    leaks = [
        f"{kind} in {log.name}"
        for log in logs
        for kind, values in secrets.items()
        if any(value in log.read_text(errors="replace") for value in values)
    ]
    assert not leaks, leaks
