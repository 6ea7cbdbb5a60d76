"""The criterion of conditional interactions (`PUT Type?…`, `If-None-Exist`): an identifier,
system|value, which is what case resources are reliably keyed by."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.errors import BadRequest
from service.fhir_store.models import SearchEntry


def identifier_criterion(query: Sequence[tuple[str, str]], where: str) -> tuple[str, str]:
    """(system, value) of a query that is exactly `identifier=system|value`; 400 otherwise."""
    if len(query) != 1 or query[0][0] != "identifier" or "|" not in query[0][1]:
        raise BadRequest(
            f"{where} supports identifier=system|value only", extra={"expression": [where]}
        )
    system, value = query[0][1].split("|", 1)
    return system, value


async def ids_with_identifier(
    session: AsyncSession, resource_type: str, system: str, value: str
) -> list[str]:
    rows = await session.scalars(
        select(SearchEntry.resource_id).where(
            SearchEntry.resource_type == resource_type,
            SearchEntry.param == "identifier",
            SearchEntry.system == system,
            SearchEntry.value == value,
        )
    )
    return sorted(set(rows))
