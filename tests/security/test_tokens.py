"""RFC 8725 on the real platform: every forged, stale or misdirected token is a 401
problem at every service that verifies tokens (auth, cart, order, through the gateway);
keys rotate through the JWKS without a token being refused; a flood of unknown key ids
costs the auth service one JWKS fetch per refresh interval."""

from __future__ import annotations

import hashlib
import hmac
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bazaar.services.auth.store import KeyRepository
from bazaar.testing.api import ok, poll

from .support import (
    PASSWORD,
    SecurityPlatform,
    Shopper,
    assert_problem,
    b64,
    b64_json,
    claims_of,
    sign,
    sign_up,
)

pytestmark = pytest.mark.system

# One endpoint per service that verifies tokens: auth itself, cart, order (twice: the
# gateway forwards a checkout it cannot verify, the order service refuses it).
ACTIVATION_SECONDS = 6  # BAZAAR_AUTH_KEY_ACTIVATION_SECONDS of the security platform
PROTECTED = [
    ("GET", "/api/auth/me"),
    ("GET", "/api/cart"),
    ("GET", "/api/orders"),
    ("POST", "/api/checkout"),
]

Forgery = Callable[[Shopper, SecurityPlatform], str]


def _real_key(shopper: Shopper, secure: SecurityPlatform) -> tuple[str, Ed25519PrivateKey]:
    kid = jwt.get_unverified_header(shopper.token)["kid"]
    return kid, secure.signing_key(kid)


