from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from bazaar.platform.serving import asgi_server
from bazaar.services.gateway.bootstrap import build_app
from bazaar.services.gateway.settings import GatewaySettings
from bazaar.services.gateway.tests.fakes import UPSTREAMS, ClientFactory, EchoUpstream, problem

STARTUP_DEADLINE = 30.0
# (method, public path, owning upstream): the whole public API but the admin stock routes.
PUBLIC_ROUTES = [
    ("POST", "/api/auth/signup", "auth"),
    ("POST", "/api/auth/login", "auth"),
    ("GET", "/api/auth/me", "auth"),
    ("GET", "/api/products", "catalog"),
    ("GET", "/api/products/p-1", "catalog"),
    ("POST", "/api/products", "catalog"),
    ("PATCH", "/api/products/p-1", "catalog"),
    ("GET", "/api/categories", "catalog"),
    ("GET", "/api/cart", "cart"),
    ("POST", "/api/cart/items", "cart"),
    ("PATCH", "/api/cart/items/p-1", "cart"),
    ("DELETE", "/api/cart/items/p-1", "cart"),
    ("POST", "/api/checkout", "order"),
    ("GET", "/api/orders", "order"),
    ("GET", "/api/orders/o-1", "order"),
    ("GET", "/api/orders/o-1/events", "order"),
]


@pytest.mark.parametrize(("method", "path", "owner"), PUBLIC_ROUTES)
async def test_each_public_route_reaches_its_owner_only(
    api: httpx.AsyncClient, echo: dict[str, EchoUpstream], method: str, path: str, owner: str
) -> None:
    answer = await api.request(method, path)
    assert answer.status_code == 200
    assert answer.json() == {"upstream": owner, "path": path}
    assert [(s.method, s.path) for s in echo[owner].seen] == [(method, path)]
    assert all(not echo[other].seen for other in UPSTREAMS if other != owner)


async def test_the_request_goes_through_unchanged(
    api: httpx.AsyncClient, echo: dict[str, EchoUpstream]
) -> None:
    body = b'{"product_id": "p\\u00e9", "qty": 2}'
    headers = {
        "Authorization": "Bearer abc.def.ghi",
        "Idempotency-Key": "key-1",
        "Content-Type": "application/json; charset=utf-8",
        "X-Request-ID": "req-42",
        "Cookie": "bazaar_session=secret",
        "X-Internal-Thing": "nope",
    }
    await api.post("/api/cart/items?x=1&q=%C3%A9", content=body, headers=headers)
    (seen,) = echo["cart"].seen
    assert seen.method == "POST"
    assert seen.query == b"x=1&q=%C3%A9"
    assert seen.body == body
    assert seen.headers["authorization"] == "Bearer abc.def.ghi"
    assert seen.headers["idempotency-key"] == "key-1"
    assert seen.headers["content-type"] == "application/json; charset=utf-8"
    assert seen.headers["x-request-id"] == "req-42"
    assert seen.headers["x-forwarded-host"] == "shop.test"
    # The browser's session cookie and unknown headers stay at the gateway.
    assert "cookie" not in seen.headers
    assert "x-internal-thing" not in seen.headers


async def test_header_bytes_past_ascii_pass_unchanged(
    api: httpx.AsyncClient, echo: dict[str, EchoUpstream]
) -> None:
    answer = await api.post("/api/checkout", headers={"Idempotency-Key": b"\xff\xfe-key"})
    assert answer.status_code == 200  # it was a 500: httpx refused to encode the value
    (seen,) = echo["order"].seen
    assert seen.headers["idempotency-key"].encode("latin-1") == b"\xff\xfe-key"


async def test_an_encoded_path_reaches_the_service_still_encoded(
    api: httpx.AsyncClient, echo: dict[str, EchoUpstream]
) -> None:
    await api.get("/api/products/caf%C3%A9%20pot")
    (seen,) = echo["catalog"].seen
    assert seen.raw_path == b"/api/products/caf%C3%A9%20pot"


async def test_the_gateway_makes_a_request_id_when_the_client_sent_none(
    api: httpx.AsyncClient, echo: dict[str, EchoUpstream]
) -> None:
    answer = await api.get("/api/products")
    (seen,) = echo["catalog"].seen
    assert seen.headers["x-request-id"]
    assert answer.headers.get_list("x-request-id") == [seen.headers["x-request-id"]]


