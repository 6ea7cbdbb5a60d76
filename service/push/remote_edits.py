"""The EHR's edits, applied to the case.

When a push meets a copy the EHR changed (a 412, then a three-way merge), the elements only the
EHR changed are taken into what is written back; they are the EHR's edits, so the case takes
them too. Each such element of a CarePlan, Goal or ServiceRequest is mapped back to local
references and applied through the same path as a `/fhir` update from an external app (the
domain rules hold, the case history names the EHR, the case is re-projected). What cannot be
applied (an edit of a Condition or CareTeam, a reference to an EHR resource the case does not
have, an edit the case rules refuse) stays on the EHR and in the merge base, so later pushes
never undo it; the push reports it.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from sqlalchemy import select

from service.api.concurrency import etag
from service.db.session import Database
from service.errors import CaseBridgeError
from service.fhir_api.updates import UPDATABLE, update_resource
from service.fhir_auth.principal import FhirPrincipal
from service.fhir_auth.scopes import parse_scopes
from service.fhir_store.models import StoredResource
from service.links.models import ResourceLink
from service.push.job import PushJob
from service.push.writes import PushReport

log = logging.getLogger(__name__)


class UnmappedReference(ValueError):
    pass


def _localized(value: Any, to_local: dict[str, str]) -> Any:
    """`value` with the EHR's references replaced by local ones; raises on one we lack."""
    if isinstance(value, list):
        return [_localized(item, to_local) for item in value]
    if not isinstance(value, dict):
        return value
    copied = {key: _localized(item, to_local) for key, item in value.items()}
    reference = value.get("reference")
    if isinstance(reference, str) and not reference.startswith(("#", "urn:")):
        if reference not in to_local:
            raise UnmappedReference(f"{reference} on the EHR has no copy in the case")
        copied["reference"] = to_local[reference]
    return copied


async def _to_local(database: Database, job: PushJob) -> dict[str, str]:
    to_local = {f"Patient/{job.remote_patient_id}": f"Patient/{job.local_patient_id}"}
    async with database.transaction(write=False) as session:
        links = await session.scalars(
            select(ResourceLink).where(
                ResourceLink.connection_id == job.connection_id,
                ResourceLink.local_id.in_([r.id for r in job.resources]),
                ResourceLink.remote_id.is_not(None),
            )
        )
        for link in links:
            to_local[f"{link.resource_type}/{link.remote_id}"] = (
                f"{link.resource_type}/{link.local_id}"
            )
    return to_local


async def apply_remote_edits(database: Database, job: PushJob, report: PushReport) -> None:
    """Apply `report.merged_from_remote` to the case; note in `report.remote_edits_kept_remote`
    what could not be."""
    if not report.merged_from_remote:
        return
    to_local = await _to_local(database, job)
    versions = {r.reference: r.version_id for r in job.resources}
    principal = FhirPrincipal(
        f"ehr:{job.connection_id}", parse_scopes("system/*.cruds", strict=True)
    )
    for reference, elements in report.merged_from_remote.items():
        resource_type, local_id = reference.split("/", 1)
        if resource_type not in UPDATABLE or reference not in versions:
            report.remote_edits_kept_remote[reference] = (
                f"the EHR's edits of {', '.join(elements)} stay on the EHR: a {resource_type} "
                "changes through the case"
            )
            continue
        try:
            async with database.transaction() as session:
                stored = await session.get(StoredResource, (resource_type, local_id))
                link = await session.scalar(
                    select(ResourceLink).where(
                        ResourceLink.connection_id == job.connection_id,
                        ResourceLink.resource_type == resource_type,
                        ResourceLink.local_id == local_id,
                    )
                )
                if stored is None or stored.deleted or link is None or not link.pushed_content:
                    continue
                merged = orjson.loads(link.pushed_content)
                local = orjson.loads(stored.content)
                for element in elements:
                    if element in merged:
                        local[element] = _localized(merged[element], to_local)
                    else:
                        local.pop(element, None)
                # If-Match: the version the merge was made against. A user's edit since then
                # wins (412): the EHR's value stays in the merge base for the next push.
                await update_resource(
                    session,
                    principal,
                    resource_type,
                    local_id,
                    orjson.dumps(local),
                    etag(versions[reference]),
                )
        except (CaseBridgeError, UnmappedReference) as exc:
            report.remote_edits_kept_remote[reference] = f"{', '.join(elements)}: {exc}"
    for reference, reason in report.remote_edits_kept_remote.items():
        log.warning(
            "an EHR edit of %s was not applied to case %s: %s", reference, job.case_id, reason
        )