def alg_none(shopper: Shopper, secure: SecurityPlatform) -> str:
    kid = jwt.get_unverified_header(shopper.token)["kid"]
    admin = {**claims_of(shopper.token), "roles": ["customer", "admin"]}
    return b64_json({"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + b64_json(admin) + "."


def hs256_with_the_public_key(shopper: Shopper, secure: SecurityPlatform) -> str:
    """The algorithm-confusion attack: HMAC keyed with the (public) verification key."""
    kid = jwt.get_unverified_header(shopper.token)["kid"]
    jwks = httpx.get(f"{secure.platform.url('auth')}/.well-known/jwks.json").json()
    public = next(k for k in jwks["keys"] if k["kid"] == kid)
    secret = public["x"].encode()
    signing_input = (
        b64_json({"alg": "HS256", "typ": "at+jwt", "kid": kid})
        + "."
        + b64_json(claims_of(shopper.token))
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def unknown_kid(shopper: Shopper, secure: SecurityPlatform) -> str:
    return sign(claims_of(shopper.token), Ed25519PrivateKey.generate(), kid=uuid.uuid4().hex)


def real_kid_foreign_key(shopper: Shopper, secure: SecurityPlatform) -> str:
    kid = jwt.get_unverified_header(shopper.token)["kid"]
    return sign(claims_of(shopper.token), Ed25519PrivateKey.generate(), kid=kid)


def _resigned(**changes: object) -> Forgery:
    """Signed with the auth service's real key: only the changed claim is wrong."""

    def forge(shopper: Shopper, secure: SecurityPlatform) -> str:
        kid, key = _real_key(shopper, secure)
        claims = {**claims_of(shopper.token), **changes}
        return sign({k: v for k, v in claims.items() if v is not None}, key, kid=kid)

    return forge


NOW = int(time.time())
expired = _resigned(iat=NOW - 3600, nbf=NOW - 3600, exp=NOW - 1800)
not_yet_valid = _resigned(iat=NOW + 3600, nbf=NOW + 3600, exp=NOW + 7200)
wrong_audience = _resigned(aud="another-api")
wrong_issuer = _resigned(iss="https://evil.example")
without_expiry = _resigned(exp=None)


def tampered_payload(shopper: Shopper, secure: SecurityPlatform) -> str:
    header, _, signature = shopper.token.split(".")
    admin = {**claims_of(shopper.token), "roles": ["customer", "admin"]}
    return header + "." + b64_json(admin) + "." + signature


def not_an_access_token(shopper: Shopper, secure: SecurityPlatform) -> str:
    kid, key = _real_key(shopper, secure)
    return sign(claims_of(shopper.token), key, kid=kid, typ="JWT")


def garbage(shopper: Shopper, secure: SecurityPlatform) -> str:
    return "not-a.jwt-at.all"


ATTACKS: dict[str, Forgery] = {
    "alg none": alg_none,
    "HS256 keyed with the public key": hs256_with_the_public_key,
    "unknown kid": unknown_kid,
    "real kid, foreign key": real_kid_foreign_key,
    "expired": expired,
    "not yet valid": not_yet_valid,
    "wrong audience": wrong_audience,
    "wrong issuer": wrong_issuer,
    "no exp claim": without_expiry,
    "tampered payload (roles: admin)": tampered_payload,
    "typ is not at+jwt": not_an_access_token,
    "garbage": garbage,
}


@pytest.fixture(scope="module")
def victim(secure: SecurityPlatform) -> Shopper:
    with httpx.Client(base_url=secure.platform.public_url, trust_env=False, timeout=15) as api:
        return sign_up(api)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_forged_or_stale_token_is_a_401_problem_everywhere(
    attack: str, victim: Shopper, secure: SecurityPlatform, api: httpx.Client
) -> None:
    forged = ATTACKS[attack](victim, secure)
    for method, path in PROTECTED:
        answer = api.request(method, path, headers={"Authorization": f"Bearer {forged}"})
        problem = assert_problem(answer, 401)
        assert answer.headers.get("www-authenticate", "").startswith("Bearer"), path
        assert victim.email not in problem["detail"]
    # The genuine token still works: the refusals were about the forgeries.
    assert ok(api.get("/api/auth/me", headers=victim.headers))["email"] == victim.email


def test_a_token_of_a_withdrawn_key_is_refused(secure: SecurityPlatform, api: httpx.Client) -> None:
    """An operator deletes a key (it leaked): what it signed stops verifying."""
    shopper = sign_up(api)
    keyring = secure.keyring()
    # Older than the signing key, so auth never picks it to sign.
    stored = keyring.new_key(datetime(2000, 1, 1, tzinfo=UTC))
    leaked = keyring.open(stored.private_key_pem)
    with secure.auth_database() as db:
        with db.transaction() as session:
            KeyRepository(session).add(stored)
        token = sign(claims_of(shopper.token), leaked, kid=stored.kid)
        headers = {"Authorization": f"Bearer {token}"}
        assert ok(api.get("/api/auth/me", headers=headers))["email"] == shopper.email
        with db.transaction() as session:
            KeyRepository(session).retire([stored.kid])
    for method, path in PROTECTED:
        assert_problem(api.request(method, path, headers=headers), 401)


def jwks_fetches(secure: SecurityPlatform) -> float:
    metrics = httpx.get(f"{secure.platform.url('auth')}/metrics", timeout=5).text
    pattern = re.compile(
        r'^bazaar_http_requests_total\{[^}]*route="/\.well-known/jwks\.json"[^}]*\} (\S+)$', re.M
    )
    return sum(float(value) for value in pattern.findall(metrics))


def test_a_flood_of_unknown_kids_costs_one_jwks_fetch_per_interval(
    secure: SecurityPlatform, api: httpx.Client, victim: Shopper
) -> None:
    forged = [unknown_kid(victim, secure) for _ in range(60)]
    before = jwks_fetches(secure)
    started = time.monotonic()
    for token in forged:
        assert_problem(api.get("/api/cart", headers={"Authorization": f"Bearer {token}"}), 401)
    elapsed = time.monotonic() - started
    fetched = jwks_fetches(secure) - before
    # The cart service's verifier refreshes at most once per 5 s interval (none at all if
    # an earlier test's unknown kid made it refresh less than 5 s ago).
    assert fetched <= 1 + int(elapsed // 5), (fetched, elapsed)


def test_bazaar_keys_rotate_publishes_a_key_that_signs_without_breaking_a_session(
    secure: SecurityPlatform, api: httpx.Client
) -> None:
    shopper = sign_up(api)
    old_kid = jwt.get_unverified_header(shopper.token)["kid"]
    home = str(secure.platform.home.root)
    rotated = subprocess.run(
        [sys.executable, "-m", "bazaar.runner.cli", "--home", home, "keys", "rotate"],
        env=secure.platform.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rotated.returncode == 0, rotated.stderr
    new_kid = re.search(r"new signing key (\S+);", rotated.stdout)
    assert new_kid, rotated.stdout
    new_kid_value = new_kid.group(1)

    jwks = ok(api.get(f"{secure.platform.url('auth')}/.well-known/jwks.json"))
    assert {old_kid, new_kid_value} <= {key["kid"] for key in jwks["keys"]}
    assert all("d" not in key for key in jwks["keys"])

    def login() -> dict[str, Any]:
        body: dict[str, Any] = ok(
            api.post("/api/auth/login", json={"email": shopper.email, "password": PASSWORD})
        )
        return body

    # Published first; it signs once it is ACTIVATION old, so every verifier can have
    # fetched it. (Logins are few and slow: the account's login limit is 10 a minute.)
    assert jwt.get_unverified_header(login()["access_token"])["kid"] == old_kid
    time.sleep(ACTIVATION_SECONDS)
    fresh_login = poll(
        login,
        lambda body: jwt.get_unverified_header(body["access_token"])["kid"] == new_kid_value,
        timeout=10,
        interval=2.0,
        what="a token of the new key",
    )
    fresh = {"Authorization": f"Bearer {fresh_login['access_token']}"}
    for method, path in [("GET", "/api/auth/me"), ("GET", "/api/cart"), ("GET", "/api/orders")]:
        ok(api.request(method, path, headers=fresh))  # no verifier meets an unknown kid
        ok(api.request(method, path, headers=shopper.headers))  # the old token lives on
    stored = {key.kid: key.private_key_pem for key in secure.active_keys()}
    assert stored[new_kid_value].startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(stored[new_kid_value].encode(), password=None)
