"""Hostile configuration: a bad value stops each service process at start-up, before it
opens anything, with exit code 2 and a message that names every bad variable (and never
echoes a value that may hold a password)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Wrong for every service: not a port, not a level, a broker and a database nobody has.
COMMON = {
    "BAZAAR_PORT": "abc",
    "BAZAAR_LOG_LEVEL": "LOUD",
    "BAZAAR_LOG_FORMAT": "xml",
    "BAZAAR_ENVIRONMENT": "staging",
    "BAZAAR_BROKER_URL": "kafka://guest:hunter2@kafka:9092",  # no Kafka server runs in CI
    "BAZAAR_DATABASE_URL": "postgres+nodriver://bazaar:hunter2@db/bazaar",
    "BAZAAR_JWKS_URL": "auth:8001/.well-known/jwks.json",
    "BAZAAR_MAX_BODY_BYTES": "-1",
}
# And one of each service's own settings.
OWN = {
    "gateway": {
        "BAZAAR_CATALOG_URL": "catalog:8002",
        "BAZAAR_CHECKOUT_RATE": "often",
        "BAZAAR_RATE_LIMIT_URL": "memcache://cache",
    },
    "auth": {
        "BAZAAR_SIGNUP_RATE_PER_ADDRESS": "lots",
        "BAZAAR_TRUSTED_PROXIES": "everyone",
        "BAZAAR_RATE_LIMIT_URL": "nowhere",
    },
    "catalog": {},
    "cart": {"BAZAAR_CART_QUOTE_TIMEOUT_SECONDS": "soon"},
    "inventory": {"BAZAAR_OPS_PORT": "70000"},
    "order": {"BAZAAR_PAYMENT_URL": "payment:8006", "BAZAAR_SAGA_CONCURRENCY": "0"},
    "payment": {"BAZAAR_PAYMENT_MODE": "explode"},
    "notification": {"BAZAAR_SMTP_PORT": "smtp"},
}


@pytest.mark.parametrize("service", sorted(OWN))
def test_a_bad_setting_stops_the_service_at_start_up_naming_the_variable(
    service: str, tmp_path: Path
) -> None:
    bad = {**COMMON, **OWN[service]}
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAZAAR_")}
    env.update(bad, BAZAAR_HOME=str(tmp_path))

    started = subprocess.run(
        [sys.executable, "-m", f"bazaar.services.{service}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert started.returncode == 2, started.stderr
    assert f"invalid configuration for the {service} service" in started.stderr
    named = {variable for variable in bad if variable in started.stderr}
    assert named == set(bad), f"not named: {set(bad) - named}\n{started.stderr}"
    assert "hunter2" not in started.stderr + started.stdout
    assert "Traceback" not in started.stderr
    assert not list(tmp_path.iterdir()), "it created files before giving up"
