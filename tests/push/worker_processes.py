"""Standalone push workers as real processes (`python -m service.push.worker`), configured by
environment variables like production, against the test's database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from service.db.session import Database
from service.push.models import PushSync, SyncStatus


def start_worker(database: Database, directory: Path) -> subprocess.Popen[bytes]:
    settings = database.settings
    assert settings.encryption_key is not None
    env = os.environ | {
        "CASEBRIDGE_DATABASE_URL": settings.database_url,
        "CASEBRIDGE_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),
        "CASEBRIDGE_ALLOW_INSECURE_HTTP": "true",
        "CASEBRIDGE_ALLOW_PRIVATE_NETWORKS": "true",
        "CASEBRIDGE_PUSH_LEASE_SECONDS": "2",
        "CASEBRIDGE_PUSH_POLL_SECONDS": "0.1",
        "CASEBRIDGE_PUSH_RETRY_BASE_SECONDS": "0.1",
        "CASEBRIDGE_PUSH_CONCURRENCY": "2",
    }
    with (directory / f"worker-{os.urandom(4).hex()}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "service.push.worker"],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def statuses(database: Database) -> dict[str, int]:
    async with database.transaction(write=False) as session:
        rows = await session.execute(
            select(PushSync.status, func.count()).group_by(PushSync.status)
        )
        return {str(status): count for status, count in rows.all()}


async def wait_until_all_synced(database: Database, expected: int, timeout: float = 90.0) -> None:
    """Polls the database (not a timing assertion: the deadline only bounds a hung test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if (await statuses(database)).get(SyncStatus.synced.value) == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not all pushes synced: {await statuses(database)}")


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
