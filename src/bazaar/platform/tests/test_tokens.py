"""RFC 8725: every way a token can be wrong is refused."""

import base64
import json
import time

import jwt
import pytest

from bazaar.platform.testing import TokenMinter
from bazaar.platform.tokens import InvalidToken, TokenVerifier


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
