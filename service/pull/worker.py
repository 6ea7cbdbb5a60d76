"""A standalone pull runner (`casebridge pull-runner` or `python -m service.pull.worker`): the
runner without the API, for scale-out. Any number may run against one PostgreSQL; they share
the jobs through leases (service.pull.runner)."""

from __future__ import annotations

import asyncio
import logging
import signal

from service.db.session import Database
from service.ehr.url_policy import UrlPolicy
from service.pull.runner import PullRunner
from service.settings import Settings, get_settings


async def run_pull_runner(settings: Settings) -> None:
    database = Database(settings)
    runner = PullRunner(database, UrlPolicy.from_settings(settings))
    try:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        await runner.start()
        await stopping.wait()
    finally:
        await runner.close()
        await database.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    asyncio.run(run_pull_runner(get_settings()))


if __name__ == "__main__":
    main()
