"""Hostile events on the real platform: malformed, oversized, wrong-typed and
schema-breaking messages published on every consumed subject (order.created -> cart,
order.paid and order.cancelled -> notification, stock.changed -> catalog) of the real
NATS JetStream, with the real consumers running. Each must land in the dead-letter stream
with its error, no consumer may crash, and a valid event published afterwards must still
be handled."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import nats
import pytest
from jsonschema import Draft202012Validator
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext

from bazaar.runner.platform import Platform

if TYPE_CHECKING:
    from tests.fuzz.conftest import Credentials

pytestmark = pytest.mark.system

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts" / "events"
EVENTS_STREAM = "BAZAAR_EVENTS"
DEADLETTER_STREAM = "BAZAAR_DEADLETTER"
CONSUMERS = {
    "order.created": "cart",
    "order.paid": "notification",
    "order.cancelled": "notification",
    "stock.changed": "catalog",
}
# Long enough for a handler that fails on every delivery to exhaust its retries.
DEADLINE = 45.0


def envelope(event_type: str, data: Any, **fields: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": event_type,
        "source": "/bazaar/fuzz",
        "subject": "",
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
        **fields,
    }


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


def valid_data(event_type: str) -> dict[str, Any]:
    """Data that fits the contract (contracts/events/<type>.json)."""
    order = {"order_id": str(uuid.uuid4()), "user_id": "u-1", "email": "fuzz@example.com"}
    items = [{"product_id": "p-1", "name": "Thing", "qty": 1, "unit_price_cents": 100}]
    return {
        "order.created": {**order, "items": items, "total_cents": 100},
        "order.paid": {**order, "items": items, "total_cents": 100},
        "order.cancelled": {**order, "reason": "out_of_stock"},
        "stock.changed": {
            "product_id": "p-1",
            "on_hand": 5,
            "reserved": 1,
            "available": 4,
            "version": 1,
        },
    }[event_type]


def contract(event_type: str) -> Draft202012Validator:
    """contracts/events/<type>.json as a consumer reads it: unknown fields are allowed
    (producers send none; consumers ignore them)."""

    def tolerant(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: tolerant(v) for k, v in node.items() if k != "additionalProperties"}
        return [tolerant(v) for v in node] if isinstance(node, list) else node

    schema = json.loads((CONTRACTS / f"{event_type}.json").read_text())
    return Draft202012Validator(tolerant(schema))


def schema_breaking_data(event_type: str) -> list[Any]:
    """Data that parses as JSON but breaks the contract, in every way a consumer meets."""
    data = valid_data(event_type)
    first_field = next(iter(data))
    broken: list[Any] = [
        {},
        [],
        "data",
        None,
        {key: value for key, value in data.items() if key != first_field},  # a field missing
        {**data, first_field: ""},
        {**data, first_field: 12345},  # wrong type
        {**data, first_field: None},
        {**data, first_field: "x" * 201},  # a long id
        {**data, first_field: "x" * 1_000_000},  # near the broker's payload limit
        {**data, first_field: "id\r\nBcc: victim@example.com"},  # header injection
    ]
    if event_type == "stock.changed":
        broken += [
            {**data, "available": -5},
            {**data, "version": 0},
            {**data, "version": "9"},
            {**data, "version": 2**80},  # past any database integer
            {**data, "on_hand": 1.5},
            {**data, "available": True},
        ]
    else:
        broken += [
            {**data, "email": "not an address"},
            {**data, "email": "a\x00@b.example"},
            {**data, "email": ["fuzz@example.com"]},
        ]
    if "items" in data:
        line = data["items"][0]
        broken += [
            {**data, "items": []},
            {**data, "items": "lots"},
            {**data, "items": [{"product_id": "p-1", "qty": -3}]},
            {**data, "items": [{**line, "qty": 2**80}]},
            {**data, "items": [{**line, "unit_price_cents": "100"}]},
            {**data, "items": [line] * 10_000},  # ~700 kB, far more lines than an order has
            {**data, "total_cents": -1},
        ]
    validator = contract(event_type)
    valid = [value for value in broken if validator.is_valid(value)]
    assert not valid, f"meant to break the {event_type} contract, but fit it: {valid}"
    return broken


def hostile_messages(event_type: str) -> list[bytes]:
    """Every one breaks the contract: each consumer must dead-letter each."""
    other_type = "stock.changed" if event_type != "stock.changed" else "order.paid"
    nested = b"[" * 100_000 + b"]" * 100_000
    malformed = [
        b"",
        b"not json",
        b"\xff\xfe\xfd\x00",
        b"{",
        b"null",
        b"[1, 2, 3]",
        nested,  # deeper than Python's JSON parser goes
        as_json({"id": "x"}),
        as_json(envelope(event_type, valid_data(event_type), id=7, time="yesterday")),
        as_json(envelope(event_type, valid_data(event_type), type="NOT A TYPE")),
        as_json(envelope(event_type, valid_data(event_type), id="x" * 1000)),
        # The type of another event, on this subject: the consumer must not apply it.
        as_json(envelope(other_type, valid_data(other_type))),
    ]
    breaking = [as_json(envelope(event_type, data)) for data in schema_breaking_data(event_type)]
    return malformed + breaking


@pytest.fixture
async def jetstream(fuzz_platform: Platform) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(fuzz_platform.broker_url)
    try:
        yield client.jetstream()
    finally:
        await client.close()


async def dead_letter_counts(js: JetStreamContext) -> dict[str, int]:
    info = await js.stream_info(DEADLETTER_STREAM, subjects_filter=">")
    return dict(info.state.subjects or {})


async def publish(js: JetStreamContext, event_type: str, body: bytes) -> None:
    await js.publish(
        f"bazaar.events.{event_type}",
        body,
        stream=EVENTS_STREAM,
        headers={"Nats-Msg-Id": uuid.uuid4().hex},
    )


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {within} s")
        await asyncio.sleep(0.25)


def restarts(platform: Platform) -> dict[str, int]:
    return {s.name: s.restarts for s in platform.snapshots()}


async def test_hostile_events_are_dead_lettered_and_the_consumers_go_on(
    fuzz_platform: Platform, jetstream: JetStreamContext
) -> None:
    pids, crashes = fuzz_platform.pids, restarts(fuzz_platform)
    before = await dead_letter_counts(jetstream)
    sent: dict[str, int] = {}
    for event_type in CONSUMERS:
        for body in hostile_messages(event_type):
            await publish(jetstream, event_type, body)
            sent[event_type] = sent.get(event_type, 0) + 1

    def expected(event_type: str) -> tuple[str, int]:
        subject = f"bazaar.deadletter.{CONSUMERS[event_type]}.{event_type}"
        return subject, before.get(subject, 0) + sent[event_type]

    async def all_dead_lettered() -> bool:
        counts = await dead_letter_counts(jetstream)
        missing = {s: n - counts.get(s, 0) for s, n in map(expected, CONSUMERS)}
        print("dead letters still missing:", missing)  # shown if the wait fails
        return not any(n > 0 for n in missing.values())

    await eventually(all_dead_lettered, "every hostile event in the dead-letter stream", DEADLINE)
    counts = await dead_letter_counts(jetstream)
    wanted = dict(map(expected, CONSUMERS))
    assert {s: counts.get(s, 0) for s in wanted} == wanted, "dead-lettered twice"
    for event_type, consumer in CONSUMERS.items():  # nothing left pending or redelivered
        durable = f"{consumer}-{event_type}".replace(".", "-")
        info = await jetstream.consumer_info(EVENTS_STREAM, durable)
        assert (info.num_pending, info.num_ack_pending) == (0, 0), durable
    assert fuzz_platform.pids == pids and restarts(fuzz_platform) == crashes


async def test_every_dead_letter_says_why(
    fuzz_platform: Platform, jetstream: JetStreamContext
) -> None:
    await publish(jetstream, "order.paid", b"not json")
    subject = "bazaar.deadletter.notification.order.paid"
    listener = await jetstream.pull_subscribe(subject, stream=DEADLETTER_STREAM)
    messages = await listener.fetch(1, timeout=DEADLINE)
    assert messages[0].headers and messages[0].headers.get("x-error")
    assert messages[0].headers.get("x-consumer") == "notification"


async def test_an_event_past_the_broker_limit_is_refused_at_publish(
    jetstream: JetStreamContext,
) -> None:
    body = as_json(envelope("order.paid", {"padding": "p" * (1024 * 1024 + 1)}))
    with pytest.raises(MaxPayloadError):
        await publish(jetstream, "order.paid", body)


# -- and valid events are still handled -------------------------------------------------


def user_of(auth: dict[str, str]) -> str:
    payload = auth["Authorization"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


async def test_valid_events_are_still_handled_after_the_hostile_ones(
    fuzz_platform: Platform,
    jetstream: JetStreamContext,
    credentials: Credentials,
    fresh_customer: dict[str, str],
) -> None:
    extra = {"added_later": "consumers ignore fields they do not know"}
    customer, admin = fresh_customer, credentials.admin
    async with httpx.AsyncClient(
        base_url=fuzz_platform.public_url, timeout=10, trust_env=False
    ) as api:
        product = (await api.get("/api/products", params={"page_size": 1})).json()["items"][0]
        added = await api.post(
            "/api/cart/items", json={"product_id": product["id"], "qty": 2}, headers=customer
        )
        assert added.status_code == 200, added.text
        created = await api.post(
            "/api/products",
            json={"name": "Read model probe", "category": "fuzz", "price_cents": 100},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        probe = created.json()["id"]

        line = {"product_id": product["id"], "name": "x", "qty": 1, "unit_price_cents": 1}
        order = {"user_id": user_of(customer), "items": [line], "total_cents": 1, **extra}
        paid_to, cancelled_to = (f"fuzz-{uuid.uuid4().hex[:8]}@example.com" for _ in range(2))
        events = {
            "order.created": {**order, "order_id": str(uuid.uuid4()), "email": "c@example.com"},
            "order.paid": {**order, "order_id": str(uuid.uuid4()), "email": paid_to},
            "order.cancelled": {
                "order_id": str(uuid.uuid4()),
                "user_id": "u-1",
                "email": cancelled_to,
                "reason": "payment_declined",
                **extra,
            },
            "stock.changed": {
                "product_id": probe,
                "on_hand": 4242,
                "reserved": 0,
                "available": 4242,
                "version": 7,
                **extra,
            },
        }
        for event_type, data in events.items():
            await publish(jetstream, event_type, as_json(envelope(event_type, data)))

        async def cart_line_left() -> bool:
            items = (await api.get("/api/cart", headers=customer)).json()["items"]
            return [(i["product_id"], i["qty"]) for i in items] == [(product["id"], 1)]

        async def stock_read() -> bool:
            return bool((await api.get(f"/api/products/{probe}")).json()["stock"] == 4242)

        async def mailed() -> bool:
            return bool(fuzz_platform.mails_to(paid_to) and fuzz_platform.mails_to(cancelled_to))

        await eventually(cart_line_left, "order.created handled by cart", DEADLINE)
        await eventually(stock_read, "stock.changed handled by catalog", DEADLINE)
        await eventually(mailed, "order.paid and order.cancelled mailed", DEADLINE)
