"""Producer side of the event contracts: every event a producer writes to its outbox, made
by the real service code (the order service's checkout and saga over its test fakes, the
inventory service's gRPC calls), is a CloudEvents envelope whose `data` validates against
contracts/events/<type>.json. And the consumer side: each consumer's own model of the
event accepts what the producer wrote."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel
from sqlalchemy import select

from bazaar.contracts.events import OrderCancelled, OrderCreated, OrderPaid, StockChanged
from bazaar.contracts.generated import inventory_pb2 as pb
from bazaar.contracts.generated.inventory_pb2_grpc import InventoryStub
from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.platform.messaging_tables import outbox
from bazaar.services.inventory.bootstrap import MIGRATIONS as INVENTORY_MIGRATIONS
from bazaar.services.inventory.bootstrap import build_inventory
from bazaar.services.inventory.domain import SeedStock
from bazaar.services.inventory.settings import InventorySettings
from bazaar.services.order.bootstrap import MIGRATIONS as ORDER_MIGRATIONS
from bazaar.services.order.tests.fakes import FakeInventory
from bazaar.services.order.tests.support import Neighbours, Shop, running_shop
from bazaar.testing import TokenMinter, migrated_database

EVENTS = Path(__file__).resolve().parents[2] / "contracts" / "events"
ENVELOPE_FIELDS = {"specversion", "id", "type", "source", "subject", "time", "datacontenttype"}
# Who consumes what, as each consumer models it (contracts/README.md).
CONSUMER_MODELS: dict[str, list[type[BaseModel]]] = {
    "order.created": [OrderCreated],
    "order.paid": [OrderPaid],
    "order.cancelled": [OrderCancelled],
    "stock.changed": [StockChanged],
}


def validator(event_type: str) -> Draft202012Validator:
    schema = json.loads((EVENTS / f"{event_type}.json").read_text())
    return Draft202012Validator(schema)


def assert_conforms(envelope: dict[str, Any]) -> None:
    """The envelope is CloudEvents-shaped, its data fits its type's schema exactly, and
    every consumer of the type accepts it."""
    assert set(envelope) >= ENVELOPE_FIELDS, envelope
    assert envelope["specversion"] == "1.0" and envelope["datacontenttype"] == "application/json"
    event = Envelope.model_validate(envelope)
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or 'data'}: {e.message}"
        for e in validator(event.type).iter_errors(event.data)
    ]
    assert not errors, f"{event.type} breaks its contract: {errors}\n{event.data}"
    for model in CONSUMER_MODELS[event.type]:
        model.model_validate(event.data)


async def outbox_envelopes(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as session:
        rows = await session.execute(select(outbox.c.envelope).order_by(outbox.c.seq))
    return [dict(envelope) for (envelope,) in rows]


def test_every_contract_is_a_valid_json_schema_for_a_consumed_type() -> None:
    files = sorted(path.stem for path in EVENTS.glob("*.json"))
    assert files == sorted(CONSUMER_MODELS)
    for event_type in files:
        Draft202012Validator.check_schema(json.loads((EVENTS / f"{event_type}.json").read_text()))


# -- order: order.created, order.paid, order.cancelled (every reason) -------------------


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'order.db'}"
    migrated_database(ORDER_MIGRATIONS, tmp_path, "order")
    neighbours = Neighbours(inventory=FakeInventory({"p-tea": 100, "p-mug": 100, "p-pot": 0}))
    async with running_shop(
        tmp_path, url, TokenMinter(), neighbours, payment_deadline_seconds=0.3
    ) as running:
        yield running


async def test_the_order_service_writes_events_that_fit_their_contracts(shop: Shop) -> None:
    payments = shop.neighbours.payments
    paid = await shop.place("ada", ("p-tea", 2), ("p-mug", 1))
    await shop.final(paid)
    sold_out = await shop.place("bob", ("p-pot", 1))
    await shop.final(sold_out)
    payments.mode = "decline"
    declined = await shop.place("cy", ("p-tea", 1))
    await shop.final(declined)
    payments.mode = "outage"
    unreachable = await shop.place("di", ("p-mug", 3))
    await shop.final(unreachable)

    envelopes = await outbox_envelopes(shop.db)
    for envelope in envelopes:
        assert_conforms(envelope)
    kinds = {(e["type"], e["data"].get("reason")) for e in envelopes}
    assert kinds == {
        ("order.created", None),
        ("order.paid", None),
        ("order.cancelled", "out_of_stock"),
        ("order.cancelled", "payment_declined"),
        ("order.cancelled", "payment_unavailable"),
    }


# -- inventory: stock.changed -----------------------------------------------------------


def line(product_id: str, qty: int) -> pb.Line:
    return pb.Line(product_id=product_id, qty=qty)


@pytest.fixture
async def inventory_calls(tmp_path: Path) -> AsyncIterator[tuple[InventoryStub, Database]]:
    settings = InventorySettings(home=tmp_path, port=0, environment="test")
    db = migrated_database(INVENTORY_MIGRATIONS, tmp_path, "inventory")
    bus = Bus("memory://inventory", "inventory")  # each test (its own loop) starts empty
    process = build_inventory(settings, db=db, bus=bus)
    await process.start()
    await process.service.seed(SeedStock((("p-tea", 5), ("p-mug", 0))))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{process.port}") as channel:
            yield InventoryStub(channel), db
    finally:
        await process.stop()


async def test_the_inventory_service_writes_events_that_fit_their_contract(
    inventory_calls: tuple[InventoryStub, Database],
) -> None:
    stub, db = inventory_calls
    await stub.Reserve(pb.ReserveRequest(order_id="o1", lines=[line("p-tea", 2)]))
    await stub.Commit(pb.OrderRef(order_id="o1"))
    await stub.Reserve(pb.ReserveRequest(order_id="o2", lines=[line("p-tea", 3)]))
    await stub.Release(pb.OrderRef(order_id="o2"))
    await stub.AdjustStock(pb.AdjustStockRequest(product_id="p-mug", delta=7, request_id="r1"))
    await stub.AdjustStock(pb.AdjustStockRequest(product_id="p-mug", delta=-7, request_id="r2"))

    envelopes = [e for e in await outbox_envelopes(db) if e["type"] == "stock.changed"]
    for envelope in envelopes:
        assert_conforms(envelope)
    # Each change one event: reserve, commit, reserve, release, two adjustments.
    assert len(envelopes) >= 6
    assert {e["data"]["available"] for e in envelopes} >= {0, 3, 7}
