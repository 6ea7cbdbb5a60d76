"""Which cases and patients a transaction changed, and who changed them, noted on the session
for work that must happen in the same transaction before it commits (the FHIR projection)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

_KEY = "casebridge.changes"


@dataclass
class Changes:
    cases: set[str] = field(default_factory=set)
    patients: set[str] = field(default_factory=set)
    actors: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.cases or self.patients)


def _changes(session: AsyncSession) -> Changes:
    changes: Changes = session.info.setdefault(_KEY, Changes())
    return changes


def note_case_changed(session: AsyncSession, case_id: str, actor: str) -> None:
    changes = _changes(session)
    changes.cases.add(case_id)
    changes.actors.add(actor)


def note_patient_changed(session: AsyncSession, patient_id: str, actor: str) -> None:
    changes = _changes(session)
    changes.patients.add(patient_id)
    changes.actors.add(actor)


def take_changes(session: AsyncSession) -> Changes:
    """What the transaction changed so far, cleared from the session."""
    taken: Changes = session.info.pop(_KEY, Changes())
    return taken


# The cases whose FHIR resources got new versions in this transaction, with who changed them:
# the projector notes them, the push outbox reads them (a no-op save notes nothing).
_REPROJECTED_KEY = "casebridge.reprojected"


def note_case_reprojected(session: AsyncSession, case_id: str, author: str | None) -> None:
    reprojected: dict[str, str | None] = session.info.setdefault(_REPROJECTED_KEY, {})
    reprojected[case_id] = author


def take_reprojected_cases(session: AsyncSession) -> dict[str, str | None]:
    """Case id -> author of every case re-projected so far, cleared from the session."""
    taken: dict[str, str | None] = session.info.pop(_REPROJECTED_KEY, {})
    return taken


# Patients newly linked to an EHR connection (or re-linked) in this transaction: their cases
# are pushed to it, though nothing in them changed.
_LINKED_KEY = "casebridge.linked-patients"


def note_patient_linked(session: AsyncSession, patient_id: str) -> None:
    linked: set[str] = session.info.setdefault(_LINKED_KEY, set())
    linked.add(patient_id)


def take_linked_patients(session: AsyncSession) -> set[str]:
    taken: set[str] = session.info.pop(_LINKED_KEY, set())
    return taken
