"""The ceiling for `/fhir` reads, searches and creates: a bare FastAPI app that serves the same
stored bytes from the same database, with no auth, audit, negotiation or Bundle links; and, for
a transaction create, validates the Bundle's resources once (fhir.resources, as the projection
does) and inserts them as stored resources in one transaction, with no case, no mapping, no
versions, Provenance, search index or outbox.

Run by `bench/fhir_load.py` as `uvicorn bench.ceiling_app:app` with CASEBRIDGE_DATABASE_URL set.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from mappings.fhir import resource_model
from service.db.base import utcnow
from service.fhir_store.models import StoredResource

engine = create_async_engine(os.environ["CASEBRIDGE_DATABASE_URL"])
app = FastAPI()


@app.get("/fhir/{resource_type}/{resource_id}")
async def read(resource_type: str, resource_id: str) -> Response:
    async with engine.connect() as connection:
        content = await connection.scalar(
            select(StoredResource.content).where(
                StoredResource.resource_type == resource_type, StoredResource.id == resource_id
            )
        )
    return Response(content, media_type="application/fhir+json")


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


@app.post("/fhir")
async def create(request: Request) -> Response:
    bundle = orjson.loads(await request.body())
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for entry in bundle["entry"]:
        resource = {**entry["resource"], "id": str(uuid.uuid4())}
        resource_model(resource["resourceType"]).model_validate(resource)
        content = orjson.dumps(resource)
        rows.append(
            {
                "resource_type": resource["resourceType"],
                "id": resource["id"],
                "version_id": 1,
                "created_at": now,
                "last_updated": now,
                "deleted": False,
                "content": content,
                "content_hash": hashlib.sha256(content).hexdigest(),
            }
        )
    async with engine.begin() as connection:
        await connection.execute(insert(StoredResource), rows)
    entries = [
        {"response": {"status": "201 Created", "location": f"{r['resource_type']}/{r['id']}"}}
        for r in rows
    ]
    body = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    return Response(orjson.dumps(body), media_type="application/fhir+json")
