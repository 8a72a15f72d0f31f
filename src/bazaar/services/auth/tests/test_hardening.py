"""Attacks on the auth service itself: floods of signups and logins, spoofed client
addresses, a stolen database, a production start with the embedded secret, and timing
that would tell which emails have accounts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
import structlog
import structlog.testing
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from flask.testing import FlaskClient
from pydantic import SecretStr
from sqlalchemy import text

from bazaar.platform.config import ConfigurationError
from bazaar.platform.flaskapp import SyncDatabase
from bazaar.services.auth.bootstrap import build_app
from bazaar.services.auth.passwords import Passwords
from bazaar.services.auth.settings import EMBEDDED_KEY_SECRET, AuthSettings
from bazaar.services.auth.tests.conftest import PASSWORD, cheap_passwords

SIGNUP = "/api/auth/signup"
LOGIN = "/api/auth/login"


def assert_throttled(answer: Any) -> None:
    assert answer.status_code == 429, answer.data
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert int(answer.headers["Retry-After"]) >= 1
    assert "too many" in answer.get_json()["detail"]


def throttled_client(settings: AuthSettings, db: SyncDatabase, **rates: str) -> FlaskClient:
    """Rates per hour: a test's requests fall in one window, however loaded the machine."""
    tight = settings.model_copy(update=rates)
    return build_app(tight, db=db, passwords=cheap_passwords()).test_client()


# --- rate limits -------------------------------------------------------------------------


def test_a_signup_flood_from_one_address_is_throttled_before_any_hashing(
    settings: AuthSettings, db: SyncDatabase
) -> None:
    client = throttled_client(settings, db, signup_rate_per_address="3/hour")
    env = {"REMOTE_ADDR": "198.51.100.1"}
    for n in range(3):  # even bodies that fail validation count
        client.post(SIGNUP, json={"email": f"x{n}"}, environ_base=env)
    assert_throttled(client.post(SIGNUP, json={"email": "late"}, environ_base=env))
    other = {"REMOTE_ADDR": "198.51.100.2"}
    body = {"email": "ok@example.com", "password": PASSWORD, "name": "Ok"}
    assert client.post(SIGNUP, json=body, environ_base=other).status_code == 201


def test_password_guessing_on_one_account_is_throttled_from_any_address(
    settings: AuthSettings, db: SyncDatabase
) -> None:
    client = throttled_client(settings, db, login_rate_per_account="3/hour")
    body = {"email": "victim@example.com", "password": PASSWORD, "name": "Victim"}
    assert client.post(SIGNUP, json=body).status_code == 201
    for n in range(3):
        guess = {"email": "Victim@Example.com", "password": f"guess {n}!"}
        answer = client.post(LOGIN, json=guess, environ_base={"REMOTE_ADDR": f"10.0.0.{n}"})
        assert answer.status_code == 401
    right = {"email": "victim@example.com", "password": PASSWORD}
    assert_throttled(client.post(LOGIN, json=right, environ_base={"REMOTE_ADDR": "10.0.0.9"}))
    other = {"email": "nobody@example.com", "password": "whatever"}
    assert client.post(LOGIN, json=other).status_code == 401  # other accounts unaffected


def test_forwarded_for_from_an_untrusted_peer_does_not_escape_the_limit(
    settings: AuthSettings, db: SyncDatabase
) -> None:
    client = throttled_client(settings, db, login_rate_per_address="2/hour")
    attacker = {"REMOTE_ADDR": "203.0.113.66"}
    for n in range(2):
        spoofed = {"X-Forwarded-For": f"192.0.2.{n}"}
        client.post(LOGIN, json={}, environ_base=attacker, headers=spoofed)
    fresh_lie = {"X-Forwarded-For": "192.0.2.200"}
    assert_throttled(client.post(LOGIN, json={}, environ_base=attacker, headers=fresh_lie))


def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    settings: AuthSettings, db: SyncDatabase
) -> None:
    client = throttled_client(
        settings, db, login_rate_per_address="2/hour", trusted_proxies="10.1.0.0/16"
    )
    proxy = {"REMOTE_ADDR": "10.1.2.3"}
    for _ in range(2):
        client.post(LOGIN, json={}, environ_base=proxy, headers={"X-Forwarded-For": "192.0.2.1"})
    blocked = client.post(
        LOGIN, json={}, environ_base=proxy, headers={"X-Forwarded-For": "192.0.2.1"}
    )
    assert_throttled(blocked)
    other = client.post(
        LOGIN, json={}, environ_base=proxy, headers={"X-Forwarded-For": "192.0.2.2"}
    )
    assert other.status_code == 422  # another client behind the same proxy: not throttled


def test_rates_must_be_rates() -> None:
    with pytest.raises(ConfigurationError, match="BAZAAR_LOGIN_RATE_PER_ACCOUNT"):
        AuthSettings.load(login_rate_per_account="lots")
    with pytest.raises(ConfigurationError, match="BAZAAR_TRUSTED_PROXIES"):
        AuthSettings.load(trusted_proxies="the gateway")


# --- login timing ------------------------------------------------------------------------


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verifications += 1
        return super().verify(hash, password)


