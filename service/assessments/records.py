"""Needs, assessments and their risks <-> their records (`mappings.case_model`), both ways,
in one place.

Each direction reads the `*_SAME` tuple (fields the row and the record name alike); what
differs in shape (codings kept as JSON, the needs an assessment found, risk ids) is mapped by
hand next to it. `tests/fhir_store/test_record_mappers.py` fails when a column or a record
field is mapped in neither."""

from __future__ import annotations

from mappings.case_model import AssessmentRecord, NeedRecord, RiskRecord
from service.assessments.models import Assessment, Need, Risk
from service.assessments.schemas import NeedCreate, NeedUpdate
from service.db.record_fields import as_request, coding_json, coding_record, same_fields

NEED_SAME = (
    "id",
    "domain",
    "description",
    "severity",
    "status",
    "assessment_id",
    "recorded_at",
    "fhir_extras",
)
# What a received Condition sets that `/api`'s need shapes do not carry.
NEED_RECEIVED = ("recorded_at", "fhir_extras")
ASSESSMENT_SAME = (
    "id",
    "kind",
    "performed_at",
    "performed_by",
    "summary",
    "strengths",
    "preferences",
)


def need_record(row: Need) -> NeedRecord:
    return NeedRecord(
        **same_fields(row, NEED_SAME) | {"recorded_at": row.recorded_at or row.created_at},
        code=coding_record(row.code),
    )


def new_need(record: NeedRecord, case_id: str, assessment_id: str | None) -> Need:
    """`assessment_id`: the case's assessment that lists the need (a received case links them
    from the assessment's side)."""
    return Need(
        **same_fields(record, NEED_SAME) | {"assessment_id": assessment_id},
        case_id=case_id,
        code=coding_json(record.code),
    )


def need_create(record: NeedRecord) -> NeedCreate:
    """A received need as `/api`'s create shape (its rules apply to it)."""
    return as_request(NeedCreate, record)


def need_update(record: NeedRecord) -> NeedUpdate:
    return as_request(NeedUpdate, record)


def assessment_record(row: Assessment, need_ids: tuple[str, ...]) -> AssessmentRecord:
    """Needs `Assessment.risks` loaded; `need_ids`: the needs it found."""
    return AssessmentRecord(
        **same_fields(row, ASSESSMENT_SAME),
        risks=tuple(
            RiskRecord(id=str(r.id), description=r.description, level=r.level) for r in row.risks
        ),
        need_ids=need_ids,
    )


def new_assessment(record: AssessmentRecord, case_id: str) -> Assessment:
    """The risks get ids of their own (a sequence); the needs point at the assessment
    (`new_need`)."""
    return Assessment(
        **same_fields(record, ASSESSMENT_SAME),
        case_id=case_id,
        risks=[Risk(description=r.description, level=r.level) for r in record.risks],
    )
