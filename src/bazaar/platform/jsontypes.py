"""Request body fields that mean what JSON (and JSON Schema) means.

JSON has one kind of number: `3` and `3.0` are the same value, and JSON Schema's
`"type": "integer"` accepts both. Pydantic's strict `int` refuses `3.0`; its lax `int`
also takes `"3"` and `true`. A strict int with `JSON_INTEGER` after its constraints is in
between: an integral number, however it is written, and nothing else.

    Quantity = Annotated[int, Field(strict=True, ge=1, le=99), JSON_INTEGER]

(After the constraints, so that they still show as `minimum`/`maximum` in the schema.)
"""

from __future__ import annotations

from pydantic import BeforeValidator


def _integral_float_as_int(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # anything else meets the strict int check as it is


JSON_INTEGER = BeforeValidator(_integral_float_as_int)
