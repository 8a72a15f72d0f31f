"""What the security tests share: the platform under attack, shoppers, the problem shape
every refusal must have, and the auth service's real signing key (read from its database
with the operator's secret, to show that a correctly signed but wrong token is refused
for the claim that is wrong, not for its signature)."""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bazaar.platform.flaskapp import SyncDatabase
from bazaar.runner.demo import admin_login
from bazaar.runner.platform import Platform
from bazaar.services.auth.domain import SigningKey
from bazaar.services.auth.keys import Keyring
from bazaar.services.auth.store import KeyRepository
from bazaar.testing.api import ok

PROBLEM_JSON = "application/problem+json"
PASSWORD = "a long passphrase 42"


@dataclass
class SecurityPlatform:
    platform: Platform
    key_secret: str
    _addresses: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_address(self) -> str:
        """A client address no other test uses (TEST-NET-3 and onwards)."""
        n = next(self._addresses)
        return f"203.0.{113 + n // 250}.{n % 250 + 1}"

    @contextmanager
    def auth_database(self) -> Iterator[SyncDatabase]:
        db = SyncDatabase(f"sqlite:///{self.platform.home.root / 'auth.db'}")
        try:
            yield db
        finally:
            db.dispose()

    def keyring(self) -> Keyring:
        return Keyring(self.key_secret)

    def signing_key(self, kid: str) -> Ed25519PrivateKey:
        """The private key of a published kid, decrypted with the operator's secret."""
        with self.auth_database() as db, db.reading() as session:
            stored = {key.kid: key for key in KeyRepository(session).active()}
        return self.keyring().open(stored[kid].private_key_pem)

    def active_keys(self) -> list[SigningKey]:
        with self.auth_database() as db, db.reading() as session:
            return list(KeyRepository(session).active())


@dataclass(frozen=True)
class Shopper:
    email: str
    password: str
    token: str
    user: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def sign_up(api: httpx.Client, password: str = PASSWORD) -> Shopper:
    email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
    body = ok(
        api.post("/api/auth/signup", json={"email": email, "password": password, "name": "Sam"}),
        201,
    )
    return Shopper(email, password, body["access_token"], body["user"])


def admin_headers(api: httpx.Client) -> dict[str, str]:
    email, password = admin_login()
    body = ok(api.post("/api/auth/login", json={"email": email, "password": password}))
    return {"Authorization": f"Bearer {body['access_token']}"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The refusal every attack must meet: this status, as RFC 9457 problem+json."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: expected {status}, got "
        f"{response.status_code} {response.text[:300]}"
    )
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


# --- tokens ------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64_json(data: dict[str, Any]) -> str:
    return b64(json.dumps(data).encode())


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def sign(claims: dict[str, Any], key: Ed25519PrivateKey, **header: Any) -> str:
    headers = {"typ": "at+jwt", **header}
    return jwt.encode(claims, key, algorithm="EdDSA", headers=headers)
