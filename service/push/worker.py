"""A standalone push worker (`casebridge push-worker` or `python -m service.push.worker`): the
dispatcher without the API, for scale-out. Several may run against one PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import signal

from service.db.session import Database
from service.push.dispatcher import PushDispatcher
from service.settings import Settings, get_settings


async def run_worker(settings: Settings, *, once: bool = False) -> None:
    database = Database(settings)
    dispatcher = PushDispatcher(database)
    try:
        if once:
            await dispatcher.run_until_idle()
            return
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        dispatcher.start()
        await stopping.wait()
    finally:
        await dispatcher.close()
        await database.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run_worker(get_settings()))


if __name__ == "__main__":
    main()
