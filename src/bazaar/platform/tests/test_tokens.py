"""RFC 8725: every way a token can be wrong is refused."""

import base64
import json
import time
from datetime import datetime, tzinfo

import jwt
import pytest

from bazaar.platform.tokens import InvalidToken, TokenVerifier
from bazaar.testing import TokenMinter


@pytest.fixture
def minter() -> TokenMinter:
    return TokenMinter()


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_a_good_token_names_its_user(minter: TokenMinter) -> None:
    principal = await minter.verifier().verify(minter.token("u1", roles=["customer", "admin"]))
    assert principal.user_id == "u1"
    assert principal.is_admin


async def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as error:
        await verifier.verify(token)
    return error.value.detail


async def test_forged_and_stale_tokens_are_refused(minter: TokenMinter) -> None:
    verifier = minter.verifier()
    good = minter.token("u1")
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})

    unsigned = b64({"alg": "none", "typ": "at+jwt", "kid": minter.kid}) + "." + payload + "."
    assert "algorithm" in await refused(verifier, unsigned)

    public_pem = minter.jwks["keys"][0]["x"].encode()
    hs256 = jwt.encode(
        claims, public_pem, algorithm="HS256", headers={"kid": minter.kid, "typ": "at+jwt"}
    )
    assert "algorithm" in await refused(verifier, hs256)

    tampered = header + "." + b64({**claims, "roles": ["admin"]}) + "." + signature
    assert "invalid" in await refused(verifier, tampered)

    other = TokenMinter()
    assert "unknown key" in await refused(verifier, other.token("u1"))

    assert "expired" in await refused(verifier, minter.token("u1", ttl=-60))
    future = int(time.time()) + 3600
    assert "invalid" in await refused(verifier, minter.token("u1", nbf=future))
    assert "invalid" in await refused(verifier, minter.token("u1", aud="somebody-else"))
    assert "invalid" in await refused(verifier, minter.token("u1", iss="evil"))
    assert "invalid" in await refused(verifier, minter.token("u1", roles="admin"))  # type: ignore[arg-type]
    assert "malformed" in await refused(verifier, "not.a.token")
    wrong_type = jwt.encode(claims, minter._key, algorithm="EdDSA", headers={"kid": minter.kid})
    assert "access token" in await refused(verifier, wrong_type)


async def test_missing_claims_are_refused(minter: TokenMinter) -> None:
    good = minter.token("u1")
    claims = jwt.decode(good, options={"verify_signature": False})
    del claims["exp"]
    no_exp = jwt.encode(
        claims, minter._key, algorithm="EdDSA", headers={"kid": minter.kid, "typ": "at+jwt"}
    )
    assert "exp" in await refused(minter.verifier(), no_exp)


# -- the cache of verified tokens ----------------------------------------------------------


def set_clock(monkeypatch: pytest.MonkeyPatch, now: float) -> None:
    """The time the verifier and jwt.decode both read."""

    class Clock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> "Clock":
            return cls.fromtimestamp(now, tz)

    monkeypatch.setattr(time, "time", lambda: now)
    monkeypatch.setattr(jwt.api_jwt, "datetime", Clock)


async def test_a_remembered_token_is_refused_once_it_expires(
    minter: TokenMinter, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = TokenVerifier(jwks=minter.jwks, leeway=5)
    token = minter.token("u1", ttl=60)
    assert (await verifier.verify(token)).user_id == "u1"
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    set_clock(monkeypatch, expires + 4.5)  # within the leeway
    assert (await verifier.verify(token)).user_id == "u1"
    set_clock(monkeypatch, expires + 5.0)
    assert "expired" in await refused(verifier, token)


async def test_a_remembered_token_is_refused_when_its_kid_names_another_key() -> None:
    signer, impostor = TokenMinter(), TokenMinter()
    verifier = TokenVerifier(jwks=signer.jwks)
    token = signer.token("u1")
    assert (await verifier.verify(token)).user_id == "u1"
    verifier._load({"keys": [{**impostor.jwks["keys"][0], "kid": signer.kid}]})
    assert "invalid" in await refused(verifier, token)  # the signature no longer checks
    verifier._load({"keys": []})
    assert "unknown key" in await refused(verifier, token)


async def test_the_cache_holds_at_most_its_size(minter: TokenMinter) -> None:
    verifier = TokenVerifier(jwks=minter.jwks, cache_size=3)
    tokens = [minter.token(f"u{i}") for i in range(5)]
    for token in tokens:
        await verifier.verify(token)
    assert list(verifier._verified) == tokens[2:]  # the oldest went first
    assert [(await verifier.verify(t)).user_id for t in tokens] == [f"u{i}" for i in range(5)]
