"""contracts/asyncapi.yaml is in step with the contracts and the code: every event and
quote schema is a channel's payload and every payload is a schema in contracts/; the
services that send or receive on a channel are exactly the services whose code names
that message (by its type or subject, or the constant or model contracts/ gives it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .tools import CONTRACTS, ROOT

SERVICES = ROOT / "src" / "bazaar" / "services"
EVENT_CHANNEL = "bazaar.events."
# How code names a message: the type or subject, or the names bazaar.contracts gives it
# (services may use either while they move to bazaar.contracts).
NAMES = {
    "order.created": ("ORDER_CREATED", "OrderCreated"),
    "order.paid": ("ORDER_PAID", "OrderPaid"),
    "order.cancelled": ("ORDER_CANCELLED", "OrderCancelled"),
    "stock.changed": ("STOCK_CHANGED", "StockChanged"),
    "bazaar.rpc.catalog.quote": ("QUOTE_SUBJECT", "QuoteRequest"),
}


def document() -> dict[str, Any]:
    return yaml.safe_load((CONTRACTS / "asyncapi.yaml").read_text())


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def message_of(address: str) -> str:
    return address.removeprefix(EVENT_CHANNEL)


def declared() -> dict[str, set[str]]:
    """Service -> the messages (event types, request subjects) it sends or receives."""
    doc = document()
    by_service: dict[str, set[str]] = {}
    for operation in doc["operations"].values():
        channel = operation["channel"]["$ref"].removeprefix("#/channels/")
        address = doc["channels"][channel]["address"]
        by_service.setdefault(operation["x-service"], set()).add(message_of(address))
    return by_service


def named_in_code(service: Path) -> set[str]:
    source = "\n".join(
        path.read_text() for path in service.rglob("*.py") if "tests" not in path.parts
    )
    found = set()
    for message, names in NAMES.items():
        words = "|".join(map(re.escape, names))
        if f'"{message}"' in source or re.search(rf"\b({words})\b", source):
            found.add(message)
    return found


def test_every_schema_is_a_payload_and_every_payload_a_schema() -> None:
    files = {f"./{p.relative_to(CONTRACTS)}" for p in CONTRACTS.glob("[eq]*/*.json")}
    files = {f for f in files if f.startswith(("./events/", "./quotes/"))}
    external = {ref for ref in refs(document()) if not ref.startswith("#")}
    assert external == files


def test_every_event_type_has_its_channel() -> None:
    addresses = {c["address"] for c in document()["channels"].values() if c["address"]}
    events = {f"{EVENT_CHANNEL}{p.stem}" for p in (CONTRACTS / "events").glob("*.json")}
    assert events <= addresses
    assert set(NAMES) == {message_of(a) for a in addresses}


def test_the_services_on_each_channel_are_the_ones_whose_code_names_it() -> None:
    in_code = {
        service.name: found
        for service in sorted(SERVICES.iterdir())
        if service.is_dir() and (found := named_in_code(service))
    }
    assert declared() == in_code


def test_every_event_has_one_producer_and_a_consumer() -> None:
    doc = document()
    for name, channel in doc["channels"].items():
        if not str(channel["address"]).startswith(EVENT_CHANNEL):
            continue
        actions = [
            op["action"]
            for op in doc["operations"].values()
            if op["channel"]["$ref"] == f"#/channels/{name}"
        ]
        assert actions.count("send") == 1 and "receive" in actions, name
