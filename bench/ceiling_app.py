"""The ceiling for `/fhir` reads and searches: a bare FastAPI app that serves the same stored
bytes from the same database, with no auth, audit, negotiation or Bundle links.

Run by `bench/fhir_load.py` as `uvicorn bench.ceiling_app:app` with CASEBRIDGE_DATABASE_URL set.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

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
