"""The FHIR element order of each resource type, to keep restored resources canonical."""

from __future__ import annotations

from functools import cache

from mappings.fhir import FHIRResourceModel, resource_model


@cache
def element_order(resource_type: str) -> tuple[str, ...]:
    model: type[FHIRResourceModel] = resource_model(resource_type)
    return tuple(model.elements_sequence())
