"""The unit of work: its commit projects, then enqueues, then commits, all or nothing, and does
exactly what its change set names."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.vocabulary import Program
from service.auth.deps import Actor
from service.auth.models import Role
from service.cases.models import Case
from service.cases.schemas import CaseCreate
from service.cases.service import open_case
from service.db.changes import ChangeSet
from service.db.session import Database
from service.fhir_store import projector
from service.fhir_store.models import ResourceVersion, StoredResource
from service.patients.models import Patient
from service.patients.schemas import PatientCreate
from service.patients.service import create_patient
from service.push import outbox

ACTOR = Actor("apikey:test", Role.case_manager)


async def _new_case(database: Database) -> Case:
    async with database.unit_of_work() as unit:
        patient = await create_patient(unit, ACTOR, PatientCreate(given_name="Ada"))
        return await open_case(
            unit, ACTOR, CaseCreate(patient_id=patient.id, program=Program.nursing)
        )


async def _counts(database: Database) -> tuple[int, int, int]:
    async with database.sessions() as session:
        return (
            await session.scalar(select(func.count()).select_from(Case)) or 0,
            await session.scalar(select(func.count()).select_from(StoredResource)) or 0,
            await session.scalar(select(func.count()).select_from(ResourceVersion)) or 0,
        )


async def test_commit_projects_then_enqueues_then_commits(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[str] = []
    project, enqueue = projector.project_changes, outbox.enqueue_pushes

    async def projecting(
        session: AsyncSession, changes: ChangeSet, written: list[StoredResource] | None = None
    ) -> dict[str, str | None]:
        steps.append("project")
        return await project(session, changes, written)

    async def enqueueing(
        session: AsyncSession, versioned: dict[str, str | None], linked: set[str]
    ) -> None:
        # The projection is stored in this transaction, and nothing is committed yet.
        (case_id,) = versioned
        assert await session.get(StoredResource, ("CarePlan", case_id)) is not None
        assert await _counts(database) == (0, 0, 0)
        steps.append("enqueue")
        await enqueue(session, versioned, linked)

    monkeypatch.setattr(projector, "project_changes", projecting)
    monkeypatch.setattr(outbox, "enqueue_pushes", enqueueing)
    case = await _new_case(database)
    assert steps == ["project", "enqueue"]
    async with database.sessions() as session:
        assert await session.get(StoredResource, ("CarePlan", case.id)) is not None


@pytest.mark.parametrize("failing", ["project_changes", "enqueue_pushes"])
async def test_a_failing_step_commits_nothing(
    database: Database, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    async def fail(*_args: Any) -> None:
        raise RuntimeError(f"{failing} failed")

    monkeypatch.setattr(projector if failing == "project_changes" else outbox, failing, fail)
    with pytest.raises(RuntimeError, match=f"{failing} failed"):
        await _new_case(database)
    assert await _counts(database) == (0, 0, 0)


async def test_nothing_changed_projects_nothing(database: Database) -> None:
    case = await _new_case(database)
    before = await _counts(database)
    async with database.unit_of_work() as unit:
        await unit.get(Case, case.id)  # read only: an empty change set
    async with database.unit_of_work() as unit:
        unit.changes.note_case(case.id, ACTOR.id)  # named, but nothing in it changed
    assert await _counts(database) == before


async def test_a_changed_patient_reprojects_its_cases(database: Database) -> None:
    case = await _new_case(database)

    async def plan_subject() -> dict[str, Any]:
        async with database.sessions() as session:
            row = await session.get_one(StoredResource, ("CarePlan", case.id))
            return {"version": row.version_id, "display": row.content.count(b"Augusta")}

    async with database.unit_of_work() as unit:
        (await unit.get_one(Patient, case.patient_id)).given_name = "Augusta"
    assert await plan_subject() == {"version": 1, "display": 0}  # not named: not projected

    async with database.unit_of_work() as unit:
        unit.changes.note_patient(case.patient_id, ACTOR.id)
    assert await plan_subject() == {"version": 2, "display": 1}
