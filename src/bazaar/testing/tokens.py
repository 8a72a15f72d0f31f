"""A token minter whose JWKS a `TokenVerifier` can be built from, so that a service test
needs no auth service."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bazaar.platform.tokens import AUDIENCE, ISSUER, TOKEN_TYPE, TokenVerifier


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
