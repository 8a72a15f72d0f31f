"""The composition root: settings in, a ready app out. Tests pass their own `db` and a
cheaper `passwords`.

    python -m bazaar.services.auth [serve]       waitress on BAZAAR_HOST:BAZAAR_PORT
    python -m bazaar.services.auth migrate       the database to the latest revision
    python -m bazaar.services.auth seed FILE     {"admins": [{email, password, name}]}
    python -m bazaar.services.auth rotate-keys   a new signing key; retire expired ones
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from flask import Flask
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from bazaar.platform.cli import run_service_cli
from bazaar.platform.config import ConfigurationError
from bazaar.platform.flaskapp import SyncDatabase, create_flask_app, run_wsgi
from bazaar.platform.logs import get_logger
from bazaar.platform.ratelimit import RateLimiter
from bazaar.platform.serving import start_process
from bazaar.services.auth.app import blueprint
from bazaar.services.auth.handlers import AuthService, Signup
from bazaar.services.auth.keys import KeyLocked, Keyring
from bazaar.services.auth.passwords import Passwords
from bazaar.services.auth.schemas import SeedFile
from bazaar.services.auth.settings import AuthSettings
from bazaar.services.auth.throttling import Throttle

MIGRATIONS = Path(__file__).parent / "migrations"

log = get_logger(__name__)


def build_service(
    settings: AuthSettings,
    *,
    db: SyncDatabase | None = None,
    passwords: Passwords | None = None,
    limiter: RateLimiter | None = None,
) -> AuthService:
    return AuthService(
        db or SyncDatabase(settings.database_url),
        passwords or Passwords(),
        keyring(settings),
        Throttle.from_settings(settings, limiter),
    )


def build_app(
    settings: AuthSettings,
    *,
    db: SyncDatabase | None = None,
    passwords: Passwords | None = None,
    limiter: RateLimiter | None = None,
) -> Flask:
    auth = build_service(settings, db=db, passwords=passwords, limiter=limiter)
    _ensure_signing_key(auth)

    def signing_keys() -> bool:
        return bool(auth.jwks()["keys"])

    app = create_flask_app(
        "auth", provides=auth, readiness=[signing_keys], max_body_bytes=settings.max_body_bytes
    )
    app.register_blueprint(blueprint)
    return app


def keyring(settings: AuthSettings) -> Keyring:
    if settings.uses_embedded_key_secret and settings.environment != "test":
        log.warning(
            "BAZAAR_AUTH_KEY_SECRET is not set: the signing keys are encrypted with the "
            "embedded default, which is public; set a secret of your own outside a laptop"
        )
    return Keyring(
        settings.auth_key_secret.get_secret_value(),
        timedelta(seconds=settings.auth_key_activation_seconds),
    )


def _ensure_signing_key(auth: AuthService) -> None:
    try:
        auth.ensure_signing_key()
    except DBAPIError as exc:
        raise ConfigurationError(
            f"auth: cannot prepare a signing key ({type(exc.orig).__name__}: {exc.orig}); "
            "is the database reachable and migrated (`python -m bazaar.services.auth migrate`)?"
        ) from None
    except KeyLocked:
        raise ConfigurationError(
            "auth: the stored signing keys do not open with BAZAAR_AUTH_KEY_SECRET; "
            "set the secret they were stored with"
        ) from None


def serve(settings: AuthSettings) -> None:
    """Auth is the one WSGI service: waitress with its own thread count, and the database
    closed once the last request is answered."""
    database = SyncDatabase(settings.database_url)
    app = build_app(settings, db=database)
    run_wsgi(app, settings, threads=settings.http_threads, on_stop=database.dispose)


def seed_file(settings: AuthSettings, file: Path, *, passwords: Passwords | None = None) -> str:
    """Create the admins listed in `file` that do not exist yet."""
    try:
        seed = SeedFile.model_validate(json.loads(file.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as exc:
        raise ConfigurationError(f"auth: cannot seed from {file}: {exc}") from None
    auth = build_service(settings, passwords=passwords)
    try:
        admins = [Signup(a.email, a.password, a.name) for a in seed.admins]
        created, present = auth.seed_admins(admins)
    finally:
        auth.db.dispose()
    return f"auth: {created} admin(s) created, {present} already present"


async def seed(settings: AuthSettings, file: Path) -> str:
    return await asyncio.to_thread(seed_file, settings, file)


def rotate_keys(settings: AuthSettings) -> str:
    auth = build_service(settings)
    try:
        rotation = auth.rotate_keys()
    finally:
        auth.db.dispose()
    retired = ", ".join(rotation.retired_kids) or "none"
    return f"auth: new signing key {rotation.new_kid}; retired: {retired}"


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["rotate-keys"]:
        # The shared CLI knows serve, migrate and seed; this one is auth's own.
        try:
            settings = AuthSettings.load()
        except ConfigurationError as exc:
            print(exc, file=sys.stderr)
            raise SystemExit(2) from None
        start_process(settings)
        try:
            print(rotate_keys(settings))
        except KeyLocked as exc:
            print(f"auth: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        return
    run_service_cli(AuthSettings, serve, migrations_dir=MIGRATIONS, seed=seed, argv=args)