def test_an_unknown_email_costs_exactly_the_argon2_work_of_a_wrong_password(
    settings: AuthSettings, db: SyncDatabase
) -> None:
    hasher = CountingHasher()
    client = build_app(settings, db=db, passwords=Passwords(hasher)).test_client()
    body = {"email": "known@example.com", "password": PASSWORD, "name": "Known"}
    assert client.post(SIGNUP, json=body).status_code == 201

    hasher.verifications = 0
    wrong = client.post(LOGIN, json={"email": "known@example.com", "password": "wrong one"})
    wrong_password_work = hasher.verifications
    hasher.verifications = 0
    unknown = client.post(LOGIN, json={"email": "ghost@example.com", "password": "wrong one"})

    assert wrong_password_work == hasher.verifications == 1
    assert (wrong.status_code, wrong.get_json()["detail"]) == (
        unknown.status_code,
        unknown.get_json()["detail"],
    )


# --- signing keys at rest ----------------------------------------------------------------


def stored_pems(settings: AuthSettings) -> list[str]:
    # Straight from the database, past the service's code.
    database = SyncDatabase(settings.database_url)
    try:
        with database.reading() as session:
            return list(session.scalars(text("SELECT private_key_pem FROM signing_keys")))
    finally:
        database.dispose()


def test_signing_keys_are_stored_encrypted(settings: AuthSettings, client: FlaskClient) -> None:
    pems = stored_pems(settings)
    assert pems and all(p.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----") for p in pems)
    with pytest.raises(TypeError):  # a copy of the database alone signs nothing
        serialization.load_pem_private_key(pems[0].encode(), password=None)
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(pems[0].encode(), password=b"a guess")


def test_a_key_stored_in_plain_text_is_encrypted_at_the_next_start(
    settings: AuthSettings, db: SyncDatabase, client: FlaskClient
) -> None:
    kid = client.get("/.well-known/jwks.json").get_json()["keys"][0]["kid"]
    sealed = stored_pems(settings)[0]
    secret = settings.auth_key_secret.get_secret_value().encode()
    private = serialization.load_pem_private_key(sealed.encode(), password=secret)
    plain = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with db.transaction() as session:
        session.execute(text("UPDATE signing_keys SET private_key_pem = :pem"), {"pem": plain})

    restarted = build_app(settings, db=db, passwords=cheap_passwords()).test_client()

    assert stored_pems(settings)[0].startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert restarted.get("/.well-known/jwks.json").get_json()["keys"][0]["kid"] == kid


def test_keys_stored_with_another_secret_stop_the_start_naming_the_variable(
    settings: AuthSettings, db: SyncDatabase, client: FlaskClient
) -> None:
    other = settings.model_copy(update={"auth_key_secret": SecretStr("another secret entirely")})
    with pytest.raises(ConfigurationError, match="BAZAAR_AUTH_KEY_SECRET"):
        build_app(other, db=db)


# --- production refuses the embedded secret ---------------------------------------------


@pytest.mark.parametrize("secret", [None, "", EMBEDDED_KEY_SECRET, "short"])
def test_production_settings_refuse_a_missing_or_default_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str | None
) -> None:
    monkeypatch.setenv("BAZAAR_ENVIRONMENT", "production")
    if secret is None:
        monkeypatch.delenv("BAZAAR_AUTH_KEY_SECRET", raising=False)
    else:
        monkeypatch.setenv("BAZAAR_AUTH_KEY_SECRET", secret)
    with pytest.raises(ConfigurationError, match="BAZAAR_AUTH_KEY_SECRET") as refused:
        AuthSettings.load()
    if secret:
        assert secret not in str(refused.value)  # not even a bad secret reaches a log


def test_production_accepts_a_secret_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAZAAR_ENVIRONMENT", "production")
    monkeypatch.setenv("BAZAAR_AUTH_KEY_SECRET", "k" * 32)
    settings = AuthSettings.load()
    assert isinstance(settings, AuthSettings)
    assert not settings.uses_embedded_key_secret


@pytest.mark.parametrize("command", ["serve", "rotate-keys"])
def test_a_production_process_without_a_secret_exits_naming_the_variable(
    tmp_path: Path, command: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BAZAAR_AUTH_KEY_SECRET"}
    env.update({"BAZAAR_HOME": str(tmp_path), "BAZAAR_ENVIRONMENT": "production"})
    result = subprocess.run(
        [sys.executable, "-m", "bazaar.services.auth", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "BAZAAR_AUTH_KEY_SECRET" in result.stderr
    assert not (tmp_path / "auth.db").exists()  # refused before touching anything


def test_the_embedded_default_secret_is_used_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bazaar.services.auth import bootstrap

    # Captured from structlog itself, by a logger made inside the capture: where the
    # module's own logger writes depends on which test configured logging first.
    with structlog.testing.capture_logs() as logs:
        monkeypatch.setattr(bootstrap, "log", structlog.get_logger(bootstrap.__name__))
        bootstrap.keyring(AuthSettings(home=tmp_path, environment="embedded"))
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert any("BAZAAR_AUTH_KEY_SECRET is not set" in w for w in warnings), logs
