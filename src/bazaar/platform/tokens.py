"""JWT verification against the auth service's JWKS, as every service does it.

RFC 8725: the algorithm list is pinned, every claim is required and checked, keys are
found by `kid`, and an unknown `kid` refreshes the JWKS (at most once per interval, so a
flood of forged kids cannot turn into a flood of fetches). A key set older than `max_age`
is fetched again too, so a key the auth service withdrew stops verifying everywhere.

A token that verified is remembered until it expires (a bounded cache: a signature check
is most of the cost of a request that only reads), but only while the key that signed it
is still the published key of its `kid`: a remembered token meets the same key-set
refresh as any other, and a withdrawn key refuses it as soon as the refresh drops it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, FastAPI, Request

from bazaar.platform.logs import get_logger
from bazaar.platform.problems import Problem

log = get_logger(__name__)

ALGORITHMS = ["EdDSA"]
ISSUER = "bazaar-auth"
AUDIENCE = "bazaar"
TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "nbf", "roles", "email"]
VERIFIED_CACHE_SIZE = 4096


class InvalidToken(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the token says."""

    user_id: str
    email: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(frozen=True)
class _Verified:
    """A token that verified: who it names, the key that signed it, when it expires."""

    principal: Principal
    kid: str
    key: jwt.PyJWK
    expires: float


class TokenVerifier:
    def __init__(
        self,
        jwks_url: str | None = None,
        *,
        jwks: dict[str, Any] | None = None,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        refresh_interval: float = 5.0,
        max_age: float = 300.0,
        leeway: float = 5.0,
        cache_size: int = VERIFIED_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,  # times the key set's refreshes
    ) -> None:
        self._jwks_url = jwks_url
        self._clock = clock
        self._issuer = issuer
        self._audience = audience
        self._refresh_interval = refresh_interval
        self._max_age = max_age
        self._leeway = leeway
        self._keys: dict[str, jwt.PyJWK] = {}
        self._published: dict[str, dict[str, Any]] = {}  # the JWK behind each key, by kid
        self._verified: dict[str, _Verified] = {}  # oldest first
        self._cache_size = cache_size
        self._last_refresh = float("-inf")
        self._lock = asyncio.Lock()
        if jwks is not None:
            self._load(jwks)

    def _load(self, jwks: dict[str, Any]) -> None:
        keys, published = {}, {}
        for data in jwks.get("keys", []):
            if kid := data.get("kid"):
                # A key published unchanged stays the same object, so the tokens it
                # verified stay remembered; a kid now naming other key material does not.
                same = self._published.get(kid) == data and kid in self._keys
                keys[kid] = self._keys[kid] if same else jwt.PyJWK(data)
                published[kid] = data
        self._keys, self._published = keys, published

    async def _refresh(self) -> None:
        if not self._jwks_url:
            return
        async with self._lock:
            if self._clock() - self._last_refresh < self._refresh_interval:
                return
            self._last_refresh = self._clock()
            async with httpx.AsyncClient(timeout=3.0) as client:
                response = await client.get(self._jwks_url)
                response.raise_for_status()
                self._load(response.json())

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        stale = self._clock() - self._last_refresh > self._max_age
        if kid not in self._keys:
            try:
                await self._refresh()
            except httpx.HTTPError as exc:
                raise Problem(503, f"cannot fetch signing keys: {type(exc).__name__}") from exc
        elif stale:
            try:
                await self._refresh()
            except httpx.HTTPError as exc:  # the known keys serve until auth is back
                log.warning("signing keys not refreshed", error=type(exc).__name__)
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("token signed with an unknown key")
        return key

    async def verify(self, token: str) -> Principal:
        verified = self._verified.get(token)
        if verified is not None:
            if await self._still_valid(verified):
                return verified.principal
            # Its key went or changed, or it expired: verified afresh, it gets the same
            # refusal as a token never seen.
            self._verified.pop(token, None)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken("token algorithm not accepted")
        if header.get("typ") != TOKEN_TYPE:
            raise InvalidToken("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token has no key id")
        key = await self._key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        roles = claims["roles"]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidToken("invalid token: roles must be a list of strings")
        principal = Principal(
            user_id=str(claims["sub"]), email=str(claims["email"]), roles=frozenset(roles)
        )
        self._remember(token, _Verified(principal, kid, key, float(claims["exp"])))
        return principal

    async def _still_valid(self, verified: _Verified) -> bool:
        """A remembered token, checked for what can have changed since it verified: the
        key set (refreshed as for any token) and the clock (`exp` as jwt.decode reads it)."""
        try:
            key = await self._key_for(verified.kid)
        except InvalidToken:
            return False
        return key is verified.key and time.time() < verified.expires + self._leeway

    def _remember(self, token: str, verified: _Verified) -> None:
        if self._cache_size <= 0:
            return
        if len(self._verified) >= self._cache_size:
            del self._verified[next(iter(self._verified))]  # the oldest goes
        self._verified[token] = verified


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "missing bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


_VERIFIER = "token_verifier"


def verify_tokens_with(app: FastAPI, verifier: TokenVerifier) -> None:
    """Make `verifier` the one `CurrentUser` and `AdminUser` use in `app`
    (`create_app(..., tokens=...)` calls it)."""
    setattr(app.state, _VERIFIER, verifier)


async def current_user(request: Request) -> Principal:
    """FastAPI dependency: the verified caller."""
    verifier: TokenVerifier | None = getattr(request.app.state, _VERIFIER, None)
    if verifier is None:
        raise RuntimeError(f"{request.app.title}: no token verifier (create_app(tokens=...))")
    return await verifier.verify(bearer_token(request))


async def current_admin(user: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not user.is_admin:
        raise Problem(403, "this needs the admin role")
    return user


CurrentUser = Annotated[Principal, Depends(current_user)]
AdminUser = Annotated[Principal, Depends(current_admin)]
