"""The image's recipe: a base pinned by digest, a non-root user, and an entrypoint that
migrates when asked (run here against a stand-in `casebridge` that records its calls)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"


def test_every_base_is_pinned_by_digest_and_the_user_is_not_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    [base] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11[.\d]*-slim-bookworm@sha256:[0-9a-f]{64}", base)
    assert re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE) == ["${PYTHON_IMAGE}"] * 2
    [user] = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user.split(":")[0] not in ("0", "root")
    assert 'ENTRYPOINT ["casebridge-entrypoint"]' in dockerfile
    # An anonymous volume per container is what a separate migrate container never shares.
    assert not re.search(r"^VOLUME", dockerfile, re.MULTILINE)


def run_entrypoint(tmp_path: Path, *args: str, **environment: str) -> list[str]:
    """The `casebridge` invocations the entrypoint makes, one line of arguments each."""
    shell = shutil.which("sh")
    if shell is None:
        pytest.skip("no POSIX shell")
    calls = tmp_path / "calls"
    stand_in = tmp_path / "bin" / "casebridge"
    stand_in.parent.mkdir()
    stand_in.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    stand_in.chmod(0o755)
    env = {name: value for name, value in os.environ.items() if not name.startswith("CASEBRIDGE")}
    env |= {"PATH": f"{stand_in.parent}:{env['PATH']}"} | environment
    subprocess.run([shell, str(ENTRYPOINT), *args], env=env, check=True, timeout=30)
    return calls.read_text().splitlines()


def test_serve_is_the_default_and_does_not_migrate_unless_asked(tmp_path: Path) -> None:
    assert run_entrypoint(tmp_path) == ["serve --host 0.0.0.0 --port 8000"]


def test_auto_migrate_upgrades_before_serving(tmp_path: Path) -> None:
    calls = run_entrypoint(tmp_path, "serve", "--workers", "2", CASEBRIDGE_AUTO_MIGRATE="True")
    assert calls == ["db upgrade", "serve --host 0.0.0.0 --port 8000 --workers 2"]


@pytest.mark.parametrize(
    ("args", "calls"),
    [
        (["migrate"], ["db upgrade"]),
        (["push-worker"], ["push-worker"]),
        (["api-keys", "create", "admin-1"], ["api-keys create admin-1"]),
    ],
    ids=["migrate", "push-worker", "api-keys"],
)
def test_migrate_only_upgrades_and_other_commands_pass_through(
    tmp_path: Path, args: list[str], calls: list[str]
) -> None:
    assert run_entrypoint(tmp_path, *args, CASEBRIDGE_AUTO_MIGRATE="true") == calls
