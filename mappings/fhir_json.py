"""FHIR JSON in and out with decimals exact: `1.50` stays `1.50`.

FHIR R4 §2.24.0.1 (decimal): the precision of a decimal is significant, and §2.6.2 (JSON)
says decimals are JSON numbers written as they are. orjson reads numbers as binary floats
(`1.50` -> `1.5`, `12345678901234567890.123456789` -> `1.2345678901234567e+19`), so bodies
are read with the standard library's parser and `parse_float=Decimal`, and written with orjson,
which emits a `Decimal` as its exact text (`orjson.Fragment`).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def loads(body: bytes | str) -> Any:
    """Parse JSON, every non-integer number as a `Decimal`, and an integer beyond 64 bits too
    (orjson writes no larger int); raises `ValueError` if not JSON."""
    return json.loads(body, parse_float=Decimal, parse_int=_integer, parse_constant=_no_constant)


def _integer(text: str) -> int | Decimal:
    value = int(text)
    return value if _INT64_MIN <= value <= _UINT64_MAX else Decimal(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _exact(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> bytes:
    """orjson's bytes, with each `Decimal` written as its exact lexical form."""
    return orjson.dumps(value, default=_exact)
