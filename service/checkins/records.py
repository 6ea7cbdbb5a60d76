"""A check-in row <-> its `CheckInRecord` (`mappings.case_model`), both ways, in one place.

Both directions read `SAME`; the progress a check-in recorded is linked from the progress
side (`plans.records.new_goal`'s `check_in_of`). `tests/fhir_store/test_record_mappers.py` fails
when a column or a record field is mapped in neither."""

from __future__ import annotations

from mappings.case_model import CheckInRecord
from service.checkins.models import CheckIn
from service.db.record_fields import same_fields

SAME = ("id", "occurred_at", "mode", "performed_by", "notes")


def check_in_record(row: CheckIn, progress_ids: tuple[str, ...] | None = None) -> CheckInRecord:
    """The goal progress it recorded: `progress_ids`, else `CheckIn.goal_progress` (loaded)."""
    if progress_ids is None:
        progress_ids = tuple(p.id for p in row.goal_progress)
    return CheckInRecord(**same_fields(row, SAME), goal_progress_ids=progress_ids)


def new_check_in(record: CheckInRecord, case_id: str) -> CheckIn:
    return CheckIn(**same_fields(record, SAME), case_id=case_id)
