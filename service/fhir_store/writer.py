"""Storing resources as new versions: only when their content changed, with meta.versionId and
meta.lastUpdated written into the stored bytes, and the search index kept current."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from mappings import fhir_json
from mappings.to_fhir.people import PEOPLE_TYPES
from service.db.base import utcnow
from service.fhir_store.locks import hold_until_commit
from service.fhir_store.models import ResourceVersion, SearchEntry, StoredResource
from service.fhir_store.search_params import index_values

JsonDict = dict[str, Any]
# Resources of no one case: a patient, and who acts (mappings.to_fhir.people).
SHARED_TYPES = frozenset({"Patient"}) | PEOPLE_TYPES
SEARCH_INDEX = cast(Table, SearchEntry.__table__)
# Statements of every create, built once: composing them per call cost more than running them.
_CURRENT = select(StoredResource).where(
    StoredResource.resource_type.in_(bindparam("types", expanding=True)),
    StoredResource.id.in_(bindparam("ids", expanding=True)),
)
_INSERT_INDEX = insert(SEARCH_INDEX)


@dataclass(frozen=True)
class ResourceToStore:
    """A resource as a mapping produced it: its dict and its canonical JSON bytes."""

    resource_type: str
    id: str
    resource: JsonDict
    json: bytes
    # The patient compartment, when the resource does not name it by `subject` (Provenance).
    patient_id: str | None = None


@dataclass
class PendingIndex:
    """Search-index work of several `store_resources` calls, written by `write` in one
    statement each: the projection of a case and its Provenance then insert their versions in
    one flush and their index rows in one statement, instead of a round of each per call."""

    # By resource: a resource stored twice before `write` is indexed as last stored.
    stale: dict[tuple[str, str], ResourceToStore] = field(default_factory=dict)
    items: dict[tuple[str, str], ResourceToStore] = field(default_factory=dict)

    def add(self, stale: list[ResourceToStore], items: list[ResourceToStore]) -> None:
        """`items` to index, of which `stale` were stored before (their rows are replaced)."""
        self.stale |= {(item.resource_type, item.id): item for item in stale}
        self.items |= {(item.resource_type, item.id): item for item in items}

    async def write(self, session: AsyncSession) -> None:
        await _reindex(session, list(self.stale.values()), list(self.items.values()))
        self.stale, self.items = {}, {}


def _patient_of(resource_type: str, resource: JsonDict) -> str | None:
    """The patient compartment a resource belongs to (by its subject), if any."""
    if resource_type == "Patient":
        return str(resource["id"])
    reference = resource.get("subject", {}).get("reference")
    if isinstance(reference, str) and reference.startswith("Patient/"):
        return reference.removeprefix("Patient/")
    return None


def _versioned(resource: JsonDict, version_id: int, last_updated: str) -> bytes:
    meta = dict(resource.get("meta", {}))
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = last_updated
    # meta goes right after id, where FHIR's JSON puts it.
    ordered: JsonDict = {}
    for key, value in resource.items():
        if key == "meta":
            continue
        ordered[key] = value
        if key == "id":
            ordered["meta"] = meta
    ordered.setdefault("meta", meta)
    return fhir_json.dumps(ordered)


async def store_people(
    session: AsyncSession,
    resources: Iterable[ResourceToStore],
    index: PendingIndex | None = None,
) -> list[StoredResource]:
    """Store the Practitioners and the Organization a case names. Every case that names one
    projects it, so concurrent projections would race to store the same new version: those
    that changed are stored under a lock held until commit (a plain read finds the rest
    unchanged, which is nearly always)."""
    wanted = {(r.resource_type, r.id): r for r in resources}
    if not wanted:
        return []
    stored = {
        (row.resource_type, row.id): row.content_hash
        for row in await session.execute(
            select(
                StoredResource.resource_type, StoredResource.id, StoredResource.content_hash
            ).where(tuple_(StoredResource.resource_type, StoredResource.id).in_(list(wanted)))
        )
    }
    changed = [
        item
        for key, item in sorted(wanted.items())
        if stored.get(key) != hashlib.sha256(item.json).hexdigest()
    ]
    for item in changed:
        await hold_until_commit(session, "shared-resource", item.resource_type, item.id)
    return await store_resources(session, changed, case_id=None, index=index)


async def store_resources(
    session: AsyncSession,
    resources: Iterable[ResourceToStore],
    *,
    case_id: str | None,
    new: bool = False,
    index: PendingIndex | None = None,
) -> list[StoredResource]:
    """Store each resource whose content changed as its next version; returns those stored.

    `new`: the resources have ids just made (a Provenance), so none is stored yet. `index`:
    their search-index rows are left to it (written by its `write`), else written now."""
    wanted = list(resources)
    if not wanted:
        return []
    keys = [(r.resource_type, r.id) for r in wanted]
    current = (
        {}
        if new
        else {
            (row.resource_type, row.id): row
            for row in await session.scalars(
                _CURRENT,
                {"types": sorted({t for t, _ in keys}), "ids": sorted({i for _, i in keys})},
            )
        }
    )
    now = utcnow()
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    written: list[StoredResource] = []
    reindexed: list[ResourceToStore] = []  # stored before: their old index rows are replaced
    indexed: list[ResourceToStore] = []
    for item in wanted:
        digest = hashlib.sha256(item.json).hexdigest()
        row = current.get((item.resource_type, item.id))
        if row is not None and row.content_hash == digest and not row.deleted:
            continue
        version = 1 if row is None else row.version_id + 1
        content = _versioned(item.resource, version, stamp)
        if row is None:
            row = StoredResource(
                resource_type=item.resource_type,
                id=item.id,
                created_at=now,
            )
            session.add(row)
        row.version_id = version
        row.last_updated = now
        row.deleted = False
        row.content = content
        row.content_hash = digest
        row.case_id = None if item.resource_type in SHARED_TYPES else case_id
        row.patient_id = item.patient_id or _patient_of(item.resource_type, item.resource)
        session.add(
            ResourceVersion(
                resource_type=item.resource_type,
                id=item.id,
                version_id=version,
                last_updated=now,
                deleted=False,
                content=content,
            )
        )
        if version > 1:
            reindexed.append(item)
        indexed.append(item)
        written.append(row)
    if index is None:
        await _reindex(session, reindexed, indexed)
    else:
        index.add(reindexed, indexed)
    return written


async def _reindex(
    session: AsyncSession, stale: list[ResourceToStore], items: list[ResourceToStore]
) -> None:
    """Replace the index rows of `stale` and add those of `items`, in one statement each."""
    if stale:
        await session.execute(
            delete(SearchEntry).where(
                tuple_(SearchEntry.resource_type, SearchEntry.resource_id).in_(
                    [(item.resource_type, item.id) for item in stale]
                )
            )
        )
    rows = [
        {
            "resource_type": item.resource_type,
            "resource_id": item.id,
            "param": v.param,
            "system": v.system,
            "value": v.value,
            "low": v.low,
            "high": v.high,
        }
        for item in items
        for v in index_values(item.resource_type, item.resource)
    ]
    if rows:
        # Core, not ORM, bulk insert: one executemany, whichever columns a row leaves null.
        await session.execute(_INSERT_INDEX, rows)


async def delete_resources(session: AsyncSession, rows: Iterable[StoredResource]) -> None:
    """Mark resources deleted: a new, empty version; reads then answer 410 Gone."""
    now = utcnow()
    for row in rows:
        if row.deleted:
            continue
        row.version_id += 1
        row.deleted = True
        row.last_updated = now
        row.content_hash = ""
        session.add(
            ResourceVersion(
                resource_type=row.resource_type,
                id=row.id,
                version_id=row.version_id,
                last_updated=now,
                deleted=True,
                content=b"",
            )
        )
        await session.execute(
            delete(SearchEntry).where(
                SearchEntry.resource_type == row.resource_type, SearchEntry.resource_id == row.id
            )
        )
