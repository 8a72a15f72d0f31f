import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from bazaar.platform.config import ConfigurationError
from bazaar.platform.flaskapp import SyncDatabase, provided
from bazaar.platform.tokens import InvalidToken, TokenVerifier
from bazaar.services.auth.bootstrap import build_app, seed_file
from bazaar.services.auth.handlers import AuthService, Login
from bazaar.services.auth.passwords import Passwords
from bazaar.services.auth.settings import AuthSettings
from bazaar.services.auth.store import UserRow

PASSWORD = "correct horse"


def body(answer: TestResponse) -> dict[str, Any]:
    data = answer.get_json()
    assert isinstance(data, dict), answer.data
    return data


def stored_hash(db: SyncDatabase, email: str) -> str:
    with db.transaction() as session:
        found = session.scalar(select(UserRow.password_hash).where(UserRow.email == email))
    assert found is not None
    return found


def test_production_hashing_uses_argon2id_with_the_recommended_parameters() -> None:
    passwords = Passwords()
    hashed = passwords.hash(PASSWORD)
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert passwords.verify(hashed, PASSWORD)
    assert not passwords.verify(hashed, PASSWORD + "!")
    assert not passwords.verify("not a hash", PASSWORD)
    assert not passwords.needs_rehash(hashed)


def test_a_login_upgrades_a_hash_made_with_older_parameters(
    settings: AuthSettings, db: SyncDatabase, sign_up: Any
) -> None:
    sign_up("old@example.com")
    before = stored_hash(db, "old@example.com")
    assert "m=1024,t=1,p=1" in before
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    client = build_app(settings, db=db, passwords=stronger).test_client()
    login = {"email": "old@example.com", "password": PASSWORD}
    assert client.post("/api/auth/login", json=login).status_code == 200
    after = stored_hash(db, "old@example.com")
    assert "m=2048,t=2,p=1" in after
    assert client.post("/api/auth/login", json=login).status_code == 200
    assert stored_hash(db, "old@example.com") == after  # no second rehash
    wrong = client.post("/api/auth/login", json={**login, "password": "wrong password"})
    assert wrong.status_code == 401


def test_concurrent_signups_with_one_email_make_one_account(client: FlaskClient) -> None:
    def attempt(n: int) -> int:
        body = {"email": "race@example.com", "password": PASSWORD, "name": f"Racer {n}"}
        return client.post("/api/auth/signup", json=body).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(attempt, range(6)))
    assert statuses == [201, 409, 409, 409, 409, 409]


async def test_rotation_publishes_a_new_key_that_signs_once_it_has_matured(
    app: Flask, client: FlaskClient, db: SyncDatabase, sign_up: Any
) -> None:
    auth = provided(app, AuthService)
    old_token = sign_up("gina@example.com")["access_token"]
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    rotation = auth.rotate_keys()
    assert rotation.retired_kids == []
    jwks = body(client.get("/.well-known/jwks.json"))
    assert {key["kid"] for key in jwks["keys"]} == {old_kid, rotation.new_kid}

    login = Login("gina@example.com", PASSWORD)
    soon = auth.login(login)
    assert jwt.get_unverified_header(soon.access_token)["kid"] == old_kid  # not yet
    later = datetime.now(UTC) + auth.keyring.activation + timedelta(seconds=1)
    new_token = auth.login(login, now=later).access_token
    assert jwt.get_unverified_header(new_token)["kid"] == rotation.new_kid

    verifier = TokenVerifier(jwks=jwks)
    assert (await verifier.verify(old_token)).email == "gina@example.com"
    assert body(client.get("/api/auth/me", headers={"Authorization": f"Bearer {old_token}"}))


async def test_a_later_rotation_retires_keys_whose_tokens_have_expired(
    app: Flask, client: FlaskClient, db: SyncDatabase, sign_up: Any
) -> None:
    auth = provided(app, AuthService)
    old_token = sign_up("hank@example.com")["access_token"]
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    first = auth.rotate_keys()
    later = datetime.now(UTC) + auth.keyring.activation + timedelta(minutes=21)
    second = auth.rotate_keys(now=later)
    assert second.retired_kids == [old_kid]
    jwks = body(client.get("/.well-known/jwks.json"))
    assert {key["kid"] for key in jwks["keys"]} == {first.new_kid, second.new_kid}
    with pytest.raises(InvalidToken):
        await TokenVerifier(jwks=jwks).verify(old_token)
    assert (
        client.get("/api/auth/me", headers={"Authorization": f"Bearer {old_token}"}).status_code
        == 401
    )


def test_seeding_admins_is_idempotent(settings: AuthSettings, app: Flask, tmp_path: Path) -> None:
    file = tmp_path / "seed.json"
    admin = {"email": "Admin@Example.com", "password": "admin password", "name": "Admin"}
    file.write_text(json.dumps({"admins": [admin]}))
    cheap = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    assert (
        seed_file(settings, file, passwords=cheap) == "auth: 1 admin(s) created, 0 already present"
    )
    assert (
        seed_file(settings, file, passwords=cheap) == "auth: 0 admin(s) created, 1 already present"
    )

    login = app.test_client().post(
        "/api/auth/login", json={"email": "admin@example.com", "password": "admin password"}
    )
    assert body(login)["user"]["roles"] == ["customer", "admin"]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"admins": [{"email": "bad", "password": "admin password", "name": "A"}]}',
        '{"admins": [{"email": "a@example.com", "password": "p", "name": "A", "roles": []}]}',
        '{"users": []}',
    ],
)
def test_a_bad_seed_file_is_refused_with_its_name(
    settings: AuthSettings, tmp_path: Path, content: str
) -> None:
    file = tmp_path / "seed.json"
    file.write_text(content)
    with pytest.raises(ConfigurationError, match=r"seed\.json"):
        seed_file(settings, file)
