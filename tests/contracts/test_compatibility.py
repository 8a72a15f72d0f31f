"""Every message contract on the bus (the event schemas, the price quote's request and
reply) is compatible with its last released version in contracts/released/, both ways
(compat.py says what that means). A failure names the contract and the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from .compat import Schema, breaking_changes

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
RELEASED = CONTRACTS / "released"
KINDS = ("events", "quotes")


def schemas(root: Path) -> dict[str, Path]:
    """Contract name ("events/order.paid") -> its schema file under `root`."""
    return {
        f"{kind}/{path.stem}": path
        for kind in KINDS
        for path in sorted((root / kind).glob("*.json"))
    }


def load(path: Path) -> Schema:
    return json.loads(path.read_text())


RELEASED_SCHEMAS = schemas(RELEASED)


def test_every_released_contract_is_still_there() -> None:
    # A contract is retired by a release after its last reader is gone (README: contract).
    missing = sorted(RELEASED_SCHEMAS.keys() - schemas(CONTRACTS).keys())
    assert not missing, f"contracts removed while released: {missing}"


def test_the_quote_has_schemas_like_the_events() -> None:
    assert {"quotes/quote.request", "quotes/quote.reply"} <= RELEASED_SCHEMAS.keys()


def tree_changes(root: Path) -> list[str]:
    """The breaking changes of every contract under `root` against `root`/released."""
    problems = []
    for name, released in schemas(root / "released").items():
        current = root / released.relative_to(root / "released")
        if current.exists():
            problems += breaking_changes(name, load(released), load(current))
    return problems


@pytest.mark.parametrize("name", sorted(RELEASED_SCHEMAS))
def test_the_contract_is_compatible_with_its_released_version(name: str) -> None:
    current = CONTRACTS / RELEASED_SCHEMAS[name].relative_to(RELEASED)
    problems = breaking_changes(name, load(RELEASED_SCHEMAS[name]), load(current))
    assert not problems, "breaking changes:\n" + "\n".join(problems)


# -- the checker itself, on deliberate changes to a copy of a released schema -----------


@pytest.fixture
def paid() -> Schema:
    return load(RELEASED / "events" / "order.paid.json")


def changes(schema: Schema) -> list[str]:
    return breaking_changes(
        "events/order.paid", load(RELEASED / "events" / "order.paid.json"), schema
    )


def test_a_removed_required_field_is_named(paid: Schema) -> None:
    paid["required"].remove("email")
    del paid["properties"]["email"]
    problems = changes(paid)
    print("\n".join(problems))  # what `make contracts` shows
    assert problems == [
        "events/order.paid: field 'email': required by the reader, is not sent "
        "(a consumer of the released version would reject it)"
    ]


def test_a_retyped_field_is_named(paid: Schema) -> None:
    paid["properties"]["total_cents"] = {"type": "string"}
    problems = changes(paid)
    assert problems and all("field 'total_cents': retyped" in p for p in problems), problems


def test_a_retyped_nested_field_is_named(paid: Schema) -> None:
    paid["properties"]["items"]["items"]["properties"]["qty"]["type"] = "number"
    problems = changes(paid)
    assert any("field 'items[].qty': retyped: number where integer is read" in p for p in problems)


def test_a_new_required_field_breaks_the_readers_of_old_events(paid: Schema) -> None:
    paid["required"].append("currency")
    paid["properties"]["currency"] = {"type": "string"}
    assert changes(paid) == [
        "events/order.paid: field 'currency': required by the reader, is not sent (what a "
        "producer of the released version sends would be rejected)"
    ]


def test_a_new_optional_field_is_compatible(paid: Schema) -> None:
    paid["properties"]["currency"] = {"type": "string", "maxLength": 3}
    assert changes(paid) == []


def test_a_new_enum_value_breaks_old_readers() -> None:
    released = load(RELEASED / "events" / "order.cancelled.json")
    current = copy.deepcopy(released)
    current["properties"]["reason"]["enum"].append("fraud_suspected")
    problems = breaking_changes("events/order.cancelled", released, current)
    assert problems == [
        "events/order.cancelled: field 'reason': value 'fraud_suspected' is not one the "
        "reader knows (a consumer of the released version would reject it)"
    ]


def test_a_tightened_limit_breaks_old_writers() -> None:
    released = load(RELEASED / "quotes" / "quote.request.json")
    current = copy.deepcopy(released)
    current["properties"]["product_ids"]["maxItems"] = 50
    problems = breaking_changes("quotes/quote.request", released, current)
    assert problems == [
        "quotes/quote.request: field 'product_ids': maxItems 50 is read, 100 may be sent "
        "(what a producer of the released version sends would be rejected)"
    ]


def test_a_keyword_the_checker_cannot_judge_is_refused(paid: Schema) -> None:
    paid["properties"]["email"]["oneOf"] = [{"format": "email"}]
    with pytest.raises(ValueError, match=r"field 'email'.*cannot judge.*oneOf"):
        changes(paid)


def test_a_break_in_a_copy_of_the_contracts_is_reported(tmp_path: Path) -> None:
    """The same check as above over a whole tree, as `make contracts` would see it."""
    for source in [*schemas(CONTRACTS).values(), *RELEASED_SCHEMAS.values()]:
        (tmp_path / source.relative_to(CONTRACTS)).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source.relative_to(CONTRACTS)).write_text(source.read_text())
    created = tmp_path / "events" / "order.created.json"
    schema = load(created)
    schema["required"].remove("total_cents")
    created.write_text(json.dumps(schema))

    problems = tree_changes(tmp_path)
    assert problems == [
        "events/order.created: field 'total_cents': required by the reader, is optional "
        "(a consumer of the released version would reject it)"
    ]
