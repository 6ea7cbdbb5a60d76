"""HTTP routes of pulls: start a pull job, watch it, cancel it; identity conflicts to resolve;
the records pulled for a patient."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status

from service.api.problems import CREATE_PROBLEMS, PROBLEM_RESPONSES
from service.auth.deps import ActorDep
from service.connections.service import load_connection
from service.db.session import SessionDep
from service.errors import Conflict, NotFound
from service.patients.service import load_patient
from service.pull import repository
from service.pull.case_opening import open_case_from_ehr
from service.pull.identity import resolve_conflict
from service.pull.models import PulledRecord, PullJob, PullState
from service.pull.runner import PullRunner
from service.pull.schemas import (
    CaseFromEhrCreate,
    CaseFromEhrOut,
    ConflictResolution,
    IdentityConflictOut,
    ImportedResourceOut,
    PatientSummaryOut,
    PullCreate,
    PulledRecordOut,
    PullOut,
    SkippedResourceOut,
)
from service.pull.summary import SUMMARY_TYPES, summarise

router = APIRouter(tags=["pulls"], responses=PROBLEM_RESPONSES)


def _wake_runner(request: Request) -> None:
    """Start the job now if this process runs pulls; otherwise the runner of the replica that
    does finds it at its next poll."""
    runner: PullRunner | None = request.app.state.pull_runner
    if runner is not None:
        runner.wake()


def _stop_job(request: Request, pull_id: str) -> None:
    """Stop the job's task if it runs here; a runner elsewhere sees `cancel_requested`."""
    runner: PullRunner | None = request.app.state.pull_runner
    if runner is not None:
        runner.stop_job(pull_id)


@router.post(
    "/api/connections/{connection_id}/pulls",
    status_code=status.HTTP_202_ACCEPTED,
    responses=CREATE_PROBLEMS,
)
async def start_pull(
    connection_id: str,
    body: PullCreate,
    session: SessionDep,
    actor: ActorDep,
    request: Request,
    response: Response,
    background: BackgroundTasks,
) -> PullOut:
    """Queue a pull of the given patients' records; it runs in the background."""
    await load_connection(session, connection_id)
    job = PullJob(
        connection_id=connection_id,
        state=PullState.queued,
        targets=[target.model_dump(exclude_none=True) for target in body.patients or []],
        bulk_group_id=body.group.id if body.group else None,
        bulk_types=list(body.group.types) if body.group else [],
        requested_by=actor.id,
        counts={},
        failures=[],
    )
    session.add(job)
    await session.flush()
    # Background tasks run after the commit, so the runner finds the job.
    background.add_task(_wake_runner, request)
    response.headers["Location"] = f"/api/pulls/{job.id}"
    return PullOut.model_validate(job)


@router.get("/api/pulls/identity-conflicts")
async def get_identity_conflicts(
    session: SessionDep, _actor: ActorDep
) -> list[IdentityConflictOut]:
    """EHR patients whose identifiers point to more than one local patient: nothing was merged."""
    return [IdentityConflictOut.model_validate(c) for c in await repository.open_conflicts(session)]


@router.post("/api/pulls/identity-conflicts/{conflict_id}/resolve", responses=CREATE_PROBLEMS)
async def resolve_identity_conflict(
    conflict_id: str, body: ConflictResolution, session: SessionDep, actor: ActorDep
) -> IdentityConflictOut:
    """A person says which local patient the EHR patient is: it is linked to that one, and the
    next pulls file its records there. Nothing is merged."""
    conflict = await repository.get_conflict(session, conflict_id)
    if conflict is None:
        raise NotFound(f"identity conflict {conflict_id} not found")
    await resolve_conflict(session, conflict, body.patient_id, actor.id)
    return IdentityConflictOut.model_validate(conflict)


@router.get("/api/pulls/{pull_id}")
async def get_pull(pull_id: str, session: SessionDep, _actor: ActorDep) -> PullOut:
    job = await repository.get_job(session, pull_id)
    if job is None:
        raise NotFound(f"pull {pull_id} not found")
    return PullOut.model_validate(job)


@router.post("/api/pulls/{pull_id}/cancel", responses=CREATE_PROBLEMS)
async def cancel_pull(
    pull_id: str,
    session: SessionDep,
    _actor: ActorDep,
    request: Request,
    background: BackgroundTasks,
) -> PullOut:
    job = await repository.get_job(session, pull_id)
    if job is None:
        raise NotFound(f"pull {pull_id} not found")
    if job.state not in (PullState.queued, PullState.running):
        raise Conflict(f"pull {pull_id} is already {job.state.value}")
    job.cancel_requested = True
    if job.state is PullState.queued:
        job.state = PullState.cancelled
    await session.flush()
    background.add_task(_stop_job, request, pull_id)
    return PullOut.model_validate(job)


