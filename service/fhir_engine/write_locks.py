"""The lock every write of a stored resource meets, and the read of it taken under that lock.

A write that depends on the version it read (a patch applies to it; a delete of what a
concurrent delete already removed changes nothing) reads it again after taking the lock: a
change committed while this one waited would otherwise be overwritten, or done twice."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from service.cases.service import load_case
from service.fhir_store.models import StoredResource
from service.patients.repository import lock_patient


async def lock_for_write(session: AsyncSession, stored: StoredResource) -> bool:
    """Hold, until the transaction ends, the lock every write of `stored` meets: its case's
    row for a case's resource, the patient's row for a Patient (their updates write it). Then
    `still_current`: whether `stored`, read again, is not deleted."""
    if stored.case_id is not None:
        await load_case(session, stored.case_id, for_update=True)
    elif stored.resource_type == "Patient":
        await lock_patient(session, stored.id)
    return await still_current(session, stored)


async def still_current(session: AsyncSession, stored: StoredResource) -> bool:
    """Read `stored` again, under a lock the caller holds, as whatever committed while it
    waited for that lock left it; whether it is still not deleted."""
    await session.refresh(stored)
    return not stored.deleted
