"""Delivered outbox rows are kept for the retention period, then pruned oldest first, a batch at
a time; rows still owed to an EHR are never pruned, however old."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
from sqlalchemy import select, update

from service.db.base import utcnow
from service.db.session import Database
from service.push.dispatcher import PushDispatcher
from service.push.models import PushOutboxEntry
from service.push.retention import prune_delivered
from service.settings import Settings
from tests.push.fake_ehr import FakeEhr, capabilities, fake_connection
from tests.push.linked_cases import case_of_linked_patient

DAY = dt.timedelta(days=1)


async def outbox_rows(
    database: Database, case_id: str, connection_id: str, ages: dict[str, dt.timedelta | None]
) -> None:
    """Rows named by `ages`' keys, delivered that long ago (None: not delivered, a year old)."""
    now = utcnow()
    async with database.transaction() as session:
        session.add_all(
            PushOutboxEntry(
                id=row_id,
                case_id=case_id,
                connection_id=connection_id,
                created_at=now - (age or 365 * DAY) - DAY,
                delivered_at=None if age is None else now - age,
            )
            for row_id, age in ages.items()
        )


async def row_ids(database: Database) -> set[str]:
    async with database.transaction(write=False) as session:
        return set(await session.scalars(select(PushOutboxEntry.id)))


async def test_old_deliveries_are_pruned_oldest_first_and_undelivered_rows_never(
    client: httpx.AsyncClient, database: Database
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    owed = await row_ids(database)  # the case's own changes, not pushed yet
    await outbox_rows(
        database,
        case["id"],
        connection,
        {
            "delivered-45-days-ago": 45 * DAY,
            "delivered-40-days-ago": 40 * DAY,
            "delivered-35-days-ago": 35 * DAY,
            "delivered-yesterday": DAY,
            "owed-for-a-year": None,
        },
    )
    cutoff = utcnow() - 30 * DAY

    async with database.connection() as connection_:
        assert await prune_delivered(connection_, cutoff, batch=2) == 2
    assert "delivered-35-days-ago" in await row_ids(database)  # the two oldest went first
    async with database.connection() as connection_:
        assert await prune_delivered(connection_, cutoff, batch=2) == 1
        assert await prune_delivered(connection_, cutoff, batch=2) == 0
    assert await row_ids(database) == owed | {"delivered-yesterday", "owed-for-a-year"}


async def test_the_dispatcher_prunes_by_the_retention_setting_then_waits_an_interval(
    client: httpx.AsyncClient,
    database: Database,
    settings: Settings,
    fake: FakeEhr,
    dispatcher: PushDispatcher,
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    await dispatcher.run_until_idle()  # the case's changes are delivered now
    async with database.transaction() as session:
        await session.execute(update(PushOutboxEntry).values(delivered_at=utcnow() - 31 * DAY))
    await outbox_rows(database, case["id"], connection, {"delivered-29-days-ago": 29 * DAY})
    delivered = await row_ids(database) - {"delivered-29-days-ago"}
    assert delivered

    keep_all = Database(settings.model_copy(update={"push_outbox_retention_days": 0}))
    try:
        assert await PushDispatcher(keep_all).prune_outbox() == 0
    finally:
        await keep_all.dispose()
    assert await row_ids(database) == delivered | {"delivered-29-days-ago"}

    assert settings.push_outbox_retention_days == 30
    assert await dispatcher.prune_outbox() == len(delivered)
    assert await row_ids(database) == {"delivered-29-days-ago"}
    await outbox_rows(database, case["id"], connection, {"delivered-40-days-ago": 40 * DAY})
    assert await dispatcher.prune_outbox() == 0  # not due again for an interval


async def test_a_running_dispatcher_prunes_as_it_starts(
    client: httpx.AsyncClient, database: Database, fake: FakeEhr, dispatcher: PushDispatcher
) -> None:
    connection = await fake_connection(database, capabilities())
    case = await case_of_linked_patient(client, database, connection, "p1")
    await outbox_rows(database, case["id"], connection, {"delivered-40-days-ago": 40 * DAY})
    dispatcher.start()
    async with asyncio.timeout(30):
        while "delivered-40-days-ago" in await row_ids(database):
            await asyncio.sleep(0.05)
