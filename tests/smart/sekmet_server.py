"""A real SMART Backend Services EHR on loopback: `sekmet-fhir` (installed with the test extras).

The server is configured with two clients, one per key type, because sekmet wants a client's
keys to be of one type. Their public keys are files the test writes once CaseBridge has
generated the key pairs (sekmet reads them on every token request), taken from CaseBridge's
own JWKS, so the server verifies exactly what CaseBridge publishes.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

RS384_CLIENT = "casebridge-rs384"
ES384_CLIENT = "casebridge-es384"
# What each client may be granted; a connection can ask for less.
ALLOWED_SCOPES = "system/Patient.rs system/Observation.rs"
READY_TIMEOUT_SECONDS = 60.0


def sekmet_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("sekmet")
    return str(beside_python) if beside_python.exists() else shutil.which("sekmet")


@dataclass(frozen=True)
class SekmetServer:
    base_url: str
    token_url: str
    directory: Path

    def public_key_path(self, client_id: str) -> Path:
        return self.directory / f"{client_id}.pem"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _settings_yaml(port: int, directory: Path, allowed_scopes: str = ALLOWED_SCOPES) -> str:
    clients = "".join(
        f"    - client_id: {client}\n"
        f"      public_key_path: {directory / f'{client}.pem'}\n"
        f'      scopes: "{allowed_scopes}"\n'
        for client in (RS384_CLIENT, ES384_CLIENT)
    )
    return (
        f"base_url: http://127.0.0.1:{port}/fhir\n"
        f"host: 127.0.0.1\n"
        f"port: {port}\n"
        f"data_dir: {directory / 'data'}\n"
        "log_inbound: false\n"
        "simulator:\n  enabled: false\n"
        "server_auth:\n"
        "  types: [smart]\n"
        "  enforce_scopes: true\n"
        "  token_lifetime: 300\n"
        "  smart_clients:\n" + clients
    )


def wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sekmet exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"sekmet did not answer {url} in time:\n{log.read_text()}")


def open_settings(port: int, directory: Path) -> str:
    """sekmet's settings for a server with no authorization at all."""
    return (
        f"base_url: http://127.0.0.1:{port}/fhir\n"
        "host: 127.0.0.1\n"
        f"port: {port}\n"
        f"data_dir: {directory / 'data'}\n"
        "log_inbound: false\n"
        "simulator:\n  enabled: false\n"
    )


def seed_and_serve(
    binary: str, directory: Path, settings: Callable[[int, Path], str], patients: int
) -> tuple[str, subprocess.Popen[bytes]]:
    """Write `settings(port, directory)`, seed `patients`, serve on 127.0.0.1 and wait until it
    answers; returns the FHIR base URL and the process, which the caller stops."""
    port = free_port()
    config = directory / "settings.yaml"
    config.write_text(settings(port, directory))
    subprocess.run(
        [binary, "seed", "--count", str(patients), "--no-admit", "-c", str(config)],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=300,
    )
    log = directory / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [binary, "serve", "-c", str(config), "--host", "127.0.0.1", "--port", str(port)],
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/fhir"
    try:
        wait_until_ready(process, f"{base_url}/metadata", log)
    except BaseException:
        stop(process)
        raise
    return base_url, process


def start_sekmet(
    binary: str, directory: Path, allowed_scopes: str = ALLOWED_SCOPES
) -> tuple[SekmetServer, subprocess.Popen[bytes]]:
    """Seed two patients, then serve with SMART Backend Services; the caller stops the
    returned process."""
    base_url, process = seed_and_serve(
        binary, directory, lambda port, d: _settings_yaml(port, d, allowed_scopes), 2
    )
    server = SekmetServer(
        base_url=base_url,
        token_url=base_url.removesuffix("/fhir") + "/auth/token",
        directory=directory,
    )
    return server, process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
