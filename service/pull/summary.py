"""The pulled record as a planner reads it: problems, medications, allergies, recent encounters,
vital signs and labs, each with the EHR it came from and its date.

Pure functions over the stored JSON of `ehr_records` (what the EHRs sent, as sent): nothing is
mapped into the case here. Values are shown as the EHR wrote them (decimals keep their digits:
the JSON is read with `Decimal`), and an entry the EHR marked `entered-in-error` is left out, as
FHIR R4 asks of such records (`Condition.verificationStatus`, `Observation.status`,
`MedicationRequest.status`, `AllergyIntolerance.verificationStatus`: "should not be used").

Which dates: Condition `onset[x]` else `recordedDate` (US Core Condition); MedicationRequest
`authoredOn`; AllergyIntolerance `onset[x]` else `recordedDate`; Encounter `period.start`;
Observation `effective[x]` else `issued` (US Core Vital Signs and Laboratory Result).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SUMMARY_TYPES = (
    "Condition",
    "MedicationRequest",
    "MedicationStatement",
    "AllergyIntolerance",
    "Encounter",
    "Observation",
)
VITAL_SIGNS = "vital-signs"
LABORATORY = "laboratory"
RECENT_ENCOUNTERS = 10
_ERROR_STATES = frozenset({"entered-in-error"})
_REFUTED = frozenset({"entered-in-error", "refuted"})


@dataclass(frozen=True)
class Source:
    connection_id: str
    connection_name: str
    resource: str  # Type/id on that EHR
    last_updated: str | None


@dataclass(frozen=True)
class SummaryItem:
    text: str
    date: str | None
    status: str | None
    source: Source
    code: str | None = None  # system|code of the first coding, to group by
    value: str | None = None
    category: str | None = None


@dataclass
class PatientSummary:
    problems: list[SummaryItem] = field(default_factory=list)
    medications: list[SummaryItem] = field(default_factory=list)
    allergies: list[SummaryItem] = field(default_factory=list)
    encounters: list[SummaryItem] = field(default_factory=list)
    vital_signs: list[SummaryItem] = field(default_factory=list)
    labs: list[SummaryItem] = field(default_factory=list)


@dataclass(frozen=True)
class StoredRecord:
    """One `ehr_records` row, as the summary needs it."""

    connection_id: str
    connection_name: str
    resource_type: str
    remote_id: str
    content: bytes


Json = Mapping[str, Any]


def summarise(records: Iterable[StoredRecord]) -> PatientSummary:
    summary = PatientSummary()
    observations: list[SummaryItem] = []
    for record in records:
        resource: Json = json.loads(record.content, parse_float=Decimal)
        source = Source(
            record.connection_id,
            record.connection_name,
            f"{record.resource_type}/{record.remote_id}",
            _text(resource.get("meta", {}).get("lastUpdated")),
        )
        kind = record.resource_type
        if kind == "Condition":
            _add(summary.problems, _condition(resource, source))
        elif kind in ("MedicationRequest", "MedicationStatement"):
            _add(summary.medications, _medication(resource, source))
        elif kind == "AllergyIntolerance":
            _add(summary.allergies, _allergy(resource, source))
        elif kind == "Encounter":
            _add(summary.encounters, _encounter(resource, source))
        elif kind == "Observation":
            _add(observations, _observation(resource, source))
    for items in (summary.problems, summary.medications, summary.allergies):
        items.sort(key=_newest_first)
    summary.encounters = sorted(summary.encounters, key=_newest_first)[:RECENT_ENCOUNTERS]
    summary.vital_signs = _latest_per_code(o for o in observations if o.category == VITAL_SIGNS)
    summary.labs = _latest_per_code(o for o in observations if o.category == LABORATORY)
    return summary


def _add(items: list[SummaryItem], item: SummaryItem | None) -> None:
    if item is not None:
        items.append(item)


def _newest_first(item: SummaryItem) -> tuple[bool, float]:
    """Undated entries last; a partial date (`2024`, `2024-03`) counts from its start, and an
    offset is honoured, so `…T10:00+01:00` is older than `…T09:30Z`."""
    if item.date is None:
        return (True, 0.0)
    return (False, -_moment(item.date).timestamp())


def _moment(date: str) -> dt.datetime:
    padded = date + "-01-01"[len(date) - 4 :] if len(date) in (4, 7) else date
    try:
        moment = dt.datetime.fromisoformat(padded)
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _latest_per_code(items: Iterable[SummaryItem]) -> list[SummaryItem]:
    latest: dict[str, SummaryItem] = {}
    for item in sorted(items, key=_newest_first):
        latest.setdefault(item.code or item.text, item)
    return sorted(latest.values(), key=lambda i: i.text.lower())


def _condition(resource: Json, source: Source) -> SummaryItem | None:
    if _code_of(resource.get("verificationStatus")) in _REFUTED:
        return None
    categories = [_code_of(c) for c in resource.get("category", [])]
    return SummaryItem(
        text=_concept_text(resource.get("code")) or "(no description)",
        date=_first(resource, "onsetDateTime", "onsetPeriod.start", "recordedDate"),
        status=_code_of(resource.get("clinicalStatus")),
        source=source,
        code=_coding_key(resource.get("code")),
        category=next((c for c in categories if c), None),
    )


def _medication(resource: Json, source: Source) -> SummaryItem | None:
    if resource.get("status") in _ERROR_STATES:
        return None
    dosage = resource.get("dosageInstruction") or resource.get("dosage") or []
    return SummaryItem(
        text=_concept_text(resource.get("medicationCodeableConcept"))
        or _text(resource.get("medicationReference", {}).get("display"))
        or "(medication not named)",
        date=_first(resource, "authoredOn", "effectiveDateTime", "effectivePeriod.start"),
        status=_text(resource.get("status")),
        source=source,
        code=_coding_key(resource.get("medicationCodeableConcept")),
        value=_text(dosage[0].get("text")) if dosage else None,
    )


def _allergy(resource: Json, source: Source) -> SummaryItem | None:
    if _code_of(resource.get("verificationStatus")) in _REFUTED:
        return None
    reactions = [
        _concept_text(m)
        for reaction in resource.get("reaction", [])
        for m in reaction.get("manifestation", [])
    ]
    return SummaryItem(
        text=_concept_text(resource.get("code")) or "(substance not named)",
        date=_first(resource, "onsetDateTime", "recordedDate"),
        status=_code_of(resource.get("clinicalStatus")),
        source=source,
        code=_coding_key(resource.get("code")),
        value=", ".join(r for r in reactions if r) or None,
        category=_text(resource.get("criticality")),
    )


def _encounter(resource: Json, source: Source) -> SummaryItem | None:
    if resource.get("status") in _ERROR_STATES:
        return None
    types = [_concept_text(t) for t in resource.get("type", [])]
    encounter_class = resource.get("class", {})
    return SummaryItem(
        text=next((t for t in types if t), None)
        or _text(encounter_class.get("display"))
        or _text(encounter_class.get("code"))
        or "Encounter",
        date=_first(resource, "period.start"),
        status=_text(resource.get("status")),
        source=source,
        category=_text(encounter_class.get("code")),
    )


def _observation(resource: Json, source: Source) -> SummaryItem | None:
    if resource.get("status") in (*_ERROR_STATES, "cancelled"):
        return None
    categories = {
        _text(coding.get("code"))
        for category in resource.get("category", [])
        for coding in category.get("coding", [])
    }
    category = next((c for c in (VITAL_SIGNS, LABORATORY) if c in categories), None)
    if category is None:
        return None
    value = _value(resource)
    components = [
        f"{_concept_text(c.get('code'))}: {_value(c)}"
        for c in resource.get("component", [])
        if _value(c) is not None
    ]
    return SummaryItem(
        text=_concept_text(resource.get("code")) or "(observation not named)",
        date=_first(resource, "effectiveDateTime", "effectivePeriod.start", "issued"),
        status=_text(resource.get("status")),
        source=source,
        code=_coding_key(resource.get("code")),
        value=value if value is not None else ("; ".join(components) or None),
        category=category,
    )


def _value(element: Json) -> str | None:
    quantity = element.get("valueQuantity")
    if quantity is not None:
        unit = quantity.get("unit") or quantity.get("code") or ""
        comparator = quantity.get("comparator", "")
        return f"{comparator}{quantity.get('value')} {unit}".strip()
    for key in ("valueString", "valueBoolean", "valueInteger", "valueDateTime"):
        if key in element:
            return str(element[key])
    if "valueCodeableConcept" in element:
        return _concept_text(element["valueCodeableConcept"])
    return None


def _first(resource: Json, *paths: str) -> str | None:
    for path in paths:
        value: Any = resource
        for step in path.split("."):
            value = value.get(step) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            return value
    return None


def _concept_text(concept: Any) -> str | None:
    if not isinstance(concept, Mapping):
        return None
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding", []):
        if coding.get("display") or coding.get("code"):
            return str(coding.get("display") or coding.get("code"))
    return None


def _code_of(concept: Any) -> str | None:
    if not isinstance(concept, Mapping):
        return None
    return next((str(c["code"]) for c in concept.get("coding", []) if c.get("code")), None)


def _coding_key(concept: Any) -> str | None:
    if not isinstance(concept, Mapping):
        return None
    for coding in concept.get("coding", []):
        if coding.get("code"):
            return f"{coding.get('system', '')}|{coding['code']}"
    return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
