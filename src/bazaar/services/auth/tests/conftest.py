from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from bazaar.platform.flaskapp import SyncDatabase
from bazaar.services.auth.bootstrap import MIGRATIONS, build_app
from bazaar.services.auth.passwords import Passwords
from bazaar.services.auth.settings import AuthSettings
from bazaar.testing import DATABASE_BACKENDS, provisioned_database

PASSWORD = "correct horse"


def cheap_passwords() -> Passwords:
    # Still argon2id, with parameters small enough for a fast suite.
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(params=DATABASE_BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Every database test runs on SQLite and on PostgreSQL (there through psycopg: the
    service's synchronous engine reads the same URL, see `sync_url`)."""
    async with provisioned_database(request.param, MIGRATIONS, tmp_path, "auth") as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> AuthSettings:
    return AuthSettings(home=tmp_path, environment="test", database_url=database_url)


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
