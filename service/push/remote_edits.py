"""The EHR's edits, applied to the case.

When a push meets a copy the EHR changed (a 412, then a three-way merge), the elements only the
EHR changed are taken into what is written back; they are the EHR's edits, so the case takes
them too. Each such element of a CarePlan, Goal or ServiceRequest is mapped back to local
references and applied, with the EHR as the actor, through the same domain function as a `/fhir`
update from an external app (`fhir_engine.updates.apply_update`: the domain rules hold, the case
history names the EHR, the case is re-projected). What cannot be applied (an edit of a Condition
or CareTeam, a reference to an EHR resource the case does not have, an edit the case rules
refuse, a local edit made meanwhile) stays on the EHR and in the merge base, and the push
reports it. A person's resolution of a conflict (take-remote, or an edit) reaches the case the
same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import select

from service.auth.deps import Actor
from service.auth.models import Role
from service.db.session import Database
from service.errors import CaseBridgeError
from service.fhir_engine.updates import apply_update
from service.fhir_store import repository
from service.links.models import ResourceLink
from service.links.repository import resource_link
from service.push.job import PushJob
from service.push.writes import PushReport

JsonDict = dict[str, Any]
log = logging.getLogger(__name__)

# What an EHR's edit may change through `apply_update`. `/fhir` clients may also update
# Conditions, CareTeams and Patients; EHR edits of those stay on the EHR (kept remote) until
# the push decides how a merged edit of a need, team or patient should reach the case.
MERGED_FROM_EHR = frozenset({"CarePlan", "Goal", "ServiceRequest"})


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


async def references_to_local(
    database: Database,
    connection_id: str,
    patients: tuple[str, str],
    local_ids: list[str],
) -> dict[str, str]:
    """`Type/<remote id>` -> `Type/<local id>` for the linked resources among `local_ids`, and
    the EHR's patient (`patients` = (local id, remote id))."""
    local_patient, remote_patient = patients
    to_local = {f"Patient/{remote_patient}": f"Patient/{local_patient}"}
    async with database.transaction(write=False) as session:
        links = await session.scalars(
            select(ResourceLink).where(
                ResourceLink.connection_id == connection_id,
                ResourceLink.local_id.in_(local_ids),
                ResourceLink.remote_id.is_not(None),
            )
        )
        for link in links:
            to_local[f"{link.resource_type}/{link.remote_id}"] = (
                f"{link.resource_type}/{link.local_id}"
            )
    return to_local


async def apply_to_case(
    database: Database,
    connection_id: str,
    reference: str,
    version_id: int,
    elements: list[str],
    remote: JsonDict,
    to_local: dict[str, str],
) -> str | None:
    """Apply `elements` of `remote` (the EHR's form) to the local resource at `version_id`
    (If-Match: a newer local edit wins); why not, or None when applied."""
    resource_type, local_id = reference.split("/", 1)
    if resource_type not in MERGED_FROM_EHR:
        return f"a {resource_type} changes through the case, not from the EHR"
    # The EHR acts for itself: the case history names it, and the domain rules hold for it.
    actor = Actor(f"ehr:{connection_id}", Role.case_manager)
    try:
        async with database.unit_of_work() as session:
            stored = await repository.latest(session, resource_type, local_id)
            if stored is None or stored.deleted:
                return "the case no longer has it"
            local = orjson.loads(stored.content)
            for element in elements:
                if element in ("resourceType", "id", "meta"):
                    continue  # the local resource's own, whatever the EHR's form holds
                if element in remote:
                    local[element] = _localized(remote[element], to_local)
                else:
                    local.pop(element, None)
            await apply_update(session, actor, stored, local, version_id)
    except (CaseBridgeError, UnmappedReference) as exc:
        return str(exc)
    return None


async def apply_remote_edits(database: Database, job: PushJob, report: PushReport) -> None:
    """Apply `report.merged_from_remote` to the case; note in `report.remote_edits_kept_remote`
    what could not be."""
    if not report.merged_from_remote:
        return
    to_local = await references_to_local(
        database,
        job.connection_id,
        (job.local_patient_id, job.remote_patient_id),
        [r.id for r in job.resources],
    )
    versions = {r.reference: r.version_id for r in job.resources}
    for reference, elements in report.merged_from_remote.items():
        base = await _merged_base(database, job.connection_id, reference)
        reason = (
            "the push left no merged copy"
            if base is None or reference not in versions
            else await apply_to_case(
                database,
                job.connection_id,
                reference,
                versions[reference],
                elements,
                base,
                to_local,
            )
        )
        if reason is not None:
            report.remote_edits_kept_remote[reference] = f"{', '.join(elements)}: {reason}"
        # What stays only on the EHR is remembered: a later local change to it is a conflict.
        kept, taken = (elements, []) if reason is not None else ([], elements)
        await note_remote_edits(database, job.connection_id, reference, kept=kept, taken=taken)
    for reference, reason in report.remote_edits_kept_remote.items():
        log.warning(
            "an EHR edit of %s was not applied to case %s: %s", reference, job.case_id, reason
        )


async def note_remote_edits(
    database: Database,
    connection_id: str,
    reference: str,
    *,
    kept: Iterable[str] = (),
    taken: Iterable[str] = (),
) -> None:
    """Update which elements of the link's `pushed_content` are EHR edits the case lacks:
    `kept` join them; `taken` (applied to the case, or overwritten by a resolution) leave."""
    resource_type, local_id = reference.split("/", 1)
    async with database.transaction() as session:
        link = await resource_link(session, connection_id, resource_type, local_id)
        if link is None:
            return
        current = set(link.remote_edits or ())
        updated = (current - set(taken)) | set(kept)
        if updated != current:
            link.remote_edits = sorted(updated) or None
            await session.flush()


async def _merged_base(database: Database, connection_id: str, reference: str) -> JsonDict | None:
    """What the push wrote for the resource (the merge's result, in the EHR's form)."""
    resource_type, local_id = reference.split("/", 1)
    async with database.transaction(write=False) as session:
        link = await resource_link(session, connection_id, resource_type, local_id)
    if link is None or not link.pushed_content:
        return None
    content: JsonDict = orjson.loads(link.pushed_content)
    return content
