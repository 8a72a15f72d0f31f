"""The transport between services, against a real server on loopback: what it sends is
what httpx was given, and each way a call can fail is the httpx error of its kind."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from bazaar.platform.clients import ResilientClient, UpstreamError
from bazaar.platform.serving import asgi_server
from bazaar.platform.transport import ServiceTransport


class Recorder:
    """An ASGI app that answers with what it received; `/slow` takes a second, `/stream`
    sends two chunks with a pause between them."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, dict[bytes, bytes], bytes]] = []
        self.release_stream = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        request = Request(scope, receive)
        body = await request.body()
        self.seen.append((scope["raw_path"], dict(scope["headers"]), body))
        response: Response
        if scope["path"] == "/slow":
            await asyncio.sleep(1.0)
            response = Response(b"late")
        elif scope["path"] == "/stream":
            response = StreamingResponse(self._chunks(), media_type="text/event-stream")
        else:
            response = JSONResponse({"ok": True}, headers={"Set-Cookie": "sid=secret"})
        await response(scope, receive, send)

    async def _chunks(self) -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        await self.release_stream.wait()
        yield b"data: 2\n\n"


@dataclass
class Served:
    server: uvicorn.Server
    task: asyncio.Task[None]
    url: str

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


async def serve(app: Recorder, port: int = 0) -> Served:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = asgi_server(app, "127.0.0.1", 0)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn has no "started" event to await
        await asyncio.sleep(0.01)
    return Served(server, task, f"http://127.0.0.1:{sock.getsockname()[1]}")


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    app = Recorder()
    served = await serve(app)
    yield app, served.url
    await served.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=ServiceTransport(), timeout=5.0) as http:
        yield http


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_request_goes_out_as_httpx_built_it(
    recorder: tuple[Recorder, str], client: httpx.AsyncClient
) -> None:
    app, url = recorder
    target = httpx.URL(f"{url}/a/%2e%2e/%7e/caf%C3%A9?q=%2B1&x=a%26b")
    answer = await client.post(
        target,
        content=b'{"qty": 1}',
        headers={b"Idempotency-Key": "clé".encode(), b"X-Odd": b"\xff\xfe"},
    )
    assert answer.status_code == 200
    assert answer.json() == {"ok": True}
    raw_path, headers, body = app.seen[0]
    assert raw_path == b"/a/%2e%2e/%7e/caf%C3%A9"  # not re-quoted: no `..`, no `~`
    assert body == b'{"qty": 1}'
    assert headers[b"idempotency-key"] == "clé".encode()
    assert headers[b"x-odd"]  # not UTF-8: sent (as its latin-1 reading), no crash
    assert b"content-type" not in headers  # the caller sent none, so none was added
    assert headers[b"user-agent"].startswith(b"python-httpx")  # httpx's, not aiohttp's
    # No cookie jar: what one answer set is not sent with the next request.
    await client.get(f"{url}/again")
    assert b"cookie" not in app.seen[1][1]


async def test_a_refused_connect_is_a_connect_error(client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.ConnectError):
        await client.get(f"http://127.0.0.1:{closed_port()}/")


async def test_a_slow_answer_is_a_read_timeout(
    recorder: tuple[Recorder, str], client: httpx.AsyncClient
) -> None:
    _, url = recorder
    with pytest.raises(httpx.ReadTimeout):
        await client.get(f"{url}/slow", timeout=0.2)


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port that listens but never accepts, its queue full: a connect there hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(4):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        queued.append(sock)
    yield port
    for sock in [*queued, listener]:
        sock.close()


async def test_a_connect_that_hangs_is_a_connect_timeout(
    full_backlog: int, client: httpx.AsyncClient
) -> None:
    with pytest.raises(httpx.ConnectTimeout):
        await client.get(f"http://127.0.0.1:{full_backlog}/", timeout=httpx.Timeout(5, connect=0.2))


async def test_a_stream_arrives_chunk_by_chunk(
    recorder: tuple[Recorder, str], client: httpx.AsyncClient
) -> None:
    app, url = recorder
    async with client.stream("GET", f"{url}/stream") as answer:
        chunks = answer.aiter_bytes()
        assert await anext(chunks) == b"data: 1\n\n"  # before the second was even written
        app.release_stream.set()
        assert await anext(chunks) == b"data: 2\n\n"


async def test_a_restarted_service_costs_no_error(client: httpx.AsyncClient) -> None:
    """The pooled connection to the old process is dead; the next call, a POST (never
    resent), goes over a new one."""
    app = Recorder()
    first = await serve(app)
    assert (await client.post(f"{first.url}/one", content=b"1")).status_code == 200
    await first.stop()
    second = await serve(app, port=httpx.URL(first.url).port or 0)
    try:
        assert (await client.post(f"{second.url}/two", content=b"2")).status_code == 200
    finally:
        await second.stop()
    assert [body for _, _, body in app.seen] == [b"1", b"2"]


async def test_the_resilient_client_uses_it_and_retries_a_service_that_is_down() -> None:
    client = ResilientClient("test", "nobody", f"http://127.0.0.1:{closed_port()}", attempts=2)
    try:
        with pytest.raises(UpstreamError, match="unreachable: ConnectError"):
            await client.request("GET", "/thing")
    finally:
        await client.aclose()