async def test_status_headers_and_problem_bodies_come_back_as_the_service_sent_them(
    api: httpx.AsyncClient, echo: dict[str, EchoUpstream]
) -> None:
    echo["auth"].answer = lambda _: problem(
        401, "bad credentials", **{"WWW-Authenticate": "Bearer", "Retry-After": "3"}
    )
    answer = await api.post("/api/auth/login", json={"email": "a@b.c", "password": "x"})
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.headers["retry-after"] == "3"
    assert answer.json()["detail"] == "bad credentials"

    echo["order"].answer = lambda _: Response(
        b'{"order_id": "o-9", "status": "pending"}', 201, media_type="application/json"
    )
    created = await api.post("/api/checkout", headers={"Idempotency-Key": "k"})
    assert created.status_code == 201
    assert created.json() == {"order_id": "o-9", "status": "pending"}


@pytest.mark.parametrize(
    "path",
    [
        "/internal/carts/u-1",
        "/internal/payments",
        "/api/internal/x",
        "/api/unknown",
        "/api/products/p-1/secret",
        "/api/products/..",
        "/.well-known/jwks.json",
    ],
)
async def test_nothing_outside_the_public_api_is_forwarded(
    api: httpx.AsyncClient, echo: dict[str, EchoUpstream], path: str
) -> None:
    answer = await api.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert all(not upstream.seen for upstream in echo.values())


async def test_a_method_the_public_api_lacks_is_refused(
    api: httpx.AsyncClient, echo: dict[str, EchoUpstream]
) -> None:
    answer = await api.delete("/api/orders/o-1")
    assert answer.status_code == 405
    assert not echo["order"].seen


async def test_an_oversized_body_is_refused_before_it_is_forwarded(
    api: httpx.AsyncClient, echo: dict[str, EchoUpstream], settings: GatewaySettings
) -> None:
    answer = await api.post("/api/cart/items", content=b"x" * (settings.max_body_bytes + 1))
    assert answer.status_code == 413
    assert not echo["cart"].seen


