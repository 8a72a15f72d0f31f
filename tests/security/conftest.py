"""Security tests: attacks on the whole platform as real processes, started once for this
folder in a temporary home, configured as an operator would (a key secret of its own)
plus a few limits lowered so that a test reaches them in a few requests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from bazaar.runner.platform import Platform, StartupError
from bazaar.runner.ports import free_ports

from .support import SecurityPlatform

START_TIMEOUT = 90.0


@pytest.fixture(scope="package")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecurityPlatform]:
    key_secret = secrets.token_urlsafe(32)
    env = {
        "BAZAAR_AUTH_KEY_SECRET": key_secret,
        # A rotated-in key signs after 6 s: longer than a verifier's 5 s refresh interval.
        "BAZAAR_AUTH_KEY_ACTIVATION_SECONDS": "6",
        # Reached in a few requests; the other limits keep their defaults.
        "BAZAAR_SIGNUP_RATE_PER_ADDRESS": "5/minute",
    }
    home = tmp_path_factory.mktemp("bazaar-security") / "home"
    platform = Platform(home, free_ports(1)[0], extra_env=env)
    try:
        platform.start(timeout=START_TIMEOUT)
    except StartupError as exc:
        pytest.fail(f"the platform did not start (home {home}):\n{exc}", pytrace=False)
    yield SecurityPlatform(platform, key_secret)
    platform.stop()


@pytest.fixture
def platform(secure: SecurityPlatform) -> Platform:
    return secure.platform


@pytest.fixture
def api(secure: SecurityPlatform) -> Iterator[httpx.Client]:
    """The public API through the gateway, as one client address of its own: the gateway
    is on loopback, a trusted proxy, so auth believes the X-Forwarded-For sent here."""
    headers = {"X-Forwarded-For": secure.new_address()}
    with httpx.Client(
        base_url=secure.platform.public_url, timeout=15.0, trust_env=False, headers=headers
    ) as client:
        yield client
