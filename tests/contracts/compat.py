"""Compatibility of a JSON Schema contract (an event's data, the price quote) with its
last released version.

A message contract has a writer (the producer, or the quote's caller) and readers (the
consumers, or catalog). Either side may be deployed first, and events written by the old
version still sit in the outbox and the stream when the new one starts, so a change must
hold both ways:

- forward: a reader of the released version accepts what a writer of the current one
  sends (removing or retyping a required field breaks it);
- backward: a reader of the current version accepts what a writer of the released one
  sent (adding a required field, or tightening a limit, breaks it).

Readers ignore fields they do not know (contracts/README.md), so adding or removing an
optional field is compatible. The checker knows the keywords our schemas use and refuses
any other, rather than passing a change it cannot judge.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "examples", "$comment"})
JUDGED = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "pattern",
        "format",
        *("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"),
    }
)
# keyword -> True when a larger value accepts more (an upper bound).
BOUNDS = {
    "minimum": False,
    "maximum": True,
    "minLength": False,
    "maxLength": True,
    "minItems": False,
    "maxItems": True,
}


def breaking_changes(contract: str, released: Schema, current: Schema) -> list[str]:
    """Every way `current` breaks a reader or a writer of `released`, each naming the
    contract and the field."""
    forward = [
        f"{contract}: {problem} (a consumer of the released version would reject it)"
        for problem in rejected(reader=released, writer=current)
    ]
    backward = [
        f"{contract}: {problem} (what a producer of the released version sends would be rejected)"
        for problem in rejected(reader=current, writer=released)
    ]
    return forward + backward


def rejected(reader: Schema, writer: Schema, path: str = "") -> list[str]:
    """Where a message valid under `writer` may be invalid under `reader`."""
    _check_known(reader, path)
    _check_known(writer, path)
    problems = _type_problems(reader, writer, path)
    if problems:
        return problems  # a retyped field: its limits no longer compare
    problems += _enum_problems(reader, writer, path)
    problems += _bound_problems(reader, writer, path)
    for keyword in ("pattern", "format"):
        if keyword in reader and reader[keyword] != writer.get(keyword):
            problems.append(f"{_name(path)}: {keyword} changed")
    problems += _object_problems(reader, writer, path)
    if "items" in reader and "items" in writer:
        problems += rejected(reader["items"], writer["items"], f"{path}[]")
    return problems


def _check_known(schema: Schema, path: str) -> None:
    unknown = set(schema) - JUDGED - ANNOTATIONS
    if unknown:
        raise ValueError(f"{_name(path)}: the compatibility check cannot judge {sorted(unknown)}")


def _types(schema: Schema) -> set[str] | None:
    """The JSON types a schema admits (None: any), integer counted as a number."""
    declared = schema.get("type")
    if declared is None and "enum" in schema:
        declared = sorted({_json_type(value) for value in schema["enum"]})
    if declared is None and "const" in schema:
        declared = _json_type(schema["const"])
    if declared is None:
        return None
    return {declared} if isinstance(declared, str) else set(declared)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names = {str: "string", float: "number", list: "array", dict: "object", type(None): "null"}
    return names[type(value)]


def _type_problems(reader: Schema, writer: Schema, path: str) -> list[str]:
    wanted, sent = _types(reader), _types(writer)
    if wanted is None:
        return []
    if "number" in wanted:
        wanted = wanted | {"integer"}
    if sent is None or not sent <= wanted:
        was = "/".join(sorted(sent)) if sent else "anything"
        return [f"{_name(path)}: retyped: {was} where {'/'.join(sorted(wanted))} is read"]
    return []


def _enum_problems(reader: Schema, writer: Schema, path: str) -> list[str]:
    allowed = reader.get("enum", [reader["const"]] if "const" in reader else None)
    if allowed is None:
        return []
    sent = writer.get("enum", [writer["const"]] if "const" in writer else None)
    if sent is None:
        return [f"{_name(path)}: any value may be sent where only {allowed} is read"]
    extra = [value for value in sent if value not in allowed]
    return [f"{_name(path)}: value {value!r} is not one the reader knows" for value in extra]


def _bound_problems(reader: Schema, writer: Schema, path: str) -> list[str]:
    problems = []
    for keyword, upper in BOUNDS.items():
        if keyword not in reader:
            continue
        limit, sent = reader[keyword], writer.get(keyword)
        looser = sent is None or (sent > limit if upper else sent < limit)
        if looser:
            problems.append(f"{_name(path)}: {keyword} {limit} is read, {sent} may be sent")
    return problems


def _object_problems(reader: Schema, writer: Schema, path: str) -> list[str]:
    problems = []
    sent_always = set(writer.get("required", []))
    for field in reader.get("required", []):
        if field not in sent_always:
            how = "is not sent" if field not in writer.get("properties", {}) else "is optional"
            problems.append(f"field '{_join(path, field)}': required by the reader, {how}")
    read = reader.get("properties", {})
    sent = writer.get("properties", {})
    for field in read.keys() & sent.keys():
        problems += rejected(read[field], sent[field], _join(path, field))
    return problems


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def _name(path: str) -> str:
    return f"field '{path}'" if path else "the message"
