"""Builders and readers for FHIR datatypes as plain JSON dicts.

The mappings build plain dicts (validated once at the end) because that is several times
cheaper than building fhir.resources models. Builders never put None or empty values in a
dict, so the JSON they give is canonical FHIR JSON.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from mappings.lexical_forms import first_instant

JsonDict = dict[str, Any]


def compact(**elements: Any) -> JsonDict:
    """A dict of the given elements that are neither None nor empty."""
    return {k: v for k, v in elements.items() if v is not None and v != [] and v != {}}


def coding(system: str | None, code: str | None, display: str | None = None) -> JsonDict:
    return compact(system=system, code=code, display=display)


def codeable_concept(codings: Iterable[JsonDict] = (), text: str | None = None) -> JsonDict:
    return compact(coding=[c for c in codings if c] or None, text=text)


def reference(
    target: str | None = None, display: str | None = None, *, type_: str | None = None
) -> JsonDict:
    return compact(reference=target, type=type_, display=display)


def fhir_datetime(value: dt.datetime) -> str:
    """FHIR dateTime/instant. FHIR requires a zone with a time, so a naive value is read as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


def fhir_date(value: dt.date) -> str:
    return value.isoformat()


def fhir_decimal(value: Decimal) -> int | float:
    """JSON number for a Decimal: integral values stay integers, so `160` round-trips as `160`."""
    return int(value) if value == value.to_integral_value() else float(value)


def parse_datetime(value: object) -> dt.datetime | None:
    """A FHIR date, partial date or dateTime as an aware datetime (its first instant; dates
    read as midnight UTC); None for anything else.

    The typed value loses the precision and the offset; `mappings.lexical_forms` keeps the
    received form beside it and writes it back while the value is unchanged.
    """
    return first_instant(value) if isinstance(value, str) else None


def parse_date(value: object) -> dt.date | None:
    """A FHIR date or partial date (`2017`, `2017-03`) as its first day, the date part of a
    dateTime; None otherwise."""
    if not isinstance(value, str):
        return None
    instant = first_instant(value[:10])
    return None if instant is None else instant.date()


def first_coding(concept: object, system: str | None = None) -> Mapping[str, Any] | None:
    """The first Coding of a CodeableConcept dict (of `system`, if given)."""
    if not isinstance(concept, Mapping):
        return None
    for item in concept.get("coding") or ():
        if isinstance(item, Mapping) and (system is None or item.get("system") == system):
            return item
    return None


def codes_of(concepts: object, system: str) -> list[str]:
    """Every code of `system` in a list of CodeableConcept dicts."""
    found: list[str] = []
    if not isinstance(concepts, list):
        return found
    for concept in concepts:
        if isinstance(concept, Mapping):
            for item in concept.get("coding") or ():
                if isinstance(item, Mapping) and item.get("system") == system and item.get("code"):
                    found.append(str(item["code"]))
    return found


def extension_values(resource: Mapping[str, Any], url: str) -> list[Mapping[str, Any]]:
    return [
        e for e in resource.get("extension") or () if isinstance(e, Mapping) and e.get("url") == url
    ]
