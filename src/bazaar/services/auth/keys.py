"""Ed25519 signing keys: made here, kept (as PEM) by the store, published as JWKs."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bazaar.services.auth.domain import SigningKey

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"


def new_private_key_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


@lru_cache(maxsize=32)
def _private_key(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("a signing key must be Ed25519")
    return key


def _public_fields(pem: str) -> dict[str, str]:
    public: dict[str, Any] = jwt.algorithms.OKPAlgorithm.to_jwk(
        _private_key(pem).public_key(), as_dict=True
    )
    return {"kty": public["kty"], "crv": public["crv"], "x": public["x"]}


def key_id(pem: str) -> str:
    """RFC 7638 thumbprint of the public key: the same key always has the same kid."""
    canonical = json.dumps(_public_fields(pem), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def public_jwk(key: SigningKey) -> dict[str, str]:
    """What the JWKS publishes of a key: its public half only (never `d`)."""
    return {**_public_fields(key.private_key_pem), "kid": key.kid, "alg": ALGORITHM, "use": "sig"}


def sign(claims: dict[str, object], key: SigningKey) -> str:
    return jwt.encode(
        claims,
        _private_key(key.private_key_pem),
        algorithm=ALGORITHM,
        headers={"kid": key.kid, "typ": TOKEN_TYPE},
    )


def new_jti() -> str:
    return uuid.uuid4().hex
