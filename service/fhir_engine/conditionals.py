"""The criterion of conditional interactions (`PUT Type?…`, `If-None-Exist`): an identifier,
system|value, which is what case resources are reliably keyed by."""

from __future__ import annotations

from collections.abc import Sequence

from service.errors import BadRequest
from service.fhir_store.repository import ids_with_identifier

__all__ = ["identifier_criterion", "ids_with_identifier"]


def identifier_criterion(query: Sequence[tuple[str, str]], where: str) -> tuple[str, str]:
    """(system, value) of a query that is exactly `identifier=system|value`; 400 otherwise."""
    if len(query) != 1 or query[0][0] != "identifier" or "|" not in query[0][1]:
        raise BadRequest(
            f"{where} supports identifier=system|value only", extra={"expression": [where]}
        )
    system, value = query[0][1].split("|", 1)
    return system, value
