"""Load benchmark of `/fhir` with wrk: reads, searches (a page of 50) and creates.

In one run it measures three servers, each one uvicorn process on 127.0.0.1:

- CaseBridge (`service.main:app`), with a real SMART access token on every request;
- the ceiling: `bench/ceiling_app.py`, the same stored bytes from the same database, bare; for
  creates, the same transaction's resources validated and inserted in one transaction; and the
  "floors" (same app, `/floor/fhir`): a read plus its durable AuditEvent (group commit), and a
  create plus the case rows, versions, Provenance, search index and AuditEvent row that FHIR
  and the brief oblige;
- a peer FHIR server, sekmet-fhir (`sekmet serve`), loaded with the same CarePlans.

It prints requests/s (the median of `--runs` wrk runs per operation) and the ratios
CaseBridge/ceiling and CaseBridge/peer, and for reads and creates floor/ceiling and
CaseBridge/floor.
Targets: reads ≥ 0.9x the ceiling and ≥ 3x the peer; a transaction create ≥ 0.5x the create
ceiling on PostgreSQL (docs/fhir-api.md: what the floor says of that target).
The machine is shared and noisy: compare ratios from one run, not figures across runs.

    python -m bench.fhir_load [--cases 200] [--seconds 5] [--connections 16] [--runs 3]
                              [--database-url postgresql+asyncpg://.../empty_db]

Needs `wrk` (Debian: apt install wrk) and the test extras (sekmet-fhir).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

API_KEY = "bench-" + uuid.uuid4().hex
SCOPES = "system/CarePlan.cruds system/Goal.cruds system/Patient.rs system/Provenance.rs"
CREATE_BODY = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001",
            "request": {"method": "POST", "url": "Goal"},
            "resource": {
                "resourceType": "Goal",
                "lifecycleStatus": "active",
                "description": {"text": "Walk unaided"},
                "subject": {"reference": "Patient/PATIENT"},
            },
        },
        {
            "fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
            "request": {"method": "POST", "url": "CarePlan"},
            "resource": {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": "Patient/PATIENT"},
                "goal": [{"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"}],
            },
        },
    ],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer\n{log.read_text()}")


@contextmanager
def serve(
    command: list[str], ready: str, log: Path, env: dict[str, str], cwd: Path | None = None
) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=output, cwd=cwd)
    try:
        wait_until(ready, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def uvicorn(app: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def wrk(
    url: str, seconds: int, connections: int, headers: dict[str, str], script: Path | None
) -> float:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed responses\n{output}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert found, output
    return float(found.group(1))


def post_script(directory: Path, name: str, body: bytes, content_type: str) -> Path:
    """A wrk Lua script that POSTs `body` (a Lua long string: JSON holds no `]==]`)."""
    script = directory / f"{name}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
        f"wrk.body = [==[{body.decode()}]==]\n"
    )
    return script


async def fetch_token(
    http: httpx.AsyncClient, api_key: str, scopes: str, name: str = "bench"
) -> str:
    """A SMART Backend Services access token (SMART App Launch 2.0, client-confidential-
    asymmetric) from the CaseBridge at `http.base_url`: registers a client with a new P-384
    key through the admin API, then trades a signed client assertion for a token."""
    key = ECKey.generate_key("P-384", parameters={"kid": name})
    client_id = f"{name}-{uuid.uuid4().hex[:8]}"
    registered = await http.post(
        "/api/admin/fhir-clients",
        headers={"X-API-Key": api_key},
        json={
            "client_id": client_id,
            "name": name,
            "scopes": scopes.split(),
            "jwks": {"keys": [dict(key.as_dict(private=False))]},
        },
    )
    registered.raise_for_status()
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": str(http.base_url.join("/auth/token")),
        "exp": now + 240,
        "jti": uuid.uuid4().hex,
    }
    assertion = jwt.encode({"alg": "ES384", "kid": name}, claims, key, algorithms=["ES384"])
    response = await http.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scopes,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def token(base: str) -> str:
    """An access token from the CaseBridge serving at `base` (see `fetch_token`)."""

    async def fetch() -> str:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            return await fetch_token(http, API_KEY, SCOPES)

    return asyncio.run(fetch())


async def seed(base: str, cases: int) -> list[dict[str, Any]]:
    """Cases with a goal each, through the internal API; returns their CarePlans."""
    headers = {"X-API-Key": API_KEY}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        for n in range(cases):
            patient = (await http.post("/api/patients", json={"family_name": f"Bench{n}"})).json()
            case = (
                await http.post(
                    "/api/cases", json={"patient_id": patient["id"], "program": "nursing"}
                )
            ).json()
            await http.post(
                f"/api/cases/{case['id']}/goals",
                json={"description": "Walk", "lifecycle_status": "active"},
            )
        plans: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {"limit": "200"} | ({"cursor": cursor} if cursor else {})
            page = (await http.get("/api/cases", params=params)).json()
            plans += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--database-url",
        help="an empty database for CaseBridge and the ceiling (default: a temporary SQLite file)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt install wrk)")
    sekmet = Path(sys.executable).with_name("sekmet")

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        directory = Path(tmp)
        database = args.database_url or f"sqlite+aiosqlite:///{directory / 'bench.db'}"
        env = os.environ | {
            "CASEBRIDGE_DATABASE_URL": database,
            "CASEBRIDGE_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "CASEBRIDGE_BOOTSTRAP_API_KEY": API_KEY,
            "CASEBRIDGE_AUTO_MIGRATE": "true",
            "CASEBRIDGE_FHIR_ACCESS_TOKEN_LIFETIME_SECONDS": "3600",
            # Throughput, not admission (bench/overload.py measures that): no 429s or 503s.
            "CASEBRIDGE_RATE_LIMITS_ENABLED": "false",
            "CASEBRIDGE_MAX_IN_FLIGHT": "0",
        }
        ports = {name: free_port() for name in ("casebridge", "ceiling", "peer")}
        casebridge = f"http://127.0.0.1:{ports['casebridge']}"
        env["CASEBRIDGE_PUBLIC_BASE_URL"] = casebridge
        stack.enter_context(
            serve(
                uvicorn("service.main:app", ports["casebridge"]),
                casebridge + "/readyz",
                directory / "casebridge.log",
                env,
            )
        )
        print(f"seeding {args.cases} cases ...", flush=True)
        plans = asyncio.run(seed(casebridge, args.cases))
        bearer = {"Authorization": f"Bearer {token(casebridge)}"}
        ceiling = f"http://127.0.0.1:{ports['ceiling']}"
        stack.enter_context(
            serve(
                uvicorn("bench.ceiling_app:app", ports["ceiling"]),
                ceiling + "/fhir/CarePlan",
                directory / "ceiling.log",
                env,
            )
        )
        peer = f"http://127.0.0.1:{ports['peer']}"
        config = directory / "sekmet.yaml"
        config.write_text(
            f"base_url: {peer}/fhir\nhost: 127.0.0.1\nport: {ports['peer']}\n"
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
                    str(ports["peer"]),
                ],
                peer + "/fhir/metadata",
                directory / "sekmet.log",
                env,
                cwd=directory,
            )
        )
        plan_id = plans[0]["id"]
        with httpx.Client(timeout=30) as http:
            for plan in plans:  # the peer holds the same CarePlans, as we serve them
                body = http.get(f"{casebridge}/fhir/CarePlan/{plan['id']}", headers=bearer).json()
                body.pop("meta", None)
                http.put(f"{peer}/fhir/CarePlan/{plan['id']}", json=body).raise_for_status()
            patient = plans[0]["patient_id"]

        create = json.dumps(CREATE_BODY).replace("PATIENT", patient).encode()
        goal = json.dumps(CREATE_BODY["entry"][0]["resource"]).replace("PATIENT", patient).encode()  # type: ignore[index]
        operations: dict[str, dict[str, tuple[str, dict[str, str], Path | None]]] = {
            "read": {
                "casebridge": (f"{casebridge}/fhir/CarePlan/{plan_id}", bearer, None),
                "ceiling": (f"{ceiling}/fhir/CarePlan/{plan_id}", {}, None),
                "floor": (f"{ceiling}/floor/fhir/CarePlan/{plan_id}", {}, None),
                "peer": (f"{peer}/fhir/CarePlan/{plan_id}", {}, None),
            },
            "search (50)": {
                "casebridge": (f"{casebridge}/fhir/CarePlan?_count=50", bearer, None),
                "ceiling": (f"{ceiling}/fhir/CarePlan?_count=50", {}, None),
                "peer": (f"{peer}/fhir/CarePlan?_count=50", {}, None),
            },
            "create": {
                "casebridge": (
                    f"{casebridge}/fhir",
                    bearer,
                    post_script(directory, "cb", create, "application/fhir+json"),
                ),
                "ceiling": (
                    f"{ceiling}/fhir",
                    {},
                    post_script(directory, "ceiling", create, "application/fhir+json"),
                ),
                "floor": (
                    f"{ceiling}/floor/fhir",
                    {},
                    post_script(directory, "floor", create, "application/fhir+json"),
                ),
                "peer": (
                    f"{peer}/fhir/Goal",
                    {},
                    post_script(directory, "peer", goal, "application/fhir+json"),
                ),
            },
        }
        print(
            f"\nrequests/s, median of {args.runs} runs of {args.seconds}s, "
            f"{args.connections} connections, 1 uvicorn worker each"
        )
        print(
            f"{'operation':<14}{'casebridge':>12}{'ceiling':>10}{'peer':>10}"
            f"{'cb/ceiling':>12}{'cb/peer':>9}"
        )
        for operation, targets in operations.items():
            rates = {
                name: statistics.median(
                    wrk(url, args.seconds, args.connections, headers, script)
                    for _ in range(args.runs)
                )
                for name, (url, headers, script) in targets.items()
            }
            cb = rates["casebridge"]
            ceiling_rate, peer_rate = rates.get("ceiling"), rates["peer"]
            ceiling_text = f"{ceiling_rate:.0f}" if ceiling_rate else "-"
            ratio_text = f"{cb / ceiling_rate:.2f}x" if ceiling_rate else "-"
            print(
                f"{operation:<14}{cb:>12.0f}{ceiling_text:>10}{peer_rate:>10.0f}"
                f"{ratio_text:>12}{cb / peer_rate:>8.2f}x",
                flush=True,
            )
            if floor := rates.get("floor"):
                share = f"{floor / ceiling_rate:.2f}x" if ceiling_rate else "-"
                print(
                    f"{'  its floor':<14}{'':>12}{floor:>10.0f}{'':>10}"
                    f"{share:>12}  (floor/ceiling); CaseBridge/floor {cb / floor:.2f}x",
                    flush=True,
                )
        print(
            "\ncreate: CaseBridge runs a 2-entry transaction (a new case, projected and"
            " audited); the ceiling validates and inserts the same 2 resources; the floor adds"
            " the case rows, their versions, a Provenance, the search index and an AuditEvent"
            " row; the peer a single Goal POST. read: the floor adds a durable AuditEvent."
        )


if __name__ == "__main__":
    main()
