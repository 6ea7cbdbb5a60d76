"""Which cases and patients a transaction changed, noted on the session for work that must
happen in the same transaction before it commits (the FHIR projection)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

_CASES = "casebridge.changed_cases"
_PATIENTS = "casebridge.changed_patients"


def note_case_changed(session: AsyncSession, case_id: str) -> None:
    session.info.setdefault(_CASES, set()).add(case_id)


def note_patient_changed(session: AsyncSession, patient_id: str) -> None:
    session.info.setdefault(_PATIENTS, set()).add(patient_id)


def take_changes(session: AsyncSession) -> tuple[set[str], set[str]]:
    """The changed case and patient ids, cleared from the session."""
    return session.info.pop(_CASES, set()), session.info.pop(_PATIENTS, set())
