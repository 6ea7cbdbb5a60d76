"""Replicas that start together with CASEBRIDGE_AUTO_MIGRATE on one PostgreSQL: every one of
them ends up on the current schema, none fails on a half-made one. Separate processes, as
replicas are."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from service.db.schema import is_current
from service.db.session import create_engine
from tests.conftest import settings_for

ROOT = Path(__file__).resolve().parents[2]


async def db_upgrade(database_url: str) -> tuple[int, bytes]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("CASEBRIDGE")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "CASEBRIDGE_DATABASE_URL": database_url,
        "CASEBRIDGE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from service.cli import app; app()",
        "db",
        "upgrade",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr


async def test_concurrent_upgrades_of_an_empty_database_all_succeed(
    empty_database_url: str,
) -> None:
    if not empty_database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer; the race is PostgreSQL's")
    results = await asyncio.wait_for(  # guards against a hang only
        asyncio.gather(*(db_upgrade(empty_database_url) for _ in range(3))), timeout=180
    )
    assert [code for code, _ in results] == [0, 0, 0], [err.decode() for _, err in results]
    engine = create_engine(settings_for(empty_database_url))
    try:
        assert await is_current(engine)
    finally:
        await engine.dispose()
