"""The service layer: `AuthService`, one method per use case, each in short units of work.
Password hashing is slow on purpose, so it always runs outside a transaction."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bazaar.platform.flaskapp import SyncDatabase
from bazaar.platform.logs import get_logger
from bazaar.platform.tokens import TokenVerifier
from bazaar.services.auth import domain, keys
from bazaar.services.auth.domain import SigningKey, User
from bazaar.services.auth.keys import Keyring
from bazaar.services.auth.passwords import Passwords
from bazaar.services.auth.store import KeyRepository, UserRepository
from bazaar.services.auth.throttling import Throttle

log = get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Signup:
    email: str
    password: str
    name: str


@dataclass(frozen=True)
class Login:
    email: str
    password: str


@dataclass(frozen=True)
class Issued:
    """A user and the access token just issued to them."""

    user: User
    access_token: str


@dataclass(frozen=True)
class Rotation:
    new_kid: str
    retired_kids: list[str]


def _now() -> datetime:
    return datetime.now(UTC)


class AuthService:
    """Accounts and signing keys: the use cases the routes, the seed and `rotate-keys`
    call, over the database, the password hasher, the keyring and the rate limits."""

    def __init__(
        self, db: SyncDatabase, passwords: Passwords, keyring: Keyring, throttle: Throttle
    ) -> None:
        self.db = db
        self.passwords = passwords
        self.keyring = keyring
        self.throttle = throttle

    def signup(
        self,
        command: Signup,
        *,
        roles: Sequence[str] = domain.CUSTOMER_ROLES,
        now: datetime | None = None,
    ) -> Issued:
        """A new account, signed in. Roles come from the caller's code, never from input."""
        now = now or _now()
        email = domain.normalize_email(command.email)
        user = User(
            id=str(uuid.uuid4()),
            email=email,
            name=command.name,
            roles=tuple(roles),
            password_hash=self.passwords.hash(command.password),
            created_at=now,
        )
        try:
            with self.db.transaction() as session:
                users = UserRepository(session)
                if users.by_email(email):
                    raise domain.EmailTaken(email)
                users.add(user)
                token = _issue(session, self.keyring, user, now)
        except IntegrityError as exc:  # another signup with this email won the race
            raise domain.EmailTaken(email) from exc
        log.info("user signed up", user_id=user.id)
        return Issued(user, token)

    def login(self, command: Login, *, now: datetime | None = None) -> Issued:
        """A token for the right password. Wrong password and unknown email fail alike, in
        about the same time."""
        now = now or _now()
        with self.db.reading() as session:
            user = UserRepository(session).by_email(domain.normalize_email(command.email))
        if user is None:
            self.passwords.burn(command.password)
            log.info("login refused")
            raise domain.BadCredentials()
        if not self.passwords.verify(user.password_hash, command.password):
            log.info("login refused", user_id=user.id)
            raise domain.BadCredentials()
        new_hash = (
            self.passwords.hash(command.password)
            if self.passwords.needs_rehash(user.password_hash)
            else None
        )
        with self.db.transaction() as session:
            if new_hash:  # hashed with older parameters: upgrade while the password is at hand
                UserRepository(session).set_password_hash(user.id, new_hash)
            token = _issue(session, self.keyring, user, now)
        log.info("user logged in", user_id=user.id, rehashed=bool(new_hash))
        return Issued(user, token)

    def authenticate(self, token: str) -> User:
        """The user a bearer token names, checked exactly as every other service checks it:
        the platform's verifier against this service's own published keys."""
        verifier = TokenVerifier(jwks=self.jwks())
        principal = _run(verifier.verify(token))
        with self.db.reading() as session:
            user = UserRepository(session).by_id(principal.user_id)
        if user is None:
            raise domain.UnknownUser(principal.user_id)
        return user

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        with self.db.reading() as session:
            active = KeyRepository(session).active()
        return {"keys": [self.keyring.public_jwk(key) for key in active]}

    def ensure_signing_key(self, *, now: datetime | None = None) -> SigningKey:
        """The key that signs now; made on the very first start. Keys stored before keys
        were encrypted are encrypted now; a key that does not open raises KeyLocked."""
        with self.db.transaction() as session:
            repository = KeyRepository(session)
            for key in repository.active():
                private = self.keyring.open(key.private_key_pem)
                if not self.keyring.is_sealed(key.private_key_pem):
                    repository.replace_pem(key.kid, self.keyring.seal(private))
                    log.info("signing key encrypted at rest", kid=key.kid)
            return _signer(session, self.keyring, now or _now())

    def rotate_keys(self, *, now: datetime | None = None) -> Rotation:
        """Publish a new key, which signs once it has been published for the keyring's
        activation time; keep the previous one published until every token it signed has
        expired, and retire keys past that point."""
        now = now or _now()
        with self.db.transaction() as session:
            repository = KeyRepository(session)
            new_key = self.keyring.new_key(now)
            repository.add(new_key)
            candidates = [new_key, *repository.active()]
            activation = self.keyring.activation
            retired = [k.kid for k in domain.retirable_keys(candidates, now, activation)]
            repository.retire(retired)
        log.info("signing keys rotated", kid=new_key.kid, retired=retired)
        return Rotation(new_key.kid, retired)

    def seed_admins(
        self, admins: Sequence[Signup], *, now: datetime | None = None
    ) -> tuple[int, int]:
        """Create the admins that do not exist yet (idempotent): (created, already there)."""
        created = present = 0
        for admin in admins:
            with self.db.reading() as session:
                exists = UserRepository(session).by_email(domain.normalize_email(admin.email))
            if exists:
                present += 1
                continue
            try:
                self.signup(admin, roles=domain.ADMIN_ROLES, now=now)
                created += 1
            except domain.EmailTaken:
                present += 1
        return created, present


def _signer(session: Session, keyring: Keyring, now: datetime) -> SigningKey:
    repository = KeyRepository(session)
    key = domain.current_signer(repository.active(), now, keyring.activation)
    if key is None:
        key = keyring.new_key(now)
        repository.add(key)
        log.info("signing key created", kid=key.kid)
    return key


def _issue(session: Session, keyring: Keyring, user: User, now: datetime) -> str:
    claims = domain.access_token_claims(user, now, keys.new_jti())
    return keyring.sign(claims, _signer(session, keyring, now))


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    # The platform's verifier is async; a WSGI thread has no event loop, so it gets a
    # short-lived one (and a caller already inside a loop, a test, gets a thread).
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
