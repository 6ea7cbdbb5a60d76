"""Readers shared by the inverse mappings: subjects, references, codings, dates."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from mappings.case_model import CodingRecord
from mappings.fhir_datatypes import first_coding
from mappings.from_fhir.rejection import reject
from mappings.to_fhir.context import CaseContext

E = TypeVar("E", bound=StrEnum)


def subject_context(resource: Mapping[str, Any], case_id: str | None) -> CaseContext:
    """The CaseContext a received resource belongs to, from its `subject`.

    The subject must be a Patient, or a bare display (then the case has no patient id yet).
    """
    subject = resource.get("subject") or {}
    target = subject.get("reference")
    kind = resource["resourceType"]
    if target is None:
        return CaseContext(case_id, None, subject.get("display"))
    if not isinstance(target, str) or not target.startswith("Patient/") or "/" in target[8:]:
        if isinstance(target, str) and "://" in target:
            # An absolute reference names another server's Patient (R4 references.html#literal):
            # the case needs one of its own patients.
            raise reject(
                f"{kind}.subject",
                f"{target} is a patient on another server; reference a Patient here "
                "(Patient/[id]), created first or in the same transaction",
            )
        raise reject(f"{kind}.subject", "CaseBridge keeps only resources about a Patient")
    return CaseContext(case_id, target[8:], subject.get("display"))


def referenced_ids(references: object, resource_type: str) -> tuple[str, ...]:
    """Ids of the `ResourceType/id` references in a list; other references are skipped."""
    prefix = f"{resource_type}/"
    found: list[str] = []
    for item in references if isinstance(references, list) else ():
        target = item.get("reference") if isinstance(item, Mapping) else None
        if (
            isinstance(target, str)
            and target.startswith(prefix)
            and "/" not in target[len(prefix) :]
        ):
            found.append(target[len(prefix) :])
    return tuple(found)


def coding_record(concept: object) -> CodingRecord | None:
    """The first Coding of a CodeableConcept as a record (extras keep the rest)."""
    found = first_coding(concept)
    if found is None or not (found.get("code") or found.get("display")):
        return None
    return CodingRecord(
        system=found.get("system"), code=found.get("code"), display=found.get("display")
    )


def concept_text(concept: object) -> str | None:
    """A CodeableConcept's text, else its first coding's display or code."""
    if not isinstance(concept, Mapping):
        return None
    if concept.get("text"):
        return str(concept["text"])
    found = first_coding(concept)
    if found is not None and (found.get("display") or found.get("code")):
        return str(found.get("display") or found.get("code"))
    return None


def display_of(value: object) -> str | None:
    if isinstance(value, Mapping) and isinstance(value.get("display"), str):
        return str(value["display"])
    return None


def required_code(resource: Mapping[str, Any], element: str, known: Mapping[str, E]) -> E:
    """The internal value of a required-binding code; an unknown code is rejected there."""
    code = resource.get(element)
    if not isinstance(code, str) or code not in known:
        raise reject(
            f"{resource['resourceType']}.{element}",
            f"{code!r} is not a code of the {element} value set",
            "code-invalid",
        )
    return known[code]
