"""A real FHIR server on loopback for pull tests: sekmet-fhir without auth (Backend Services
against sekmet is covered by tests/smart), seeded with N patients and, for each, a transaction
of 26-45 resources (tests/pull/ehr_records.py)."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from mappings import fhir_json
from tests.pull.ehr_records import record_transaction
from tests.smart.sekmet_server import open_settings, seed_and_serve, stop

__all__ = ["SeededEhr", "start_seeded_sekmet", "stop"]


@dataclass(frozen=True)
class SeededEhr:
    base_url: str
    patient_ids: list[str]


async def _add_records(base_url: str, patient_ids: list[str]) -> None:
    limit = asyncio.Semaphore(4)
    async with httpx.AsyncClient(timeout=60.0) as http:

        async def post(index: int, patient_id: str) -> None:
            async with limit:
                response = await http.post(
                    base_url,
                    content=fhir_json.dumps(record_transaction(patient_id, index)),
                    headers={"Content-Type": "application/fhir+json"},
                )
            response.raise_for_status()

        await asyncio.gather(*(post(i, p) for i, p in enumerate(patient_ids)))


async def _patient_ids(base_url: str) -> list[str]:
    ids: list[str] = []
    url: str | None = f"{base_url}/Patient?_count=100&_elements=id"
    async with httpx.AsyncClient(timeout=60.0) as http:
        while url is not None:
            page = (await http.get(url)).json()
            ids.extend(e["resource"]["id"] for e in page.get("entry") or [])
            url = next((x["url"] for x in page.get("link") or [] if x["relation"] == "next"), None)
    return sorted(ids)


def start_seeded_sekmet(
    binary: str, directory: Path, patients: int
) -> tuple[SeededEhr, subprocess.Popen[bytes]]:
    base_url, process = seed_and_serve(binary, directory, open_settings, patients)
    try:
        patient_ids = asyncio.run(_patient_ids(base_url))
        asyncio.run(_add_records(base_url, patient_ids))
    except BaseException:
        stop(process)
        raise
    return SeededEhr(base_url, patient_ids), process
