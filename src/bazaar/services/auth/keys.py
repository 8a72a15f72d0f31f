"""Ed25519 signing keys: made here, kept by the store as PEM encrypted with the
`BAZAAR_AUTH_KEY_SECRET` (so a copy of the database alone signs nothing), published as
JWKs. A `Keyring` holds that secret and the rotation policy."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bazaar.services.auth.domain import SigningKey

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"
_ENCRYPTED = "-----BEGIN ENCRYPTED PRIVATE KEY-----"


class KeyLocked(Exception):
    """A stored key does not open with this secret (it was stored with another one)."""


class Keyring:
    """Encrypts, decrypts and uses signing keys. `activation` is how long a new key is
    published before it signs (see `domain.current_signer`)."""

    def __init__(self, secret: str, activation: timedelta = timedelta(0)) -> None:
        self._secret = secret.encode("utf-8")
        self.activation = activation
        self._opened: dict[str, Ed25519PrivateKey] = {}
        self._lock = threading.Lock()

    def new_key(self, created_at: datetime) -> SigningKey:
        """A fresh key, stored encrypted; its kid is its public key's thumbprint."""
        private = Ed25519PrivateKey.generate()
        pem = self.seal(private)
        return SigningKey(_thumbprint(private), pem, created_at)

    def seal(self, private: Ed25519PrivateKey) -> str:
        return private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._secret),
        ).decode("ascii")

    def open(self, pem: str) -> Ed25519PrivateKey:
        """The private key of a stored PEM (decrypted once, then kept in memory). A PEM
        from before keys were encrypted opens without the secret."""
        with self._lock:
            key = self._opened.get(pem)
        if key is not None:
            return key
        password = self._secret if pem.startswith(_ENCRYPTED) else None
        try:
            loaded = serialization.load_pem_private_key(pem.encode("ascii"), password=password)
        except ValueError as exc:
            raise KeyLocked("a signing key does not open with BAZAAR_AUTH_KEY_SECRET") from exc
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError("a signing key must be Ed25519")
        with self._lock:
            self._opened[pem] = loaded
        return loaded

    @staticmethod
    def is_sealed(pem: str) -> bool:
        return pem.startswith(_ENCRYPTED)

    def public_jwk(self, key: SigningKey) -> dict[str, str]:
        """What the JWKS publishes of a key: its public half only (never `d`)."""
        return {**_public_fields(self.open(key.private_key_pem)), **_meta(key.kid)}

    def sign(self, claims: dict[str, object], key: SigningKey) -> str:
        return jwt.encode(
            claims,
            self.open(key.private_key_pem),
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": TOKEN_TYPE},
        )


def _meta(kid: str) -> dict[str, str]:
    return {"kid": kid, "alg": ALGORITHM, "use": "sig"}


def _public_fields(private: Ed25519PrivateKey) -> dict[str, str]:
    public: dict[str, Any] = jwt.algorithms.OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {"kty": public["kty"], "crv": public["crv"], "x": public["x"]}


def _thumbprint(private: Ed25519PrivateKey) -> str:
    """RFC 7638 thumbprint of the public key: the same key always has the same kid."""
    canonical = json.dumps(_public_fields(private), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_jti() -> str:
    return uuid.uuid4().hex
