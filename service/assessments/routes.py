from __future__ import annotations

from sqlalchemy.orm import selectinload

from service.assessments.models import Assessment, Need
from service.assessments.schemas import (
    AssessmentCreate,
    AssessmentOut,
    AssessmentUpdate,
    NeedCreate,
    NeedOut,
    NeedUpdate,
)
from service.assessments.service import add_assessment, add_need, change_assessment, change_need
from service.cases.records_router import RecordType, case_records_router

assessments_router = case_records_router(
    RecordType(
        path="/assessments",
        model=Assessment,
        create_schema=AssessmentCreate,
        update_schema=AssessmentUpdate,
        out_schema=AssessmentOut,
        create=add_assessment,
        update=change_assessment,
        load_options=[selectinload(Assessment.risks)],
    ),
    "assessments",
)
needs_router = case_records_router(
    RecordType(
        path="/needs",
        model=Need,
        create_schema=NeedCreate,
        update_schema=NeedUpdate,
        out_schema=NeedOut,
        create=add_need,
        update=change_need,
    ),
    "needs",
)
