"""The engine for PgBouncer in transaction pooling: no statement caches, no own pool, and it
still runs queries, writes included (on PostgreSQL, where the setting applies)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from service.db.session import create_engine
from tests.conftest import settings_for


async def test_pgbouncer_engine_runs_prepared_statements_without_caches(
    database_url: str, is_postgres: bool
) -> None:
    if not is_postgres:
        pytest.skip("the setting applies to PostgreSQL only")
    engine = create_engine(settings_for(database_url, database_pgbouncer_transaction_pooling=True))
    try:
        assert isinstance(engine.pool, NullPool)
        async with engine.begin() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            assert driver._stmt_cache.get_max_size() == 0
            for value in range(3):
                assert (
                    await connection.execute(text("SELECT CAST(:v AS integer)"), {"v": value})
                ).scalar() == value
    finally:
        await engine.dispose()
