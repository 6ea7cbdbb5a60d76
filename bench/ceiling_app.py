"""The ceiling for `/fhir` reads, searches and creates: a bare FastAPI app that serves the same
stored bytes from the same database, with no auth, audit, negotiation or Bundle links; and, for
a transaction create, validates the Bundle's resources once (fhir.resources, as the projection
does) and inserts them as stored resources in one transaction, with no case, no mapping, no
versions, Provenance, search index or outbox.

`POST /floor/fhir` is the same create plus only the rows the brief and FHIR oblige a server
that keeps cases, history, attribution and an audit trail to write, with none of the work of
getting there (no auth, mapping, domain rules or ORM): the case, its goal and its history
event; a version row per resource (R4 http.html#vread); a validated Provenance naming the
versions; the search-index rows (`service.fhir_store.search_params`); one AuditEvent row.
Each table takes one Core statement, in one transaction. Between the two, it measures what
those obligations cost on their own.

`GET /floor/fhir/{type}/{id}` is the ceiling's read plus the one write a read is obliged to:
an AuditEvent row (with its patient) committed before the answer is sent (HIPAA §164.312(b),
fail closed, as CaseBridge's audit writer does), through the same group commit: every record
that arrived while the last transaction ran goes into the next one.

Run by `bench/fhir_load.py` as `uvicorn bench.ceiling_app:app`, with CaseBridge's settings
(CASEBRIDGE_DATABASE_URL and the rest) in its environment.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import insert, select

from mappings.fhir import resource_model
from mappings.to_fhir.provenance import CaseChange, provenance_resource
from mappings.vocabulary import CaseStatus, GoalLifecycle, Priority, Program
from service.audit.models import AuditPatient, AuditRecord
from service.cases.models import Case, CaseEvent
from service.db.base import utcnow
from service.db.session import create_engine
from service.fhir_store.models import ResourceVersion, StoredResource
from service.fhir_store.search_params import index_values
from service.fhir_store.writer import SEARCH_INDEX
from service.plans.models import Goal
from service.settings import Settings

# CaseBridge's own engine: the same pool size and, on SQLite, the same connection settings
# (WAL, synchronous=NORMAL), so that neither side is measured on a different database setup.
engine = create_engine(Settings())
app = FastAPI()


class GroupCommit:
    """Audit rows committed before their reads answer, many to a transaction."""

    def __init__(self) -> None:
        self._waiting: list[tuple[dict[str, Any], str | None, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def write(self, row: dict[str, Any], patient_id: str | None) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        committed = asyncio.get_running_loop().create_future()
        self._waiting.append((row, patient_id, committed))
        self._wake.set()
        await committed

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch, self._waiting = self._waiting, []
                patients = [
                    {"event_id": row["id"], "patient_id": patient}
                    for row, patient, _ in batch
                    if patient is not None
                ]
                try:
                    async with engine.begin() as connection:
                        await connection.execute(insert(AuditRecord), [row for row, _, _ in batch])
                        if patients:
                            await connection.execute(insert(AuditPatient), patients)
                except Exception as exc:
                    for _, _, committed in batch:
                        if not committed.done():  # a reader gone meanwhile: nothing to tell
                            committed.set_exception(exc)
                else:
                    for _, _, committed in batch:
                        if not committed.done():
                            committed.set_result(None)


audit = GroupCommit()


@app.get("/fhir/{resource_type}/{resource_id}")
async def read(resource_type: str, resource_id: str) -> Response:
    async with engine.connect() as connection:
        content = await connection.scalar(
            select(StoredResource.content).where(
                StoredResource.resource_type == resource_type, StoredResource.id == resource_id
            )
        )
    return Response(content, media_type="application/fhir+json")


@app.get("/floor/fhir/{resource_type}/{resource_id}")
async def read_with_audit(resource_type: str, resource_id: str) -> Response:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(StoredResource.content, StoredResource.patient_id).where(
                    StoredResource.resource_type == resource_type,
                    StoredResource.id == resource_id,
                )
            )
        ).one()
    event = {"resourceType": "AuditEvent", "entity": [f"{resource_type}/{resource_id}"]}
    record = {"id": str(uuid.uuid4()), "recorded_at": utcnow(), "agent": "client:bench"}
    record |= {"action": "R", "interaction": "read", "resource_type": resource_type}
    record |= {"resource_id": resource_id, "status": 200, "content": orjson.dumps(event)}
    await audit.write(record, row.patient_id)
    return Response(row.content, media_type="application/fhir+json")


@app.get("/fhir/{resource_type}")
async def search(resource_type: str, _count: int = 50) -> Response:
    async with engine.connect() as connection:
        rows = await connection.scalars(
            select(StoredResource.content)
            .where(StoredResource.resource_type == resource_type)
            .order_by(StoredResource.created_at, StoredResource.id)
            .limit(_count)
        )
        body = (
            b'{"resourceType":"Bundle","type":"searchset","entry":['
            + b",".join(b'{"resource":' + content + b"}" for content in rows)
            + b"]}"
        )
    return Response(body, media_type="application/fhir+json")


def _validated_row(resource: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    resource_model(resource["resourceType"]).model_validate(resource)
    content = orjson.dumps(resource)
    return {
        "resource_type": resource["resourceType"],
        "id": resource["id"],
        "version_id": 1,
        "created_at": now,
        "last_updated": now,
        "deleted": False,
        "content": content,
        "content_hash": hashlib.sha256(content).hexdigest(),
    }


def _answer(rows: list[dict[str, Any]]) -> Response:
    entries = [
        {"response": {"status": "201 Created", "location": f"{r['resource_type']}/{r['id']}"}}
        for r in rows
    ]
    body = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    return Response(orjson.dumps(body), media_type="application/fhir+json")


@app.post("/fhir")
async def create(request: Request) -> Response:
    bundle = orjson.loads(await request.body())
    now = utcnow()
    resources = [{**entry["resource"], "id": str(uuid.uuid4())} for entry in bundle["entry"]]
    rows = [_validated_row(resource, now) for resource in resources]
    async with engine.begin() as connection:
        await connection.execute(insert(StoredResource), rows)
    return _answer(rows)


@app.post("/floor/fhir")
async def create_with_obligations(request: Request) -> Response:
    bundle = orjson.loads(await request.body())
    now = utcnow()
    resources = [{**entry["resource"], "id": str(uuid.uuid4())} for entry in bundle["entry"]]
    targets = [f"{r['resourceType']}/{r['id']}/_history/1" for r in resources]
    change = CaseChange(str(uuid.uuid4()), now, targets, "CREATE", "client:bench")
    resources.append(provenance_resource(change))
    rows = [_validated_row(resource, now) for resource in resources]
    versions = [{k: row[k] for k in _VERSION_COLUMNS} for row in rows]
    index = [
        {"resource_type": r["resourceType"], "resource_id": r["id"], "param": v.param}
        | {"system": v.system, "value": v.value, "low": v.low, "high": v.high}
        for r in resources
        for v in index_values(r["resourceType"], r)
    ]
    event = orjson.dumps({"resourceType": "AuditEvent", "entity": targets})
    audit = {"id": str(uuid.uuid4()), "recorded_at": now, "agent": "client:bench"}
    audit |= {"action": "C", "interaction": "transaction", "status": 200, "content": event}
    goal, plan = resources[0], resources[1]
    case = {"id": plan["id"], "patient_id": plan["subject"]["reference"].split("/")[1]}
    case |= {"program": Program.nursing, "priority": Priority.routine}
    case |= {"status": CaseStatus.active, "version": 1}
    goal_row = {"id": goal["id"], "case_id": case["id"], "description": "Walk unaided"}
    goal_row |= {"lifecycle_status": GoalLifecycle.active, "version": 1}
    history = {"case_id": case["id"], "actor": "client:bench", "action": "create"}
    history |= {"entity": "goal", "entity_id": goal["id"]}
    async with engine.begin() as connection:
        await connection.execute(insert(Case), [case])
        await connection.execute(insert(Goal), [goal_row])
        await connection.execute(insert(CaseEvent), [history])
        await connection.execute(insert(StoredResource), rows)
        await connection.execute(insert(ResourceVersion), versions)
        await connection.execute(insert(SEARCH_INDEX), index)
        await connection.execute(insert(AuditRecord), [audit])
    return _answer(rows[:-1])


_VERSION_COLUMNS = ("resource_type", "id", "version_id", "last_updated", "deleted", "content")
