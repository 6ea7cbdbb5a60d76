"""What every resource of a case refers to: the case's ids and the patient."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from mappings.case_model import CaseRecord, PatientRecord, PersonRecord
from mappings.fhir_datatypes import JsonDict, reference
from mappings.to_fhir.people import actor_reference

CARE_TEAM_ID_PREFIX = "careteam-"


def care_team_id(case_id: str) -> str:
    """CareTeam id of a case: `careteam-` + the case's UUID is 45 chars, within FHIR's 64."""
    return f"{CARE_TEAM_ID_PREFIX}{case_id}"


def patient_display(patient: PatientRecord) -> str | None:
    parts = [patient.given_name, patient.family_name]
    name = " ".join(p for p in parts if p)
    return name or None


@dataclass(frozen=True, slots=True)
class CaseContext:
    case_id: str | None
    """None for a resource imported on its own, not (yet) part of a case."""
    patient_id: str | None
    """None only for resources received with a display-only subject."""
    patient_name: str | None = None
    manager: str | None = None
    assessed_at: Mapping[str, dt.datetime] = field(default_factory=dict)
    """Assessment id -> when it was performed (a need's Condition.assertedDate)."""
    people: Mapping[str, PersonRecord] = field(default_factory=dict)
    """Actor id -> professional identity (`mappings.to_fhir.people`)."""

    @classmethod
    def of(cls, case: CaseRecord) -> CaseContext:
        return cls(
            case.id,
            case.patient.id,
            patient_display(case.patient),
            case.manager,
            {a.id: a.performed_at for a in case.assessments},
            {p.actor: p for p in case.people},
        )

    @property
    def subject(self) -> JsonDict:
        target = f"Patient/{self.patient_id}" if self.patient_id else None
        return reference(target, self.patient_name)

    def who(self, value: str) -> JsonDict:
        """A Reference to whoever `value` names: a Practitioner, the service's Organization,
        or a display (`mappings.to_fhir.people`)."""
        return actor_reference(value, self.people)

    @property
    def care_plan(self) -> JsonDict | None:
        """The case's CarePlan; typed, so the link survives rewriting to a urn:uuid."""
        if self.case_id is None:
            return None
        return {"reference": f"CarePlan/{self.case_id}", "type": "CarePlan"}
