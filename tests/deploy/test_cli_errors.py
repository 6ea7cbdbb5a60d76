"""Errors an operator can fix end the `casebridge` command with one line on stderr and a
non-zero exit, not a traceback. Run as a real process, so the output is what a person sees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def casebridge(*args: str, cwd: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("CASEBRIDGE")}
    env |= {"PYTHONPATH": str(ROOT)} | environment
    return subprocess.run(
        [sys.executable, "-c", "from service.cli import app; app()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # guards against a hang only
        check=False,
    )


def test_db_current_without_settings_prints_one_line(tmp_path: Path) -> None:
    result = casebridge("db", "current", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: invalid settings: CASEBRIDGE_ENCRYPTION_KEY (or CASEBRIDGE_ENCRYPTION_KEY_FILE) "
        "is required (or set CASEBRIDGE_DEV_MODE=true)"
    ]


def test_db_upgrade_on_an_unreachable_database_prints_one_line(tmp_path: Path) -> None:
    result = casebridge(
        "db",
        "upgrade",
        cwd=tmp_path,
        CASEBRIDGE_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        CASEBRIDGE_DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/none",
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: cannot reach the database:")


def test_serving_an_old_schema_says_how_to_migrate_and_exits(
    tmp_path: Path, empty_database_url: str
) -> None:
    result = casebridge(
        "serve",
        "--port",
        "1",  # never bound: the schema check comes first
        cwd=tmp_path,
        CASEBRIDGE_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        CASEBRIDGE_DATABASE_URL=empty_database_url,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: the database schema is not current: run `casebridge db upgrade` first, or "
        "serve with `--migrate` (or CASEBRIDGE_AUTO_MIGRATE=true)"
    ]
