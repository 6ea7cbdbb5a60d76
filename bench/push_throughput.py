"""Push throughput against a loopback FHIR server (sekmet-fhir), and the ratio to that server's
own raw write rate measured in the same run.

    python -m bench.push_throughput [--cases 100] [--rounds 5] [--concurrency 4]
                                    [--database-url ...]

Planned cases are made through the API (one need, one goal, one referral each): three sets of
`--cases` for each round. Each round then runs, one after another:

1. **raw (before)**: a bare httpx client sends each case of its first set to sekmet the way a
   push does (one transaction Bundle of conditional creates plus a Provenance written by id;
   the same resource types, the same JSON as stored), `--concurrency` at a time. Nothing else:
   no database, no outbox.
2. **push**: the cases of the second set belong to a patient linked to the connection, so
   their outbox rows were written with them (and held back until their round); a
   `PushDispatcher` delivers them, timed from its start until every pair is `synced`.
3. **raw (after)**: like 1 with the third set, so the server's growth favours neither side.

Each side is warmed up first on 4 cases not measured: its client made, its connections open.

Both sides have at most `--concurrency` requests at sekmet at once: the raw client through its
connection limit, the push through `CASEBRIDGE_EHR_MAX_CONCURRENCY` (each connection's client
never sends more). The dispatcher runs its default number of pushes at once
(`CASEBRIDGE_PUSH_CONCURRENCY`, more than that: a push spends part of its time here, building
the Bundle and recording the outcome, not at the EHR).

It prints each round's pushes/s and `push / mean(raw)`, then the median ratio over the rounds;
the target is at least 0.8x. The machine is shared and noisy, its speed drifting within a run:
a round's three phases run seconds apart, and the median of several rounds is the figure to
read, not one round's, nor figures across runs. sekmet runs without auth here (both sides
alike), so token round trips are not measured. Nothing here passes or fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select, update

from bench.fhir_load import free_port, serve
from mappings.bundles import full_url, identifier_query, own_identifier, with_references
from mappings.to_fhir.provenance import CaseChange, provenance_resource
from service.app import create_app
from service.db.base import new_id, utcnow
from service.db.schema import upgrade_to_head
from service.db.session import Database, create_engine
from service.ehr.discovery import Capabilities
from service.fhir_store.models import StoredResource
from service.links.repository import link_patient
from service.push.dispatcher import PushDispatcher
from service.push.job import PUSH_ORDER
from service.push.models import PushSync, SyncStatus
from service.settings import Settings

API_KEY = "bench-" + os.urandom(8).hex()


async def plan_case(api: httpx.AsyncClient, patient_id: str, n: int) -> str:
    case = (
        await api.post(
            "/api/cases",
            json={
                "patient_id": patient_id,
                "program": "nursing",
                "manager": "cm.jones",
                "title": f"Bench case {n}",
            },
        )
    ).json()
    base = f"/api/cases/{case['id']}"
    await api.post(
        f"{base}/assessments",
        json={
            "kind": "initial",
            "needs": [
                {
                    "domain": "functional",
                    "description": "Needs help bathing",
                    "severity": "moderate",
                }
            ],
        },
    )
    need = (await api.get(f"{base}/needs")).json()["items"][0]
    goal = (
        await api.post(
            f"{base}/goals",
            json={
                "description": "Bathe independently",
                "need_ids": [need["id"]],
                "lifecycle_status": "active",
            },
        )
    ).json()
    await api.post(
        f"{base}/interventions",
        json={
            "kind": "referral",
            "type": "home_health",
            "status": "active",
            "performer": {"kind": "organization", "name": "Sunrise Home Health"},
            "goal_ids": [goal["id"]],
            "need_ids": [need["id"]],
        },
    )
    return str(case["id"])


async def make_cases(
    api: httpx.AsyncClient,
    database: Database,
    ehr: httpx.AsyncClient,
    count: int,
    link_to: str | None,
) -> list[tuple[str, str]]:
    """(case id, remote patient id) of `count` new cases, each of a new remote patient."""
    made = []
    for n in range(count):
        remote = (await ehr.post("Patient", json={"resourceType": "Patient"})).json()["id"]
        patient = (
            await api.post(
                "/api/patients",
                json={"given_name": "Bench", "family_name": f"P{n}", "identifiers": []},
            )
        ).json()
        if link_to is not None:
            async with database.unit_of_work() as session:
                await link_patient(session, link_to, patient["id"], remote)
        made.append((await plan_case(api, patient["id"], n), remote))
    return made


async def raw_bundles(
    database: Database, cases: Sequence[tuple[str, str]], caps: Capabilities
) -> list[bytes]:
    """Each case as the push sends it: conditional creates, urn:uuid references, Provenance."""
    bundles = []
    async with database.transaction(write=False) as session:
        for case_id, remote_patient in cases:
            rows = await session.scalars(
                select(StoredResource).where(
                    StoredResource.case_id == case_id,
                    StoredResource.resource_type.in_(PUSH_ORDER),
                )
            )
            resources = sorted(
                (orjson.loads(r.content) for r in rows if caps.supports(r.resource_type, "create")),
                key=lambda r: PUSH_ORDER.index(r["resourceType"]),
            )
            targets = {
                f"{r['resourceType']}/{r['id']}": full_url(f"{r['resourceType']}/{r['id']}")
                for r in resources
            }
            targets[resources[0]["subject"]["reference"]] = f"Patient/{remote_patient}"
            entries: list[dict[str, Any]] = []
            for resource in resources:
                reference = f"{resource['resourceType']}/{resource['id']}"
                body = {
                    k: v
                    for k, v in with_references(resource, targets).items()
                    if k not in ("id", "meta")
                }
                system, value = own_identifier(resource)
                entries.append(
                    {
                        "fullUrl": targets[reference],
                        "resource": body,
                        "request": {
                            "method": "POST",
                            "url": resource["resourceType"],
                            "ifNoneExist": identifier_query(system, value),
                        },
                    }
                )
            provenance = provenance_resource(
                CaseChange(
                    id=new_id(),
                    recorded_at=utcnow(),
                    targets=[str(e["fullUrl"]) for e in entries],
                    author="cm.jones",
                )
            )
            # As the push writes it: by id where the server creates by update (a replay then
            # overwrites it), else a plain create.
            if caps.supports_update_create("Provenance"):
                url = f"Provenance/{provenance['id']}"
                entries.append({"resource": provenance, "request": {"method": "PUT", "url": url}})
            else:
                del provenance["id"]
                entries.append(
                    {"resource": provenance, "request": {"method": "POST", "url": "Provenance"}}
                )
            bundles.append(
                orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})
            )
    return bundles


async def send_raw(ehr: httpx.AsyncClient, bundles: list[bytes], concurrency: int) -> float:
    """Seconds to send every Bundle, `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def send(bundle: bytes) -> None:
        async with gate:
            response = await ehr.post(
                "", content=bundle, headers={"Content-Type": "application/fhir+json"}
            )
            response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(send(b) for b in bundles))
    return time.perf_counter() - started


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_running(marker: str) -> int:
    """The pid of the process whose command line holds `marker` (the sekmet config path)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    return int(entry.name)
            except OSError:
                continue
    raise RuntimeError(f"no process runs with {marker}")


class CpuMeter:
    """CPU seconds used by this process and by the EHR server during one phase: where the time
    of a push goes on a machine whose cores the two share."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.ours = self.server = 0.0

    def __enter__(self) -> CpuMeter:
        self._ours, self._server = time.process_time(), process_cpu_seconds(self.server_pid)
        return self

    def __exit__(self, *_: object) -> None:
        self.ours = time.process_time() - self._ours
        self.server = process_cpu_seconds(self.server_pid) - self._server


# Built once: polling is work in this process too, counted against the push.
SYNC_COUNTS = select(PushSync.__table__.c.status, func.count()).group_by(
    PushSync.__table__.c.status
)

# A pair in one of these waits for a retry, a person or a replay: the run would never end.
STUCK = frozenset({SyncStatus.failed, SyncStatus.dead, SyncStatus.conflict, SyncStatus.unsupported})


def held_back(case_ids: Sequence[str], until: dt.datetime) -> Any:
    """Makes the pushes of `case_ids` due at `until`: later rounds' cases wait for theirs."""
    return update(PushSync).where(PushSync.case_id.in_(case_ids)).values(next_attempt_at=until)


async def warmed_up_dispatcher(database: Database, warm_up: Sequence[str]) -> PushDispatcher:
    """A dispatcher that has pushed the warm-up cases (its client made, its connections to
    sekmet open), as the raw client sent its own before it was timed."""
    async with database.connection() as connection:
        await connection.execute(held_back(warm_up, utcnow()))
    dispatcher = PushDispatcher(database)
    await dispatcher.run_until_idle()
    return dispatcher


async def push_all(
    dispatcher: PushDispatcher, database: Database, measured: Sequence[str], synced: int
) -> float:
    """Seconds from making `measured` due and starting the dispatcher until `synced` pairs in
    all are synced."""
    async with database.connection() as connection:
        await connection.execute(held_back(measured, utcnow()))
    started = time.perf_counter()
    dispatcher.start()
    try:
        while True:
            async with database.connection(write=False) as connection:
                rows = await connection.execute(SYNC_COUNTS)
                counts: dict[SyncStatus, int] = dict(rows.all())
            if counts.get(SyncStatus.synced) == synced:
                return time.perf_counter() - started
            if stuck := {s: n for s, n in counts.items() if s in STUCK and n}:
                raise RuntimeError(f"pushes that will not sync unaided: {stuck}; see last_error")
            # Often enough to time the run, no more.
            await asyncio.sleep(0.05)
    finally:
        await dispatcher.close()


@dataclass
class Round:
    """One round's cases: (case id, remote patient id) for the raw sets, case ids pushed."""

    before: list[tuple[str, str]]
    pushed: list[str]
    after: list[tuple[str, str]]
    warm_up: list[tuple[str, str]]
    push_warm_up: list[str]


@dataclass
class Phase:
    seconds: float
    cpu: CpuMeter


async def make_round(
    api: httpx.AsyncClient, database: Database, ehr: httpx.AsyncClient, cases: int, linked: str
) -> Round:
    async def linked_cases(count: int) -> list[str]:
        made = [case for case, _ in await make_cases(api, database, ehr, count, linked)]
        async with database.connection() as connection:
            await connection.execute(held_back(made, utcnow() + dt.timedelta(days=1)))
        return made

    return Round(
        before=await make_cases(api, database, ehr, cases, None),
        pushed=await linked_cases(cases),
        after=await make_cases(api, database, ehr, cases, None),
        warm_up=await make_cases(api, database, ehr, 4, None),
        push_warm_up=await linked_cases(4),
    )


async def run_round(
    round_: Round,
    database: Database,
    ehr: httpx.AsyncClient,
    caps: Capabilities,
    args: argparse.Namespace,
    sekmet_pid: int,
    synced: int,
) -> tuple[Phase, Phase, Phase]:
    """The round's raw (before), push and raw (after) phases; `synced`: pairs synced before."""
    await send_raw(ehr, await raw_bundles(database, round_.warm_up, caps), args.concurrency)
    bundles = await raw_bundles(database, round_.before, caps)
    with CpuMeter(sekmet_pid) as raw_before_cpu:
        raw_before = await send_raw(ehr, bundles, args.concurrency)
    dispatcher = await warmed_up_dispatcher(database, round_.push_warm_up)
    total = synced + len(round_.push_warm_up) + len(round_.pushed)
    with CpuMeter(sekmet_pid) as push_cpu:
        push = await push_all(dispatcher, database, round_.pushed, total)
    bundles = await raw_bundles(database, round_.after, caps)
    with CpuMeter(sekmet_pid) as raw_after_cpu:
        raw_after = await send_raw(ehr, bundles, args.concurrency)
    return (
        Phase(raw_before, raw_before_cpu),
        Phase(push, push_cpu),
        Phase(raw_after, raw_after_cpu),
    )


async def run(
    args: argparse.Namespace, sekmet_base: str, database_url: str, sekmet_pid: int
) -> None:
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        encryption_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        bootstrap_api_key=API_KEY,
        push_dispatcher_enabled=False,
        ehr_max_concurrency=args.concurrency,
        allow_insecure_http=True,
        allow_private_networks=True,
    )
    engine = create_engine(settings)
    await upgrade_to_head(engine)
    await engine.dispose()
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench",
            headers={"X-API-Key": API_KEY},
            timeout=60,
        ) as api,
        httpx.AsyncClient(
            base_url=sekmet_base + "/",
            timeout=60,
            limits=httpx.Limits(max_connections=args.concurrency),
        ) as ehr,
    ):
        database: Database = app.state.database
        connection = (
            await api.post(
                "/api/admin/connections",
                json={"name": "sekmet", "base_url": sekmet_base, "auth_mode": "none"},
            )
        ).json()
        caps = Capabilities.model_validate(connection["capabilities"])
        print(f"making {args.rounds} x 3 x {args.cases} cases ...", flush=True)
        rounds = [
            await make_round(api, database, ehr, args.cases, connection["id"])
            for _ in range(args.rounds)
        ]
        ratios = []
        synced = 0
        for number, round_ in enumerate(rounds, 1):
            phases = await run_round(round_, database, ehr, caps, args, sekmet_pid, synced)
            synced += len(round_.push_warm_up) + len(round_.pushed)
            before, push, after = (args.cases / phase.seconds for phase in phases)
            ratios.append(push / ((before + after) / 2))
            print(
                f"round {number}: raw before {before:6.1f}/s, push {push:6.1f}/s,"
                f" raw after {after:6.1f}/s: push / raw {ratios[-1]:.2f}x",
                flush=True,
            )
            cpu = " / ".join(f"{1000 * p.cpu.ours / args.cases:4.1f}" for p in phases)
            server = " / ".join(f"{1000 * p.cpu.server / args.cases:4.1f}" for p in phases)
            print(f"         CPU ms per push (raw / push / raw): here {cpu}, sekmet {server}")
    print(
        f"push / raw: median {statistics.median(ratios):.2f}x over {len(ratios)} rounds"
        f" (from {min(ratios):.2f}x to {max(ratios):.2f}x); target >= 0.8x;"
        f" at most {args.concurrency} requests at once, {settings.push_concurrency} pushes"
        " at once"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100, help="cases per phase")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database-url", help="an empty database (default: temporary SQLite)")
    args = parser.parse_args()
    sekmet = Path(sys.executable).with_name("sekmet")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        directory = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}/fhir"
        config = directory / "sekmet.yaml"
        config.write_text(
            f"base_url: {base}\nhost: 127.0.0.1\nport: {port}\n"
            f"data_dir: {directory / 'sekmet'}\nlog_inbound: false\nsimulator:\n  enabled: false\n"
        )
        stack.enter_context(
            serve(
                [
                    str(sekmet),
                    "serve",
                    "-c",
                    str(config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                base + "/metadata",
                directory / "sekmet.log",
                dict(os.environ),
                cwd=directory,
            )
        )
        database = args.database_url or f"sqlite+aiosqlite:///{directory / 'bench.db'}"
        asyncio.run(run(args, base, database, pid_running(str(config))))


if __name__ == "__main__":
    main()
