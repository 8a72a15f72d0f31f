"""Password hashing with argon2id (argon2-cffi's recommended parameters, RFC 9106)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    """Hashes and checks passwords. Tests pass a cheaper `PasswordHasher`; production
    uses the library's defaults, and hashes made with older parameters are upgraded at
    the next successful login (`needs_rehash`)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Made up front, so the first unknown-email login is not the slow one.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def burn(self, password: str) -> None:
        """Do the work of a real check against a hash nobody has, so that a login for an
        unknown email takes as long as one with a wrong password."""
        self.verify(self._dummy_hash, password)
