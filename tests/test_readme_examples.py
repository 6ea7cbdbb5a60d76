"""Every shell example of the README runs, twice in a row, as a reader would run it: against a
real CaseBridge served on loopback (with the README's `dev-key`), and, for the EHR guide, a
real SMART Backend Services EHR (sekmet-fhir) on loopback.

The README's first block (install and serve, install and test) is what CI itself runs; every
later `sh` block runs here in order, each twice, in one working directory that has a `.venv`
pointing at this interpreter's environment, as the README's first command would leave it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.db.session import Database
from service.settings import Settings
from tests.integration.casebridge_server import casebridge_server
from tests.smart.sekmet_server import free_port, sekmet_binary, stop, wait_until_ready

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
README_KEY = "dev-key"
# The identifier system sekmet-fhir 0.1.1 gives the medical record numbers it seeds.
SEKMET_MRN_SYSTEM = "urn:oid:1.2.3.4.5.1"
BLOCK_TIMEOUT_SECONDS = 180


def shell_examples() -> list[str]:
    blocks = re.findall(r"(?ms)^```sh\n(.*?)^```", (ROOT / "README.md").read_text())
    return blocks[1:]


def _sekmet_settings(port: int, directory: Path) -> str:
    return (
        f"base_url: http://127.0.0.1:{port}/fhir\nhost: 127.0.0.1\nport: {port}\n"
        f"data_dir: {directory / 'data'}\nlog_inbound: false\nsimulator:\n  enabled: false\n"
        "server_auth:\n  types: [smart]\n  enforce_scopes: true\n  token_lifetime: 300\n"
        "  smart_clients:\n    - client_id: casebridge\n"
        f"      public_key_path: {directory / 'casebridge.pem'}\n"
        '      scopes: "system/*.cruds"\n'
    )


@pytest.fixture
def sandbox_ehr(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """sekmet seeded with one patient: (FHIR base URL, that patient's MRN, the key file the
    README's step 3 writes)."""
    binary = sekmet_binary()
    assert binary is not None, "sekmet-fhir is a test dependency"
    directory = tmp_path / "ehr"
    directory.mkdir()
    port = free_port()
    config = directory / "settings.yaml"
    config.write_text(_sekmet_settings(port, directory))
    seeded = subprocess.run(
        [binary, "seed", "--count", "1", "--no-admit", "-c", str(config)],
        cwd=directory,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    mrn = re.search(r"Patient/\S+ (\S+)", seeded.stdout)
    assert mrn is not None, seeded.stdout
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
        yield base_url, f"{SEKMET_MRN_SYSTEM}|{mrn.group(1)}", directory / "casebridge.pem"
    finally:
        stop(process)


@pytest.fixture
def readme_server(
    settings: Settings, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """CaseBridge as the README's first command serves it, with the README's key; loopback EHRs
    allowed, as the EHR guide says a laptop trial needs."""
    assert settings.encryption_key is not None
    monkeypatch.setenv("CASEBRIDGE_ALLOW_INSECURE_HTTP", "true")
    monkeypatch.setenv("CASEBRIDGE_ALLOW_PRIVATE_NETWORKS", "true")
    with casebridge_server(
        settings.database_url,
        settings.encryption_key.get_secret_value(),
        README_KEY,
        tmp_path / "casebridge.log",
    ) as base_url:
        yield base_url


def test_the_readme_has_examples_beyond_the_first_commands() -> None:
    examples = shell_examples()
    assert len(examples) >= 3
    assert all("CB=${CB:-http://127.0.0.1:8000}" in example for example in examples)


def test_every_shell_example_runs_twice_in_a_row(
    readme_server: str, sandbox_ehr: tuple[str, str, Path], tmp_path: Path
) -> None:
    for tool in ("curl", "jq"):
        assert shutil.which(tool), f"the README's examples need {tool} (.ci/run installs it)"
    workdir = tmp_path / "reader"
    (workdir / ".venv" / "bin").mkdir(parents=True)
    (workdir / ".venv" / "bin" / "python").symlink_to(sys.executable)
    ehr_base, mrn, key_file = sandbox_ehr
    environment = os.environ | {
        "CB": readme_server,
        "EHR": ehr_base,
        "MRN": mrn,
        "EHR_KEY_FILE": str(key_file),
    }
    for number, example in enumerate(shell_examples(), start=2):
        for attempt in (1, 2):
            run = subprocess.run(
                ["bash", "-c", example],
                cwd=workdir,
                env=environment,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT_SECONDS,
            )
            assert run.returncode == 0, (
                f"README sh block {number}, run {attempt}, exited {run.returncode}:\n"
                f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
            )
            assert run.stdout.strip(), f"README sh block {number} printed nothing"
