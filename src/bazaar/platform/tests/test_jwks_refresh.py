"""The verifier's JWKS cache against a real HTTP server: a flood of unknown kids costs one
fetch per refresh interval, a new key is learnt on first sight, a withdrawn key stops
verifying once the cache is older than its maximum age. The verifier's clock is a fake one
the tests move: the intervals pass when a test says so, however slow the machine."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bazaar.platform.problems import Problem
from bazaar.platform.tokens import InvalidToken, TokenVerifier
from bazaar.testing import FakeClock, TokenMinter


class JwksServer:
    """Serves whatever `keys` holds at /jwks.json and counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/jwks.json"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


def _with_kid(kid: str) -> str:
    """A token signed by a key nobody published, claiming the key id `kid`."""
    minter = TokenMinter()
    minter.kid = kid
    return minter.token("mallory")


async def test_a_flood_of_unknown_kids_fetches_once_per_interval(jwks: JwksServer) -> None:
    clock = FakeClock()
    verifier = TokenVerifier(jwks.url, refresh_interval=1.5, clock=clock)
    tokens = [_with_kid(uuid.uuid4().hex) for _ in range(200)]

    async def attempt(token: str) -> int:
        try:
            await verifier.verify(token)
        except InvalidToken as exc:
            return exc.status
        return 200

    assert set(await asyncio.gather(*(attempt(t) for t in tokens))) == {401}
    assert jwks.fetches == 1
    for token in tokens[:50]:  # still within the interval: answered from the cache
        assert await attempt(token) == 401
    assert jwks.fetches == 1
    clock.advance(1.6)
    assert set(await asyncio.gather(*(attempt(t) for t in tokens))) == {401}
    assert jwks.fetches == 2


async def test_a_new_key_is_learnt_at_its_first_token(jwks: JwksServer) -> None:
    old, new = TokenMinter(), TokenMinter()
    jwks.keys = old.jwks["keys"]
    verifier = TokenVerifier(jwks.url, refresh_interval=0.0)
    assert (await verifier.verify(old.token("u1"))).user_id == "u1"
    jwks.keys = old.jwks["keys"] + new.jwks["keys"]  # a rotation published the new key
    assert (await verifier.verify(new.token("u2"))).user_id == "u2"
    assert (await verifier.verify(old.token("u3"))).user_id == "u3"
    assert jwks.fetches == 2


async def test_a_withdrawn_key_stops_verifying_once_the_cache_is_old(jwks: JwksServer) -> None:
    withdrawn, kept = TokenMinter(), TokenMinter()
    jwks.keys = withdrawn.jwks["keys"] + kept.jwks["keys"]
    clock = FakeClock()
    verifier = TokenVerifier(jwks.url, max_age=0.3, refresh_interval=0.1, clock=clock)
    token = withdrawn.token("u1")
    assert (await verifier.verify(token)).user_id == "u1"
    jwks.keys = kept.jwks["keys"]
    assert (await verifier.verify(token)).user_id == "u1"  # the cache is young
    clock.advance(0.4)
    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(token)
    assert (await verifier.verify(kept.token("u2"))).user_id == "u2"


async def test_known_keys_serve_while_the_key_server_is_down(jwks: JwksServer) -> None:
    minter = TokenMinter()
    jwks.keys = minter.jwks["keys"]
    clock = FakeClock()
    verifier = TokenVerifier(jwks.url, max_age=0.1, refresh_interval=0.0, clock=clock)
    assert await verifier.verify(minter.token("u1"))
    jwks.close()
    clock.advance(0.2)
    assert (await verifier.verify(minter.token("u2"))).user_id == "u2"
    with pytest.raises(Problem) as unreachable:
        await verifier.verify(TokenMinter().token("u3"))
    assert unreachable.value.status == 503
