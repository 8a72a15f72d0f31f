"""GET /api/orders/{id}/events: server-sent events, read as they are sent.

httpx's ASGI transport hands a response over only once it is complete, so these tests
drive the ASGI app directly and see each chunk the moment the service sends it."""

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI

from bazaar.services.order.tests.support import Shop


class EventStream:
    def __init__(self, messages: asyncio.Queue[dict[str, Any]]) -> None:
        self._messages = messages
        self.status = 0
        self.headers: dict[str, str] = {}
        self.closed = False

    async def start(self) -> None:
        message = await asyncio.wait_for(self._messages.get(), 5)
        assert message["type"] == "http.response.start"
        self.status = message["status"]
        self.headers = {k.decode(): v.decode() for k, v in message["headers"]}

    async def next_data(self) -> dict[str, Any] | None:
        """The next `data:` payload, or None once the stream is closed."""
        while not self.closed:
            message = await asyncio.wait_for(self._messages.get(), 5)
            self.closed = not message.get("more_body", False)
            for line in message.get("body", b"").decode().splitlines():
                if line.startswith("data: "):
                    return dict(json.loads(line.removeprefix("data: ")))
        return None


@asynccontextmanager
async def open_stream(
    app: FastAPI, path: str, headers: dict[str, str]
) -> AsyncIterator[EventStream]:
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    disconnected = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        await messages.put(dict(message))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "server": ("order", 80),
        "client": ("127.0.0.1", 50000),
    }
    serving = asyncio.create_task(app(scope, receive, send))
    stream = EventStream(messages)
    try:
        await stream.start()
        yield stream
    finally:
        disconnected.set()
        await asyncio.wait_for(serving, 5)


async def test_the_stream_sends_pending_then_paid_and_closes(shop: Shop) -> None:
    payments = shop.neighbours.payments
    payments.gate = asyncio.Event()  # the saga waits at the charge until we say so
    order_id = await shop.place("ann", ("p-tea", 1))
    path = f"/api/orders/{order_id}/events"
    async with open_stream(shop.app, path, shop.auth("ann")) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        first = await stream.next_data()
        assert first is not None
        assert (first["id"], first["status"], first["total_cents"]) == (order_id, "pending", 450)
        payments.gate.set()
        second = await stream.next_data()
        assert second is not None
        assert (second["status"], second["reason"]) == ("paid", None)
        assert await stream.next_data() is None
        assert stream.closed


async def test_a_final_order_streams_once_and_closes(shop: Shop) -> None:
    shop.neighbours.payments.mode = "decline"
    order_id = await shop.place("ann", ("p-tea", 1))
    await shop.final(order_id)
    async with open_stream(shop.app, f"/api/orders/{order_id}/events", shop.auth("ann")) as s:
        only = await s.next_data()
        assert only is not None
        assert (only["status"], only["reason"]) == ("cancelled", "payment_declined")
        assert await s.next_data() is None


async def test_the_stream_needs_the_owner(shop: Shop) -> None:
    order_id = await shop.place("ann", ("p-tea", 1))
    path = f"/api/orders/{order_id}/events"
    async with open_stream(shop.app, path, shop.auth("bob")) as stream:
        assert stream.status == 404
        assert stream.headers["content-type"] == "application/problem+json"
    async with open_stream(shop.app, path, {}) as stream:
        assert stream.status == 401


@pytest.mark.parametrize("settings_overrides", [{"order_events_max_seconds": 0.2}])
async def test_a_stream_of_an_order_that_stays_pending_ends_in_time(shop: Shop) -> None:
    shop.neighbours.payments.gate = asyncio.Event()  # never opens
    order_id = await shop.place("ann", ("p-tea", 1))
    async with open_stream(shop.app, f"/api/orders/{order_id}/events", shop.auth("ann")) as s:
        first = await s.next_data()
        assert first is not None
        assert first["status"] == "pending"
        assert await s.next_data() is None  # closed by its lifetime, not by the order
