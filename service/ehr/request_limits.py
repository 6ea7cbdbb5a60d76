"""The bound on requests in flight to one EHR, per process and shared by every client of that
connection in the process (the push dispatcher's, the pull runner's jobs, the API's).

Across processes the bound is a share: each process holds `ehr_max_concurrency /
ehr_processes` (at least one), so that the sum over the processes a deployment runs stays
within `ehr_max_concurrency`. This is the chosen approximation, over a lease-based semaphore in
the database, because a database round trip before every EHR request would cost more than most
of those requests, and a crashed holder's slot would stay taken until its lease ran out. It
holds the limit exactly as long as `ehr_processes` is at least the number of processes that
talk to EHRs; set it from the deployment (replicas x workers + push workers + pull runners).
With more processes than the limit, each still gets one slot, and the sum exceeds the limit:
docs/replicas.md says so.
"""

from __future__ import annotations

import asyncio
import weakref

from service.settings import Settings


def process_share(settings: Settings) -> int:
    """This process's share of an EHR's concurrent requests."""
    return max(1, settings.ehr_max_concurrency // settings.ehr_processes)


class RequestLimits:
    def __init__(self) -> None:
        # Per event loop: an asyncio.Semaphore belongs to the loop that first waits on it.
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]
        ] = weakref.WeakKeyDictionary()

    def for_connection(self, connection_id: str, limit: int) -> asyncio.Semaphore:
        """The connection's semaphore in this process (made with `limit` on first use)."""
        limits = self._by_loop.setdefault(asyncio.get_running_loop(), {})
        semaphore = limits.get(connection_id)
        if semaphore is None:
            semaphore = limits[connection_id] = asyncio.Semaphore(limit)
        return semaphore


process_request_limits = RequestLimits()
