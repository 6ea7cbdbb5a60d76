"""Dates, instants and decimals as the sender wrote them.

The case keeps typed values (a `datetime`, a `date`, a `Decimal`), and the database keeps
them in UTC (`UTCDateTime`) or as numbers. FHIR's lexical forms carry more than the typed
value: a dateTime's precision (`2017`, `2017-03`, `2017-03-05`) and time-zone offset
(`+01:00`), a decimal's trailing zeros (`1.50`; FHIR R4 §2.24.0.1 decimal: "the precision of
the decimal value has significance"). So, next to the typed values, a record keeps the lexical
form of every date-like string and every decimal it received, by JSON path
(`fhir_extras["as_sent"]`), and the re-export writes the received form back wherever the value
at that path still denotes the same thing:

- a date/dateTime/instant: the same first instant (a date or partial date is read as starting
  at midnight UTC, which is how the typed value was made from it);
- a decimal: the same number (compared as binary floats too, so a value that went through a
  float column still matches).

Once the case changes the value (a manager moves the due date), the case's own canonical form
is written. Everything here is pure and JSON-safe: `as_sent` holds strings only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

AS_SENT = "as_sent"

# FHIR R4 date / dateTime / instant (§2.24.0.1), without the digit-range refinements.
_DATE_LIKE = re.compile(
    r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def is_date_like(value: str) -> bool:
    return _DATE_LIKE.fullmatch(value) is not None


def first_instant(value: str) -> dt.datetime | None:
    """The first instant a FHIR date, partial date, dateTime or instant denotes (UTC for dates);
    None when `value` is none of them."""
    if not is_date_like(value):
        return None
    try:
        if len(value) == 4:
            return dt.datetime(int(value), 1, 1, tzinfo=dt.UTC)
        if len(value) == 7:
            return dt.datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=dt.UTC)
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}/{index}")
    else:
        yield path, value


def lexical_forms(received: Mapping[str, Any], generated: Mapping[str, Any]) -> dict[str, str]:
    """Path -> lexical form of the date-like strings and decimals of `received` (parse the body
    with `fhir_json.loads` so decimals arrive as `Decimal`) that a typed value could lose:
    those the case, mapping `received`, does not already write in the same form, and every
    dateTime with an offset other than UTC's (the database keeps instants in UTC)."""
    forms: dict[str, str] = {}
    for path, value in _walk(received, ""):
        if isinstance(value, str) and first_instant(value) is not None:
            now = _at(generated, path)
            if now != value or (len(value) > 10 and not value.endswith(("Z", "+00:00"))):
                forms[path] = value
        elif isinstance(value, Decimal):
            now = _at(generated, path)
            if not isinstance(now, int | float | Decimal) or _json_number(now) != str(value):
                forms[path] = str(value)
    return forms


def _json_number(value: int | float | Decimal) -> str:
    return str(value) if isinstance(value, int | Decimal) else repr(value)


def _at(resource: Any, path: str) -> Any:
    value = resource
    for key in path.split("/")[1:]:
        value = _child(value, int(key) if isinstance(value, list) else key)
    return value


def _same_number(sent: str, now: object) -> bool:
    if isinstance(now, bool) or not isinstance(now, int | float | Decimal):
        return False
    try:
        exact = Decimal(sent)
    except InvalidOperation:
        return False
    return exact == Decimal(now) or float(exact) == float(now)


def _written_back(sent: str, now: object) -> object | None:
    """What to write at a path whose received form was `sent` and whose value is now `now`:
    the received form when it denotes the same, else None (keep `now`)."""
    if isinstance(now, str):
        if now == sent:
            return None
        then_instant, now_instant = first_instant(sent), first_instant(now)
        if then_instant is not None and then_instant == now_instant:
            return sent
        return None
    if _same_number(sent, now):
        return Decimal(sent)
    return None


def apply_lexical_forms(resource: dict[str, Any], forms: Mapping[str, str]) -> dict[str, Any]:
    """`resource` with the received forms written back where the values still match (in place
    on copies of the containers touched; `resource` itself is not modified)."""
    if not forms:
        return resource
    result = dict(resource)
    for path, sent in forms.items():
        keys = path.split("/")[1:]
        container: Any = result
        for key in keys[:-1]:
            step: str | int = int(key) if isinstance(container, list) else key
            child = _child(container, step)
            if not isinstance(child, dict | list):
                break
            copied = dict(child) if isinstance(child, dict) else list(child)
            container[step] = copied
            container = copied
        else:
            last: str | int = int(keys[-1]) if isinstance(container, list) else keys[-1]
            now = _child(container, last)
            replacement = _written_back(sent, now)
            if replacement is not None:
                container[last] = replacement
    return result


def _child(container: Any, step: str | int) -> Any:
    if isinstance(container, dict) and isinstance(step, str):
        return container.get(step)
    if isinstance(container, list) and isinstance(step, int) and 0 <= step < len(container):
        return container[step]
    return None


def comparable(value: Any) -> Any:
    """`value` with every date-like string as its first instant and every number as a float:
    two generated values that differ only by a database round trip (offset normalised to UTC,
    decimal scale) compare equal."""
    if isinstance(value, Mapping):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [comparable(item) for item in value]
    if isinstance(value, str):
        instant = first_instant(value)
        return value if instant is None else instant
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return float(value)
    return value


def json_safe(value: Any) -> Any:
    """`value` with decimals as JSON numbers a JSON column can store (their lexical form is
    kept separately, in `as_sent`)."""
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    return value