def _failing(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


async def test_a_service_that_is_down_is_a_503_problem_with_retry_after(
    make_client: ClientFactory,
) -> None:
    async with make_client(_failing(httpx.ConnectError("refused"))) as client:
        answer = await client.get("/api/products")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"]
    assert "catalog" in answer.json()["detail"]


async def test_a_service_that_does_not_answer_in_time_is_a_504_problem(
    make_client: ClientFactory,
) -> None:
    async with make_client(_failing(httpx.ReadTimeout("slow"))) as client:
        answer = await client.get("/api/orders")
    assert answer.status_code == 504
    assert answer.headers["content-type"] == "application/problem+json"


async def test_readiness_asks_every_upstream(
    make_client: ClientFactory,
    settings: GatewaySettings,
    echo: dict[str, EchoUpstream],
    inventory: tuple[object, str],
) -> None:
    ready_settings = settings.model_copy(update={"inventory_addr": inventory[1]})
    transports: dict[str, httpx.AsyncBaseTransport] = {
        name: httpx.ASGITransport(app=app) for name, app in echo.items()
    }
    async with make_client(transports, settings_=ready_settings) as client:
        assert (await client.get("/readyz")).status_code == 200
    assert all([s.path for s in upstream.seen] == ["/healthz"] for upstream in echo.values())

    transports["cart"] = _failing(httpx.ConnectError("refused"))
    async with make_client(transports) as client:  # and no inventory either
        answer = await client.get("/readyz")
    assert answer.status_code == 503
    assert "cart" in answer.json()["detail"]
    assert "inventory" in answer.json()["detail"]


async def test_the_openapi_document_describes_the_public_api(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    paths = document["paths"]
    signup = paths["/api/auth/signup"]["post"]
    assert signup["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SignupRequest"
    )
    assert "201" in signup["responses"]
    assert paths["/api/products"]["get"]["responses"]["200"]["content"]["application/json"]
    assert {"post"} <= set(paths["/api/checkout"])
    assert "/api/admin/products/{product_id}/stock" in paths
    assert not [p for p in paths if p.startswith("/internal")]
    assert "SignupRequest" in document["components"]["schemas"]
    assert "HTTPValidationError" not in json.dumps(document)


# -- server-sent events, over real sockets (an in-process transport would buffer) -------


@pytest.fixture
async def served() -> AsyncIterator[list[uvicorn.Server]]:
    servers: list[uvicorn.Server] = []
    yield servers
    for server in servers:
        server.should_exit = True


async def _serve(app: object, servers: list[uvicorn.Server]) -> str:
    """Serve `app` on a free loopback port until the test ends; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = asgi_server(app, "127.0.0.1", 0)
    servers.append(server)
    serving = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    # Polled, with a deadline far past any slow start: uvicorn has no "started" event.
    async with asyncio.timeout(STARTUP_DEADLINE):
        while not server.started:
            if serving.done():
                serving.result()  # why it stopped before it started
            await asyncio.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_an_event_stream_flows_through_event_by_event(
    settings: GatewaySettings, served: list[uvicorn.Server]
) -> None:
    next_event = asyncio.Event()

    async def events() -> AsyncIterator[bytes]:
        yield b'data: {"status": "pending"}\n\n'
        await next_event.wait()  # sent only once the client has seen the first event
        yield b'data: {"status": "paid"}\n\n'

    order = EchoUpstream("order")
    order.answer = lambda _: StreamingResponse(events(), media_type="text/event-stream")
    order_url = await _serve(order, served)
    app = build_app(settings.model_copy(update={"order_url": order_url}))
    gateway_url = await _serve(app, served)

    received = []
    async with (
        httpx.AsyncClient(base_url=gateway_url, timeout=5) as client,
        client.stream(
            "GET", "/api/orders/o-1/events", headers={"Authorization": "Bearer t"}
        ) as answer,
    ):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        async for line in answer.aiter_lines():
            if line.startswith("data:"):
                received.append(json.loads(line[5:])["status"])
                next_event.set()
    assert received == ["pending", "paid"]
    assert order.seen[0].headers["authorization"] == "Bearer t"


async def test_an_upstream_problem_on_the_event_stream_passes_through(
    api: httpx.AsyncClient, echo: dict[str, EchoUpstream]
) -> None:
    def not_yours(request: Request) -> Response:
        return problem(404, "no such order")

    echo["order"].answer = not_yours
    answer = await api.get("/api/orders/o-2/events")
    assert answer.status_code == 404
    assert answer.json()["detail"] == "no such order"


# -- the production transport, over real sockets ----------------------------------------


async def _gateway_over(
    settings: GatewaySettings, served: list[uvicorn.Server], **urls: str
) -> httpx.AsyncClient:
    app = build_app(settings.model_copy(update={f"{name}_url": url for name, url in urls.items()}))
    return httpx.AsyncClient(base_url=await _serve(app, served), timeout=5)


async def test_over_sockets_the_request_reaches_the_service_as_it_was_sent(
    settings: GatewaySettings, served: list[uvicorn.Server]
) -> None:
    catalog = EchoUpstream("catalog")
    gateway = await _gateway_over(settings, served, catalog=await _serve(catalog, served))
    async with gateway:
        answer = await gateway.get(
            "/api/products/caf%C3%A9%20pot?x=%2B1", headers={"Accept-Language": "fr"}
        )
    assert answer.status_code == 200
    (seen,) = catalog.seen
    assert seen.raw_path == b"/api/products/caf%C3%A9%20pot"
    assert seen.query == b"x=%2B1"
    assert seen.headers["accept-language"] == "fr"
    assert seen.headers["x-request-id"] == answer.headers["x-request-id"]


async def test_over_sockets_a_service_that_is_down_is_a_503(
    settings: GatewaySettings, served: list[uvicorn.Server]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with await _gateway_over(settings, served, order=closed) as gateway:
        answer = await gateway.get("/api/orders")
    assert answer.status_code == 503
    assert answer.headers["retry-after"]


async def test_over_sockets_a_service_too_slow_to_answer_is_a_504(
    settings: GatewaySettings, served: list[uvicorn.Server]
) -> None:
    gave_up = asyncio.Event()

    class Slow(EchoUpstream):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                await gave_up.wait()  # it answers only once the gateway has given up on it
            await super().__call__(scope, receive, send)

    slow = Slow("order")
    # Short, yet long enough for a loopback connect on a loaded machine (a connect that
    # timed out would be a 503, not this test's 504).
    quick = settings.model_copy(update={"upstream_timeout": 0.5})
    async with await _gateway_over(quick, served, order=await _serve(slow, served)) as gateway:
        answer = await gateway.get("/api/orders")
        gave_up.set()
    assert answer.status_code == 504
