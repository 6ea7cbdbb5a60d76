"""What a unit of work changed, collected explicitly by the code that changes it.

Writers note into the `ChangeSet` of the `UnitOfWork` they were handed (`record_event` does it
for every case change); `UnitOfWork.commit` reads it to project, version and enqueue exactly
that (see docs/write-path.md). Nothing here touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.fhir_store.case_rows import CaseRows

# A record of a case, as `record_event` names it: (entity, id), e.g. ("goal", "<uuid>").
RecordKey = tuple[str, str]

WHOLE_CASE: RecordKey = ("case", "")
"""A change to the case itself, or one whose reach is not known: the whole case is projected."""


@dataclass
class ChangeSet:
    """Cases (with the records of each that changed), patients and links one unit of work
    touched, and who touched them."""

    cases: dict[str, set[RecordKey]] = field(default_factory=dict)
    patients: set[str] = field(default_factory=set)
    linked_patients: set[str] = field(default_factory=set)
    actors: set[str] = field(default_factory=set)
    # Cases made in this unit of work, with all their rows as made: projected from these,
    # nothing is read back (see `note_created_case`).
    created: dict[str, CaseRows] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.cases or self.patients or self.linked_patients)

    def note_case(
        self, case_id: str, actor: str, entity: str = "case", entity_id: str = ""
    ) -> None:
        """`entity`/`entity_id` name the record that changed; the default is the whole case."""
        self.cases.setdefault(case_id, set()).add(
            WHOLE_CASE if entity == "case" else (entity, entity_id)
        )
        self.actors.add(actor)
        if entity != "case":  # a record added or removed since: the rows held are not all
            self.created.pop(case_id, None)

    def note_created_case(self, rows: CaseRows) -> None:
        """A case made in this unit of work, its rows just flushed: every row of the case is
        among them, so its projection need not read the case back. A later change to a record
        of the case (`note_case` with an entity) drops them, and the case is read back."""
        self.created[rows.case.id] = rows

    def note_patient(self, patient_id: str, actor: str) -> None:
        """A patient's own data changed: it and every case of it are projected."""
        self.patients.add(patient_id)
        self.actors.add(actor)

    def note_patient_linked(self, patient_id: str) -> None:
        """A patient newly linked (or re-linked) to an EHR connection: its cases are pushed
        there as they are, though nothing in them changed."""
        self.linked_patients.add(patient_id)

    def take(self) -> ChangeSet:
        """What was collected so far, leaving this change set empty."""
        taken = ChangeSet(
            self.cases, self.patients, self.linked_patients, self.actors, self.created
        )
        self.cases, self.patients, self.linked_patients, self.actors = {}, set(), set(), set()
        self.created = {}
        return taken
