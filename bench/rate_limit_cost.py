"""What a rate-limit check costs a request: the shared bucket's atomic take (one write
transaction), the check with leases as the service runs it, and a remembered refusal.

    python -m bench.rate_limit_cost [--database-url postgresql+asyncpg://.../empty_db]
                                    [--checks 2000]

Uses an empty database (default: a temporary SQLite file), migrated here.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from service.admission.rate_limits import Policy, RateLimiter
from service.db.schema import upgrade_to_head
from service.db.session import Database
from service.settings import Settings


async def per_check_us(limiter: RateLimiter, database: Database, policy: Policy, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await limiter.check(database, policy, "bench-client")
    return (time.perf_counter() - started) / n * 1e6


async def run(url: str, checks: int) -> None:
    settings = Settings(
        _env_file=None,
        database_url=url,
        encryption_key=SecretStr(base64.urlsafe_b64encode(os.urandom(32)).decode()),
    )
    database = Database(settings)
    await upgrade_to_head(database.engine)
    limiter = RateLimiter.from_settings(settings)
    try:
        unleased = Policy("unleased", 1e9, 10)  # a lease of 1: every check is a take
        leased = Policy("leased", 1e9, 400)  # leases of 20, as the default /fhir client policy
        refused = Policy("refused", 1e-6, 1)  # empty after one check, refused from then on
        await limiter.check(database, refused, "bench-client")
        for policy in (unleased, leased, refused):  # warm up
            await per_check_us(limiter, database, policy, 50)
        print(f"{url.split(':', 1)[0]}, {checks} checks each:")
        take = await per_check_us(limiter, database, unleased, checks)
        print(f"  a take from the shared bucket (every check): {take:8.1f} us")
        lease = await per_check_us(limiter, database, leased, checks)
        print(f"  checks with leases of {leased.lease} (one take each):  {lease:8.1f} us")
        local = await per_check_us(limiter, database, refused, checks)
        print(f"  a remembered refusal:                         {local:8.1f} us")
    finally:
        await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url")
    parser.add_argument("--checks", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(run(url, args.checks))


if __name__ == "__main__":
    main()
