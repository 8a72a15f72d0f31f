"""Hostile-input tests against the real platform: every process, a real NATS JetStream,
started once for this folder (package scope: it is gone before tests/system starts its
own) in a temporary home, with rate limits far above what a fuzz run sends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from bazaar.runner.platform import Platform, StartupError
from bazaar.runner.ports import free_ports

START_TIMEOUT = 90.0
ADMIN_EMAIL = "admin@bazaar.local"
ADMIN_PASSWORD = "bazaar-admin-2026"  # the demo admin (src/bazaar/runner/demo/users.json)

# A fuzz run signs up, logs in and checks out hundreds of times a minute from one address:
# the limits that protect a real shop would turn most of its requests into 429s.
GENEROUS_LIMITS = {
    "BAZAAR_SIGNUP_RATE_PER_ADDRESS": "100000/minute",
    "BAZAAR_SIGNUP_RATE_PER_ACCOUNT": "100000/minute",
    "BAZAAR_LOGIN_RATE_PER_ADDRESS": "100000/minute",
    "BAZAAR_LOGIN_RATE_PER_ACCOUNT": "100000/minute",
    "BAZAAR_CHECKOUT_RATE": "100000/minute",
}


@pytest.fixture(scope="package")
def fuzz_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("bazaar-fuzz") / "home"
    platform = Platform(home, free_ports(1)[0], extra_env=GENEROUS_LIMITS)
    try:
        platform.start(timeout=START_TIMEOUT)
    except StartupError as exc:
        pytest.fail(f"the platform did not start (home {home}):\n{exc}", pytrace=False)
    yield platform
    platform.stop()


@dataclass(frozen=True)
class Credentials:
    """Bearer headers of a fresh customer and of the demo admin (never shown in reports)."""

    customer: dict[str, str] = field(repr=False)
    admin: dict[str, str] = field(repr=False)

    def for_tags(self, tags: list[str] | None) -> dict[str, str]:
        """The admin's token for admin operations, the customer's for the rest."""
        return self.admin if "admin" in (tags or []) else self.customer


def bearer(body: dict[str, object]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


def sign_up(api: httpx.Client) -> dict[str, str]:
    """A new customer's bearer header."""
    answer = api.post(
        "/api/auth/signup",
        json={
            "email": f"fuzz-{uuid.uuid4().hex[:12]}@example.com",
            "password": "a long fuzzing passphrase",
            "name": "Fuzz Tester",
        },
    )
    assert answer.status_code == 201, answer.text
    return bearer(answer.json())


def log_in_admin(api: httpx.Client) -> dict[str, str]:
    answer = api.post("/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert answer.status_code == 200, answer.text
    return bearer(answer.json())


@pytest.fixture(scope="package")
def public_api(fuzz_platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzz_platform.public_url, timeout=10.0, trust_env=False) as api:
        yield api


@pytest.fixture(scope="package")
def credentials(public_api: httpx.Client) -> Credentials:
    return Credentials(customer=sign_up(public_api), admin=log_in_admin(public_api))


@pytest.fixture
def fresh_customer(public_api: httpx.Client) -> dict[str, str]:
    """The bearer header of a customer signed up for this test alone."""
    return sign_up(public_api)
