"""What a connection pulls: which resource types, and which Observation categories. One scope per
connection, read by the per-patient pull (a search per type, `category=` on Observation) and by
the Bulk pull (`_type` and `_typeFilter`, Bulk Data Access IG v2 §"Query Parameters") alike, so
that both store the same record of a patient.

A connection without a scope of its own pulls `DEFAULT_TYPES` and the categories of
`Settings.pull_observation_categories`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from service.ehr.client import JsonObject
from service.pull.reader import PULLABLE_TYPES, RECORD_TYPES

DEFAULT_TYPES = RECORD_TYPES
# Codes of http://terminology.hl7.org/CodeSystem/observation-category and US Core's category
# system (functional-status, sdoh, ...): tokens, matched on the code alone.
ObservationCategory = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-.]+$")
]


class PullScope(BaseModel):
    """Stored on the connection as JSON (`model_dump(mode="json")`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TYPES),
        max_length=len(PULLABLE_TYPES),
        description="Resource types pulled besides the Patient, one of: "
        + ", ".join(PULLABLE_TYPES)
        + ".",
    )
    observation_categories: list[ObservationCategory] = Field(
        default_factory=list,
        max_length=50,
        description="Observation categories pulled (vital-signs, laboratory, social-history, "
        "survey, ...); empty: every Observation.",
    )

    @field_validator("types")
    @classmethod
    def _pullable(cls, types: list[str]) -> list[str]:
        unknown = [t for t in types if t not in PULLABLE_TYPES]
        if unknown:
            raise ValueError(f"not a type a pull reads: {', '.join(unknown)}")
        return list(dict.fromkeys(types))


def effective_scope(stored: JsonObject | None, default_categories: Sequence[str]) -> PullScope:
    """The connection's own scope, else the defaults."""
    if stored is not None:
        return PullScope.model_validate(stored)
    return PullScope(observation_categories=list(default_categories))


def bulk_types(scope: PullScope) -> list[str]:
    """The `_type` of an export: the Patient (to match and link each one first) and the scope."""
    return ["Patient", *(t for t in scope.types if t != "Patient")]


def bulk_type_filters(scope: PullScope, types: Sequence[str]) -> list[str]:
    """The `_typeFilter` of an export: Observations of the scope's categories. One filter with
    the categories OR-ed in its `category` value (a comma inside a search value is an OR, FHIR
    R4 §3.1.1.4.3); the filter is a search query, so the comma is percent-encoded in it, and the
    commas of `_typeFilter` itself stay free to separate filters (Bulk Data IG v2)."""
    if "Observation" not in types or not scope.observation_categories:
        return []
    return ["Observation?category=" + quote(",".join(scope.observation_categories), safe="")]
