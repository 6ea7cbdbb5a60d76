"""The rows of one case, as `case_record` turns them into a CaseRecord: read back from the
database (`case_record.load_case_rows`), or, for a case the unit of work has just created,
the rows it holds in memory (`created_case_rows`), so that projecting a new case reads
nothing back (docs/write-path.md, "A new case is projected from memory").

Rows held in memory carry the values the code gave them; the database gives back its own
forms of some (a UTC datetime, a decimal at the column's scale). `created_case_rows` sets those
as the rows' loaded values, so either source yields the same CaseRecord, hence the same bytes
(tests/fhir_store/test_created_case_rows.py).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy import Numeric, inspect
from sqlalchemy.orm.attributes import set_committed_value

from service.assessments.models import Assessment, Need
from service.cases.models import CareTeamMember, Case, CaseChild, Note, Transition
from service.checkins.models import CheckIn
from service.db.base import Base, UTCDateTime
from service.patients.models import Patient
from service.plans.models import Goal, Intervention

RowT = TypeVar("RowT", bound=CaseChild)


@dataclass(frozen=True)
class CaseRows:
    """A case, its patient and its records, each kind in the order a projection lists it
    (by creation); `check_in_progress` is each check-in's goal progress ids."""

    case: Case
    patient: Patient
    needs: Sequence[Need]
    assessments: Sequence[Assessment]
    goals: Sequence[Goal]
    interventions: Sequence[Intervention]
    check_ins: Sequence[CheckIn]
    team: Sequence[CareTeamMember]
    transitions: Sequence[Transition]
    notes: Sequence[Note]
    check_in_progress: Mapping[str, tuple[str, ...]]


def _as_loaded(rows: Iterable[Base]) -> None:
    """Give each flushed row's values the form a SELECT would return, without marking the row
    changed: UTC datetimes (`UTCDateTime`), decimals at their column's scale (`Numeric`)."""
    for row in rows:
        loaded_values = inspect(row).dict  # what the row holds; reading it loads nothing
        for attribute in inspect(type(row)).column_attrs:
            column = attribute.columns[0]
            value = loaded_values.get(attribute.key)
            loaded = value
            if isinstance(value, dt.datetime) and isinstance(column.type, UTCDateTime):
                loaded = value.astimezone(dt.UTC)
            elif (
                isinstance(value, decimal.Decimal)
                and isinstance(column.type, Numeric)
                and column.type.scale is not None
            ):
                loaded = value.quantize(decimal.Decimal(1).scaleb(-column.type.scale))
            if loaded is not value and str(loaded) != str(value):  # equal, in another form
                set_committed_value(row, attribute.key, loaded)


def _by_creation(rows: Iterable[RowT]) -> list[RowT]:
    # As `case_record.load_case_rows` orders them.
    return sorted(rows, key=lambda row: (row.created_at, row.id))


def created_case_rows(
    case: Case,
    patient: Patient,
    *,
    needs: Iterable[Need] = (),
    assessments: Iterable[Assessment] = (),
    goals: Iterable[Goal] = (),
    interventions: Iterable[Intervention] = (),
    check_ins: Iterable[CheckIn] = (),
    team: Iterable[CareTeamMember] = (),
    transitions: Iterable[Transition] = (),
    notes: Iterable[Note] = (),
) -> CaseRows:
    """The rows of a case created in this unit of work, just flushed (so none has a change
    pending): every record of the case is among them, with the relationships set when they
    were made."""
    rows = CaseRows(
        case=case,
        patient=patient,
        needs=_by_creation(needs),
        assessments=_by_creation(assessments),
        goals=_by_creation(goals),
        interventions=_by_creation(interventions),
        check_ins=_by_creation(check_ins),
        team=_by_creation(team),
        transitions=_by_creation(transitions),
        notes=_by_creation(notes),
        check_in_progress={},
    )
    progress = [p for goal in rows.goals for p in goal.progress]
    made: list[Any] = [case, patient, *patient.identifiers, *progress]
    for kind in (rows.needs, rows.assessments, rows.goals, rows.interventions, rows.check_ins):
        made += kind
    made += [*rows.team, *rows.transitions, *rows.notes]
    made += [risk for assessment in rows.assessments for risk in assessment.risks]
    _as_loaded(made)
    for goal in rows.goals:  # `Goal.progress` is ordered by recorded_at
        set_committed_value(goal, "progress", sorted(goal.progress, key=lambda p: p.recorded_at))
    check_in_progress = {
        c.id: tuple(p.id for p in progress if p.check_in_id == c.id) for c in rows.check_ins
    }
    return replace(rows, check_in_progress=check_in_progress)
