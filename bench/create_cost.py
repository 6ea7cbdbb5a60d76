"""Where a `/fhir` transaction create spends its work: statements per create (deterministic,
counted with SQLAlchemy's `before_cursor_execute`) and, with `--profile`, a cProfile of the
creates, in-process through `FhirEngine.handle` (no HTTP, no audit: bench/fhir_load.py
measures those end to end).

    python -m bench.create_cost --database-url postgresql+asyncpg://.../empty_db
                                [--creates 200] [--profile]

The create is bench/fhir_load.py's: a Goal and a CarePlan about a patient already stored.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import cProfile
import json
import os
import pstats
import re
import time
from typing import Any

import orjson
from sqlalchemy import event

from bench.fhir_load import CREATE_BODY
from service.db.schema import upgrade_to_head
from service.db.session import Database
from service.fhir_auth.principal import FhirPrincipal
from service.fhir_auth.scopes import parse_scopes
from service.fhir_engine.request import FhirRequest
from service.fhir_engine.router import FhirEngine
from service.settings import Settings

BASE = "http://bench/fhir"
PATIENT = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": "urn:uuid:00000000-0000-4000-8000-00000000000a",
            "request": {"method": "POST", "url": "Patient"},
            "resource": {"resourceType": "Patient", "name": [{"family": "Bench"}]},
        },
        {
            "request": {"method": "POST", "url": "CarePlan"},
            "resource": {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-00000000000a"},
            },
        },
    ],
}


def _kind(statement: str) -> str:
    """The statement's verb and first table, e.g. `SELECT cases`, `INSERT fhir_resources`."""
    words = statement.split()
    verb = words[0].upper()
    table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", statement, re.IGNORECASE)
    return f"{verb} {table.group(1) if table else ''}".strip()


async def run(url: str, creates: int, profile: bool) -> None:
    settings = Settings(
        _env_file=None,
        database_url=url,
        encryption_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        bootstrap_api_key="bench",
    )
    database = Database(settings)
    await upgrade_to_head(database.engine)
    engine = FhirEngine(database)
    principal = FhirPrincipal("bench", parse_scopes("system/*.cruds", strict=True), None)

    async def post(bundle: dict[str, Any]) -> dict[str, Any]:
        request = FhirRequest("POST", headers={}, body=orjson.dumps(bundle), base_url=BASE)
        outcome = await engine.handle(request, principal)
        assert outcome.status == 200, outcome.body
        answer: dict[str, Any] = orjson.loads(outcome.body)
        return answer

    made = await post(PATIENT)
    patient = made["entry"][0]["response"]["location"].split("/")[1]
    body = json.loads(json.dumps(CREATE_BODY).replace("PATIENT", patient))
    await post(body)  # warm: caches, prepared statements

    statements: collections.Counter[str] = collections.Counter()

    def count(*args: Any) -> None:
        statements[_kind(args[2])] += 1

    event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    await post(body)
    event.remove(database.engine.sync_engine, "before_cursor_execute", count)
    print(f"statements in one create: {sum(statements.values())}")
    for kind, n in sorted(statements.items()):
        print(f"  {n:3}  {kind}")

    profiler = cProfile.Profile()
    started = time.perf_counter()
    cpu = time.process_time()
    if profile:
        profiler.enable()
    for _ in range(creates):
        await post(body)
    if profile:
        profiler.disable()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    print(
        f"\n{creates} creates in {elapsed:.2f}s: {creates / elapsed:.0f}/s (one at a time),"
        f" {1000 * cpu / creates:.2f} ms of CPU each"
    )
    if profile:
        pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "tottime")).print_stats(
            int(os.environ.get("TOP", "30"))
        )
    await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="an empty database")
    parser.add_argument("--creates", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.creates, args.profile))


if __name__ == "__main__":
    main()