WithContent = Annotated[
    bool, Query(description="Include each record's content: the FHIR JSON as the EHR sent it.")
]
RecordType = Annotated[
    str | None,
    Query(alias="type", pattern=r"^[A-Z][A-Za-z]{1,63}$", description="Only this type."),
]


def _records_response(rows: list[tuple[PulledRecord, str]], with_content: bool) -> Response:
    """The records, each with its stored JSON embedded byte for byte when asked: parsed and
    dumped again, a decimal such as `1.50` would lose its digits (mappings/fhir_json.py)."""
    items: list[dict[str, Any]] = []
    for record, connection_name in rows:
        item = PulledRecordOut(
            connection_id=record.connection_id,
            connection_name=connection_name,
            resource_type=record.resource_type,
            remote_id=record.remote_id,
            remote_version_id=record.remote_version_id,
            remote_last_updated=record.remote_last_updated,
            pulled_at=record.pulled_at,
        ).model_dump(mode="json", exclude={"content"})
        if with_content:
            item["content"] = orjson.Fragment(record.content)
        items.append(item)
    return Response(orjson.dumps(items), media_type="application/json")


RECORDS_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"model": list[PulledRecordOut]}}


@router.get(
    "/api/connections/{connection_id}/patients/{patient_id}/records",
    responses=RECORDS_RESPONSE,
    response_class=Response,
)
async def get_pulled_records(
    connection_id: str,
    patient_id: str,
    session: SessionDep,
    _actor: ActorDep,
    content: WithContent = False,
    resource_type: RecordType = None,
) -> Response:
    """What the last pulls stored for a local patient from that connection."""
    await load_connection(session, connection_id)
    rows = await repository.records_with_sources(
        session, patient_id, connection_id=connection_id, resource_type=resource_type
    )
    return _records_response(rows, content)


@router.get(
    "/api/patients/{patient_id}/records", responses=RECORDS_RESPONSE, response_class=Response
)
async def get_patient_records(
    patient_id: str,
    session: SessionDep,
    _actor: ActorDep,
    content: WithContent = False,
    resource_type: RecordType = None,
) -> Response:
    """What the last pulls stored for a local patient, from every connection: each record with
    its source and dates, and with `content=true` the FHIR JSON as the EHR sent it. Audited as
    a read of the patient's data, like every read under /api/patients."""
    await load_patient(session, patient_id)
    rows = await repository.records_with_sources(session, patient_id, resource_type=resource_type)
    return _records_response(rows, content)


@router.get("/api/patients/{patient_id}/summary")
async def get_patient_summary(
    patient_id: str, session: SessionDep, _actor: ActorDep
) -> PatientSummaryOut:
    """Problems, medications, allergies, recent encounters, vital signs and labs from every
    EHR this patient was pulled from, each with its source and date (see `summary`)."""
    await load_patient(session, patient_id)
    records = await repository.summary_records(session, patient_id, SUMMARY_TYPES)
    summary = summarise(records)
    return PatientSummaryOut.model_validate(
        {"patient_id": patient_id, **dataclasses.asdict(summary)}
    )


@router.post(
    "/api/connections/{connection_id}/patients/{patient_id}/cases",
    status_code=status.HTTP_201_CREATED,
    responses=CREATE_PROBLEMS,
)
async def open_case_from_pulled_record(
    connection_id: str,
    patient_id: str,
    session: SessionDep,
    actor: ActorDep,
    response: Response,
    body: CaseFromEhrCreate | None = None,
) -> CaseFromEhrOut:
    """Open a case at intake from what was pulled: needs from the EHR's problems and health
    concerns, and its CarePlan, Goals, ServiceRequests and CareTeam, each linked to its source.
    The body chooses the program (and manager); both can be changed later."""
    await load_connection(session, connection_id)
    choice = body or CaseFromEhrCreate()
    opened = await open_case_from_ehr(
        session, actor, connection_id, patient_id, program=choice.program, manager=choice.manager
    )
    response.headers["Location"] = f"/api/cases/{opened.case_id}"
    return CaseFromEhrOut(
        case_id=opened.case_id,
        imported=[
            ImportedResourceOut(resource_type=kind, remote_id=remote, local_id=local)
            for kind, remote, local in opened.imported
        ],
        skipped=[
            SkippedResourceOut(resource_type=kind, remote_id=remote, reason=reason)
            for kind, remote, reason in opened.skipped
        ],
    )
