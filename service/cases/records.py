"""A case and its plain records (care-team members, transitions, notes) <-> their records
(`mappings.case_model`), both ways, in one place.

Each direction reads the `*_SAME` tuple (fields the row and the record name alike); the rest is
mapped by hand next to it. `tests/fhir_store/test_record_mappers.py` fails when a column or a
record field is mapped in neither."""

from __future__ import annotations

from typing import Any

from mappings.case_model import CareTeamMemberRecord, CaseRecord, NoteRecord, TransitionRecord
from service.cases.models import CareTeamMember, Case, Note, Transition
from service.cases.schemas import CareTeamMemberCreate, CareTeamMemberUpdate, CaseUpdate
from service.db.record_fields import as_request, same_fields

CASE_SAME = (
    "id",
    "program",
    "title",
    "manager",
    "priority",
    "status",
    "closure_reason",
    "opened_at",
    "closed_at",
    "fhir_extras",
)
# What a received CarePlan changes of its case (the rest belongs to other records or resources:
# `fhir_engine.care_plan_updates.OWNED_ELSEWHERE`).
CASE_UPDATED_BY_CARE_PLAN = ("title", "manager", "priority", "status")
MEMBER_SAME = ("id", "role", "name", "telecom", "active")
TRANSITION_SAME = (
    "id",
    "kind",
    "from_setting",
    "to_setting",
    "planned_date",
    "actual_date",
    "status",
    "follow_ups",
)
NOTE_SAME = ("id", "author", "text", "created_at")


def case_fields(row: Case) -> dict[str, Any]:
    """The case's own fields of its `CaseRecord` (the patient and the records it holds are
    read by `fhir_store.case_record.load_case_record`)."""
    return same_fields(row, CASE_SAME) | {"updated_at": row.updated_at}


def new_case(record: CaseRecord, patient_id: str) -> Case:
    """A received case; `closure_note` has no FHIR element and stays empty."""
    return Case(**same_fields(record, CASE_SAME), patient_id=patient_id)


def case_update(record: CaseRecord, *, closing: bool) -> CaseUpdate:
    """A received CarePlan as `/api`'s case update (`cases.service.update_case` applies it with
    the lifecycle rules); its closure reason counts only when it closes the case."""
    fields = same_fields(record, CASE_UPDATED_BY_CARE_PLAN)
    return CaseUpdate(**fields, closure_reason=record.closure_reason if closing else None)


def member_record(row: CareTeamMember) -> CareTeamMemberRecord:
    return CareTeamMemberRecord(**same_fields(row, MEMBER_SAME))


def new_member(record: CareTeamMemberRecord, case_id: str) -> CareTeamMember:
    return CareTeamMember(**same_fields(record, MEMBER_SAME), case_id=case_id)


def member_create(record: CareTeamMemberRecord) -> CareTeamMemberCreate:
    return as_request(CareTeamMemberCreate, record)


def member_update(record: CareTeamMemberRecord) -> CareTeamMemberUpdate:
    return as_request(CareTeamMemberUpdate, record)


def transition_record(row: Transition) -> TransitionRecord:
    return TransitionRecord(**same_fields(row, TRANSITION_SAME))


def new_transition(record: TransitionRecord, case_id: str) -> Transition:
    return Transition(**same_fields(record, TRANSITION_SAME), case_id=case_id)


def note_record(row: Note) -> NoteRecord:
    return NoteRecord(**same_fields(row, NOTE_SAME))


def new_note(record: NoteRecord, case_id: str) -> Note:
    return Note(**same_fields(record, NOTE_SAME), case_id=case_id)
