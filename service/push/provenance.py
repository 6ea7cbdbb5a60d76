"""The Provenance of one push, written once however often the push is replayed.

A worker that dies after the EHR applied a push but before its links were recorded makes the
next worker send the push again. The resources are safe (conditional creates answer 200,
If-Match updates merge to no change), so the Provenance must be too: its id is derived from
what the push writes (the case, the connection, and the local `(type, id, version)` of each
resource), and it is sent as `PUT Provenance/<id>`, which creates it under that id the first
time and overwrites the same resource on a replay. R4's Provenance has no `identifier` to make
a conditional create on, so an EHR that cannot create by update (`updateCreate`) gets a plain
POST, as before: there a replay may still add a second one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from mappings.to_fhir.provenance import CaseChange, provenance_resource
from service.db.base import utcnow
from service.ehr.client import FhirClient
from service.ehr.discovery import Capabilities
from service.push.job import PushJob

JsonDict = dict[str, Any]
# uuid5 namespace of push Provenance ids (a fixed, random UUID: never change it, or a replay
# across an upgrade would write a second Provenance).
PROVENANCE_NAMESPACE = uuid.UUID("6f1c2d4e-8a57-4b0e-9c3a-2f7d5e1b9a64")
# (resource type, local id, local version) of a resource a push writes.
LocalKey = tuple[str, str, int]


def provenance_id(job: PushJob, written: Iterable[LocalKey]) -> str:
    """The same for every replay of a push of the same local versions to the same EHR."""
    versions = sorted({f"{t}/{i}/_history/{v}" for t, i, v in written})
    return str(
        uuid.uuid5(PROVENANCE_NAMESPACE, "|".join([job.case_id, job.connection_id, *versions]))
    )


def can_send(capabilities: Capabilities) -> bool:
    return capabilities.supports_update_create("Provenance") or capabilities.supports(
        "Provenance", "create"
    )


def provenance_body(job: PushJob, targets: list[str], resource_id: str) -> JsonDict:
    """Provenance of this push: author = the case manager, transmitter = CaseBridge."""
    change = CaseChange(
        id=resource_id,
        recorded_at=utcnow(),
        targets=targets,
        activity="UPDATE",
        author=job.manager,
    )
    return provenance_resource(change)


def transaction_entry(
    client: FhirClient,
    job: PushJob,
    capabilities: Capabilities,
    targets: list[str],
    written: Iterable[LocalKey],
) -> JsonDict | None:
    """The Bundle entry of the Provenance (None when the EHR cannot take one)."""
    if not can_send(capabilities):
        return None
    resource = provenance_body(job, targets, provenance_id(job, written))
    if capabilities.supports_update_create("Provenance"):
        url = f"Provenance/{resource['id']}"
        return {
            "fullUrl": f"{client.base_url}/{url}",
            "resource": resource,
            "request": {"method": "PUT", "url": url},
        }
    del resource["id"]
    return {"resource": resource, "request": {"method": "POST", "url": "Provenance"}}


async def send(
    client: FhirClient,
    job: PushJob,
    capabilities: Capabilities,
    targets: list[str],
    written: Iterable[LocalKey],
) -> None:
    """Write the Provenance of an ordered push on its own."""
    if not can_send(capabilities):
        return
    resource = provenance_body(job, targets, provenance_id(job, written))
    if capabilities.supports_update_create("Provenance"):
        await client.update(resource)
        return
    del resource["id"]
    await client.create(resource)
