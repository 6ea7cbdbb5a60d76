"""Standalone workers as real processes against sekmet on loopback: a worker killed while a
write it sent hangs unanswered loses nothing and duplicates nothing once a worker runs again;
two workers at once on PostgreSQL never push a pair twice."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from service.db.session import Database
from service.push.models import PushOutboxEntry
from tests.push.conftest import Ehr, register_ehr
from tests.push.hanging_proxy import HangingProxy
from tests.push.linked_cases import linked_case
from tests.push.worker_processes import (
    start_worker,
    statuses,
    stop_worker,
    wait_until_all_synced,
)
from tests.smart.sekmet_server import SekmetServer

pytestmark = pytest.mark.integration

CASES = 3


async def assert_pushed_exactly_once(ehr: Ehr, case_ids: list[str]) -> None:
    """One remote copy of each resource; each CarePlan written once (version 1) with one
    Provenance: a push that took effect twice would show as a second copy or version."""
    for case_id in case_ids:
        [plan] = await ehr.by_identifier("CarePlan", case_id)
        assert plan["meta"]["versionId"] == "1"
        patient = plan["subject"]["reference"].removeprefix("Patient/")
        conditions = [r async for r in ehr.fhir.search("Condition", [("subject", patient)])]
        referrals = [r async for r in ehr.fhir.search("ServiceRequest", [("subject", patient)])]
        assert len(conditions) == 1
        assert len(referrals) == 1
        provenances = [
            r async for r in ehr.fhir.search("Provenance", [("target", f"CarePlan/{plan['id']}")])
        ]
        assert len(provenances) == 1


async def test_a_worker_killed_mid_push_loses_and_duplicates_nothing(
    client: httpx.AsyncClient,
    database: Database,
    writable_sekmet: SekmetServer,
    tmp_path: Path,
) -> None:
    sekmet_origin = writable_sekmet.base_url.removesuffix("/fhir")
    with HangingProxy(sekmet_origin) as proxy:
        proxied = dataclasses.replace(writable_sekmet, base_url=f"{proxy.origin}/fhir")
        ehr = await register_ehr(client, database, proxied)
        case_ids = [
            (await linked_case(client, database, ehr.fhir, ehr.connection_id))[0]["id"]
            for _ in range(CASES)
        ]
        proxy.hang_after(3)  # the third write of the pushes reaches sekmet, then hangs
        worker = start_worker(database, tmp_path)
        try:
            assert await asyncio.to_thread(proxy.hanging.wait, 60), "no write hung"
            worker.kill()
            worker.wait(timeout=10)
        finally:
            stop_worker(worker)
        proxy.released.set()
        status = await statuses(database)
        assert status.get("synced", 0) < CASES, status  # it died mid-push

        restarted = start_worker(database, tmp_path)
        try:
            await wait_until_all_synced(database, CASES)
        finally:
            stop_worker(restarted)
        await assert_pushed_exactly_once(ehr, case_ids)
        async with database.transaction(write=False) as session:
            undelivered = await session.scalars(
                select(PushOutboxEntry).where(PushOutboxEntry.delivered_at.is_(None))
            )
            assert list(undelivered) == []
        await ehr.fhir.aclose()


async def test_two_workers_at_once_never_push_a_pair_twice(
    client: httpx.AsyncClient,
    database: Database,
    ehr: Ehr,
    is_postgres: bool,
    tmp_path: Path,
) -> None:
    if not is_postgres:
        pytest.skip("several workers need PostgreSQL (SQLite has one writer)")
    case_ids = [
        (await linked_case(client, database, ehr.fhir, ehr.connection_id))[0]["id"]
        for _ in range(8)
    ]
    workers = [start_worker(database, tmp_path) for _ in range(2)]
    try:
        await wait_until_all_synced(database, len(case_ids))
    finally:
        for worker in workers:
            stop_worker(worker)
    await assert_pushed_exactly_once(ehr, case_ids)
