from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from bazaar.platform.flaskapp import SyncDatabase
from bazaar.platform.migrations import migrate
from bazaar.services.auth.bootstrap import MIGRATIONS, build_app
from bazaar.services.auth.passwords import Passwords
from bazaar.services.auth.settings import AuthSettings

PASSWORD = "correct horse"


def cheap_passwords() -> Passwords:
    # Still argon2id, with parameters small enough for a fast suite.
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def settings(tmp_path: Path) -> AuthSettings:
    settings = AuthSettings(home=tmp_path, environment="test")
    migrate(MIGRATIONS, settings.database_url)
    return settings


@pytest.fixture
def db(settings: AuthSettings) -> Iterator[SyncDatabase]:
    database = SyncDatabase(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def app(settings: AuthSettings, db: SyncDatabase) -> Flask:
    return build_app(settings, db=db, passwords=cheap_passwords())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


SignUp = Callable[..., dict[str, Any]]


@pytest.fixture
def sign_up(client: FlaskClient) -> SignUp:
    """Sign up (201 expected) and return the answer's body."""

    def sign_up(email: str = "alice@example.com", password: str = PASSWORD) -> dict[str, Any]:
        answer = client.post(
            "/api/auth/signup", json={"email": email, "password": password, "name": "Alice"}
        )
        data = answer.get_json()
        assert answer.status_code == 201, data
        assert isinstance(data, dict)
        return data

    return sign_up
