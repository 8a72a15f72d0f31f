"""The ops page: admins only; it draws what the ops API answers (processes, rates, the
orders seen last, an order's waterfall and saga), and says so when there is none."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from bazaar.services.gateway.settings import GatewaySettings
from bazaar.services.gateway.tests.fakes import ClientFactory, FakeShop
from bazaar.services.gateway.tests.test_storefront import log_in

ROW = {
    "span_id": "01",
    "parent_id": "",
    "service": "gateway",
    "name": "POST /api/checkout",
    "kind": "server",
    "depth": 0,
    "offset_ms": 0.0,
    "duration_ms": 12.5,
    "left_pct": 0.0,
    "width_pct": 100.0,
    "error": False,
    "status_message": "",
    "detail": "",
}
ANSWERS: dict[str, Any] = {
    "/api/overview": {
        "processes": [
            {"name": "order", "state": "ready", "pid": 42, "restarts": 0, "healthy": True}
        ],
        "outbox": [{"service": "order", "pending": 0, "lag_seconds": 0.0}],
        "dead_letters": {"total": 2, "by_consumer": {"cart / order.created": 2}},
        "rates": [
            {
                "service": "order",
                "requests_per_s": 1.5,
                "messages_per_s": 0,
                "error_pct": 0,
                "p50_ms": 3,
                "p95_ms": 9,
            }
        ],
        "checkouts_per_minute": 12.0,
        "rate_window_seconds": 60,
        "store": {"spans": 10, "max_spans": 50000},
    },
    "/api/orders": {
        "orders": [
            {
                "order_id": "o-1",
                "trace_id": "ab",
                "started_ns": 1,
                "spans": 1,
                "services": 1,
                "errors": 0,
            }
        ]
    },
    "/api/orders/o-1": {
        "order_id": "o-1",
        "order": {"status": "paid", "saga_step": "done", "saga_attempts": 0, "reason": None},
        "services": ["gateway"],
        "spans": 1,
        "saga_steps": [{"step": "reserve", "outcome": "done", "duration_ms": 3.0, "error": False}],
        "traces": [{"trace_id": "ab", "duration_ms": 12.5, "spans": 1, "rows": [ROW]}],
    },
}


@pytest.fixture
def ops_api() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer = ANSWERS.get(self.path.split("?")[0])
            body = json.dumps(answer or {"detail": "not found"}).encode()
            self.send_response(200 if answer else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def ops_store(
    make_client: ClientFactory, shop: FakeShop, settings: GatewaySettings, ops_api: str
) -> AsyncIterator[httpx.AsyncClient]:
    transports = {name: httpx.ASGITransport(app=app) for name, app in shop.apps().items()}
    with_ops = settings.model_copy(update={"ops_api_url": ops_api})
    async with make_client(transports, settings_=with_ops) as client:
        yield client


async def test_only_an_admin_sees_the_ops_page(store: httpx.AsyncClient) -> None:
    assert (await store.get("/ops")).status_code == 303  # to the login form
    await log_in(store)
    refused = await store.get("/ops")
    assert refused.status_code == 403 and "administrators" in refused.text


async def test_without_an_ops_api_the_page_says_there_is_no_data(store: httpx.AsyncClient) -> None:
    await log_in(store, "root@example.com")
    page = await store.get("/ops")
    assert page.status_code == 503 and "BAZAAR_OPS_API_URL" in page.text


async def test_the_admin_sees_processes_rates_and_an_orders_waterfall(
    ops_store: httpx.AsyncClient,
) -> None:
    await log_in(ops_store, "root@example.com")
    page = await ops_store.get("/ops")
    assert page.status_code == 200
    for shown in (
        "order",
        "ready",
        "12.0 checkouts/min",
        "cart / order.created: 2",
        "/ops/orders/o-1",
    ):
        assert shown in page.text
    order = await ops_store.get("/ops/orders/o-1")
    assert order.status_code == 200
    assert 'data-service="gateway"' in order.text and "POST /api/checkout" in order.text
    assert "reserve" in order.text and 'id="order-status">paid' in order.text
    assert (await ops_store.get("/ops/orders/o-2")).status_code == 404
