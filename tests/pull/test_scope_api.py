"""A connection's pull scope, with the EHR faked by respx: only the scope's types are searched,
Observations by the scope's categories, and what a server sends outside them is left out."""

from __future__ import annotations

from typing import Any

import httpx
import respx
from fastapi import FastAPI
from sqlalchemy import select, update

from service.connections.models import Connection
from service.db.session import Database
from service.pull.models import PulledRecord
from tests.pull.test_pull_api import MRN, bundle, pull, remote_patient, serve_record


def observation(remote_id: str, category: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": remote_id,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": category,
                    }
                ]
            }
        ],
        "code": {"text": category},
        "subject": {"reference": "Patient/r1"},
    }


async def test_a_pull_reads_the_types_and_categories_of_the_connections_scope(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: Database,
    ehr: respx.MockRouter,
    connection_id: str,
) -> None:
    async with database.transaction() as session:
        await session.execute(
            update(Connection)
            .where(Connection.id == connection_id)
            .values(
                pull_scope={"types": ["Observation"], "observation_categories": ["survey"]},
                version=Connection.version + 1,
            )
        )
    # This server ignores `category`: it sends a vital sign too.
    routes = serve_record(
        ehr,
        remote_patient(MRN),
        Observation=bundle(observation("o1", "survey"), observation("o2", "vital-signs")),
    )
    job = await pull(app, client, connection_id)
    assert job["state"] == "succeeded", job["failures"]
    assert job["counts"] == {"Patient": 1, "Observation": 1}
    [search] = routes["Observation"].calls
    assert search.request.url.params["category"] == "survey"
    assert all(not route.called for kind, route in routes.items() if kind != "Observation")
    async with database.transaction(write=False) as session:
        stored = set(
            await session.scalars(
                select(PulledRecord.remote_id).where(PulledRecord.resource_type == "Observation")
            )
        )
    assert stored == {"o1"}
