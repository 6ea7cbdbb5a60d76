"""CaseBridge itself as a real HTTP server on loopback (uvicorn in a subprocess), on the test
database, for clients that speak HTTP rather than ASGI (fhirpy, fhirclient)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

READY_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def casebridge_server(
    database_url: str,
    encryption_key: str,
    api_key: str,
    log: Path,
    *,
    workers: int = 1,
    environment: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Serve the app on 127.0.0.1 and yield its base URL once every worker process has
    started (`workers` > 1: uvicorn's own worker processes); stop it afterwards."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server_environment = os.environ | {
        "CASEBRIDGE_DATABASE_URL": database_url,
        "CASEBRIDGE_ENCRYPTION_KEY": encryption_key,
        "CASEBRIDGE_BOOTSTRAP_API_KEY": api_key,
        "CASEBRIDGE_PUBLIC_BASE_URL": base_url,
        **(environment or {}),
    }
    command = [sys.executable, "-m", "uvicorn", "service.main:app", "--host", "127.0.0.1"]
    if workers > 1:
        command += ["--workers", str(workers)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=server_environment, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"CaseBridge exited:\n{log.read_text()}")
            # Each worker process logs its startup; /readyz alone may answer from the first.
            started = workers == 1 or log.read_bytes().count(b"startup complete") >= workers
            try:
                ready = httpx.get(f"{base_url}/readyz", timeout=2.0).status_code == 200
                if ready and started:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"CaseBridge did not become ready:\n{log.read_text()}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
