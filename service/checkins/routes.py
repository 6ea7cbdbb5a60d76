from __future__ import annotations

from sqlalchemy.orm import selectinload

from service.cases.records_router import RecordType, case_records_router
from service.checkins.models import CheckIn
from service.checkins.schemas import CheckInCreate, CheckInOut, CheckInUpdate
from service.checkins.service import add_check_in, change_check_in

check_ins_router = case_records_router(
    RecordType(
        path="/check-ins",
        model=CheckIn,
        create_schema=CheckInCreate,
        update_schema=CheckInUpdate,
        out_schema=CheckInOut,
        create=add_check_in,
        update=change_check_in,
        load_options=[selectinload(CheckIn.goal_progress)],
    ),
    "check-ins",
)
