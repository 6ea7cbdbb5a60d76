"""The EHR's edits, applied to the case.

When a push meets a copy the EHR changed (a 412, then a three-way merge), the elements only the
EHR changed are taken into what is written back; they are the EHR's edits, so the case takes
them too. Each such element of a CarePlan, Goal or ServiceRequest is mapped back to local
references and applied, with the EHR as the actor, through the same domain function as a `/fhir`
update from an external app (`fhir_engine.updates.apply_update`: the domain rules hold, the case
history names the EHR, the case is re-projected). An edit the rules refuse as a whole is
applied element by element, so what the case can take (a CarePlan's title) is not held back by
what it cannot (its `note`, which changes through the case's notes). What cannot be applied (an
edit of a Condition or CareTeam, a reference to an EHR resource the case does not have, an
element the case rules refuse, a local edit made meanwhile) stays on the EHR and in the merge
base, the push reports it, and it becomes a review item (service/review) with the EHR's value,
the case's value and the reason, for a person to decide. A person's resolution of a conflict
(take-remote, or an edit) reaches the case the same way. A referral the receiver closed is taken
as a pull takes it (`plans.receiver_status`): a completion without an outcome completes the
case's referral as `not_reported`, and a review item asks a planner for the outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mappings import fhir_json
from service.auth.deps import Actor
from service.auth.models import Role
from service.cases.models import Case
from service.db.session import Database
from service.db.unit_of_work import UnitOfWork
from service.errors import CaseBridgeError
from service.fhir_engine.updates import apply_update
from service.fhir_store import repository
from service.fhir_store.models import StoredResource
from service.links.models import PatientLink, ResourceLink
from service.links.repository import resource_link
from service.plans.receiver_status import OUTCOME_NOT_REPORTED, with_outcome_not_reported
from service.push.job import PushJob
from service.push.writes import PushReport
from service.review.models import ReviewSource
from service.review.repository import open_review_item

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
    async with database.transaction(write=False) as session:
        return await links_to_local(session, connection_id, patients, local_ids)


async def links_to_local(
    session: AsyncSession,
    connection_id: str,
    patients: tuple[str, str],
    local_ids: list[str],
) -> dict[str, str]:
    """`references_to_local`, in the caller's session."""
    local_patient, remote_patient = patients
    to_local = {f"Patient/{remote_patient}": f"Patient/{local_patient}"}
    links = await session.scalars(
        select(ResourceLink).where(
            ResourceLink.connection_id == connection_id,
            ResourceLink.local_id.in_(local_ids),
            ResourceLink.remote_id.is_not(None),
        )
    )
    for link in links:
        to_local[f"{link.resource_type}/{link.remote_id}"] = f"{link.resource_type}/{link.local_id}"
    return to_local


async def case_references_to_local(
    session: AsyncSession, connection_id: str, case_id: str
) -> dict[str, str] | None:
    """`references_to_local` for every resource of a case; None when the case or its patient's
    link to the connection is gone."""
    case = await session.get(Case, case_id)
    if case is None:
        return None
    remote_patient = await session.scalar(
        select(PatientLink.remote_id).where(
            PatientLink.connection_id == connection_id,
            PatientLink.patient_id == case.patient_id,
        )
    )
    if remote_patient is None:
        return None
    local_ids = await repository.ids_of_case(session, case_id)
    return await links_to_local(
        session, connection_id, (case.patient_id, remote_patient), local_ids
    )


async def apply_elements(
    session: UnitOfWork,
    actor: Actor,
    stored: StoredResource,
    version_id: int | None,
    elements: Iterable[str],
    remote: Mapping[str, Any],
    to_local: dict[str, str] | None,
) -> StoredResource:
    """Set `elements` of the stored resource to their values in `remote` (the sender's form;
    an element absent there is removed), with references mapped by `to_local` (None: they are
    local already), and apply it through the domain rules (`apply_update`) as `actor`.
    Raises what the rules raise, or UnmappedReference."""
    local = fhir_json.loads(stored.content)
    for element in elements:
        if element in ("resourceType", "id", "meta"):
            continue  # the local resource's own, whatever the sender's form holds
        if element in remote:
            value = remote[element]
            local[element] = value if to_local is None else _localized(value, to_local)
        else:
            local.pop(element, None)
    return await apply_update(session, actor, stored, local, version_id)


async def _apply_at(
    database: Database,
    connection_id: str,
    reference: str,
    version_id: int,
    elements: list[str],
    remote: JsonDict,
    to_local: dict[str, str],
) -> tuple[str | None, int | None]:
    """Apply `elements` of `remote` (the EHR's form) to the local resource at `version_id`
    (If-Match: a newer local edit wins): why not (None when applied), and the version made."""
    resource_type, local_id = reference.split("/", 1)
    if resource_type not in MERGED_FROM_EHR:
        return f"a {resource_type} changes through the case, not from the EHR", None
    # The EHR acts for itself: the case history names it, and the domain rules hold for it.
    actor = Actor(f"ehr:{connection_id}", Role.case_manager)
    try:
        async with database.unit_of_work() as session:
            stored = await repository.latest(session, resource_type, local_id)
            if stored is None or stored.deleted:
                return "the case no longer has it", None
            applied = await apply_elements(
                session, actor, stored, version_id, elements, remote, to_local
            )
            made = applied.version_id
    except (CaseBridgeError, UnmappedReference) as exc:
        return str(exc), None
    return None, made


async def apply_what_the_case_takes(
    database: Database,
    connection_id: str,
    reference: str,
    version_id: int,
    elements: list[str],
    remote: JsonDict,
    to_local: dict[str, str],
    together: Collection[str] = (),
) -> dict[str, str]:
    """Apply `elements` of `remote` to the case, each one the rules refuse left out: the edit
    as a whole first, and if the rules refuse it, element by element (one refused element, such
    as a CarePlan `note`, must not hold back the others), those in `together` as one (a
    referral's completion and the outcome it carries). Returns element -> why refused."""
    reason, version = await _apply_at(
        database, connection_id, reference, version_id, elements, remote, to_local
    )
    resource_type = reference.split("/", 1)[0]
    if reason is None:
        return {}
    if len(elements) == 1 or resource_type not in MERGED_FROM_EHR:
        return dict.fromkeys(elements, reason)
    refused: dict[str, str] = {}
    tried = [e for e in elements if e not in ("resourceType", "id", "meta")]
    group = [e for e in tried if e in together]
    groups = ([group] if group else []) + [[e] for e in tried if e not in together]
    for elements_of_group in groups:
        reason, version = await _apply_at(
            database, connection_id, reference, version_id, elements_of_group, remote, to_local
        )
        if reason is None and version is not None:
            version_id = version  # the next group applies on top of this one
        elif reason is not None:
            refused.update(dict.fromkeys(elements_of_group, reason))
    return refused


async def apply_remote_edits(database: Database, job: PushJob, report: PushReport) -> None:
    """Apply `report.merged_from_remote` to the case; what it cannot take stays on the EHR
    (`note_remote_edits`), is noted in `report.remote_edits_kept_remote`, and becomes a review
    item a person decides on."""
    if not report.merged_from_remote:
        return
    to_local = await references_to_local(
        database,
        job.connection_id,
        (job.local_patient_id, job.remote_patient_id),
        [r.id for r in job.resources],
    )
    versions = {r.reference: r.version_id for r in job.resources}
    for reference, merged_elements in report.merged_from_remote.items():
        elements = list(merged_elements)
        merged = await _merged_base(database, job.connection_id, reference)
        base, remote_id = merged if merged is not None else (None, None)
        for_case = base
        if base is not None and "status" in elements:
            for_case = await _closed_by_receiver(database, reference, base)
        outcome_missing = for_case is not base
        if outcome_missing and "extension" not in elements:
            elements.append("extension")
        refused = (
            dict.fromkeys(elements, "the push left no merged copy")
            if base is None or for_case is None or reference not in versions
            else await apply_what_the_case_takes(
                database,
                job.connection_id,
                reference,
                versions[reference],
                elements,
                for_case,
                to_local,
                together=("status", "extension") if outcome_missing else (),
            )
        )
        if outcome_missing and "status" not in refused:
            # The case completed the referral as `not_reported`: a planner records the outcome.
            await open_refused_edit_items(
                database,
                ReviewSource.merge,
                {"extension": OUTCOME_NOT_REPORTED},
                base or {},
                case_id=job.case_id,
                patient_id=job.local_patient_id,
                connection_id=job.connection_id,
                reference=reference,
                remote_id=remote_id,
            )
        if refused:
            report.remote_edits_kept_remote[reference] = "; ".join(
                f"{element}: {reason}" for element, reason in sorted(refused.items())
            )
            await open_refused_edit_items(
                database,
                ReviewSource.merge,
                refused,
                base or {},
                case_id=job.case_id,
                patient_id=job.local_patient_id,
                connection_id=job.connection_id,
                reference=reference,
                remote_id=remote_id,
            )
        # What stays only on the EHR is remembered: a later local change to it is a conflict.
        taken = [e for e in elements if e not in refused]
        await note_remote_edits(
            database, job.connection_id, reference, kept=sorted(refused), taken=taken
        )


async def _closed_by_receiver(database: Database, reference: str, merged: JsonDict) -> JsonDict:
    """`merged` as the case takes it: with outcome `not_reported` when the receiver completed a
    referral without one (`plans.receiver_status`), else `merged` itself."""
    resource_type, local_id = reference.split("/", 1)
    async with database.transaction(write=False) as session:
        for_case = await with_outcome_not_reported(session, resource_type, local_id, merged, merged)
    return merged if for_case is None else for_case


async def open_refused_edit_items(
    database: Database,
    source: ReviewSource,
    refused: Mapping[str, str],
    ehr_form: Mapping[str, Any],
    *,
    case_id: str,
    patient_id: str | None,
    connection_id: str,
    reference: str,
    remote_id: str | None,
) -> None:
    """One review item per reason the case refused elements of an EHR edit (or resolution),
    with the EHR's values of them and the case's current ones."""
    resource_type, local_id = reference.split("/", 1)
    by_reason: dict[str, list[str]] = {}
    for element, reason in sorted(refused.items()):
        by_reason.setdefault(reason, []).append(element)
    async with database.transaction() as session:
        stored = await repository.latest(session, resource_type, local_id)
        case_form: JsonDict = (
            fhir_json.loads(stored.content) if stored is not None and not stored.deleted else {}
        )
        for reason, elements in by_reason.items():
            item = await open_review_item(
                session,
                source=source,
                reason=reason,
                resource_type=resource_type,
                elements=elements,
                ehr_value={e: ehr_form[e] for e in elements if e in ehr_form},
                case_value={e: case_form[e] for e in elements if e in case_form},
                case_id=case_id,
                patient_id=patient_id,
                connection_id=connection_id,
                local_id=local_id,
                remote_reference=None if remote_id is None else f"{resource_type}/{remote_id}",
            )
            log.info(
                "an EHR edit of %s (%s) awaits review as item %s",
                reference,
                ", ".join(elements),
                item.id,
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


async def _merged_base(
    database: Database, connection_id: str, reference: str
) -> tuple[JsonDict, str | None] | None:
    """What the push wrote for the resource (the merge's result, in the EHR's form), and the
    EHR's id of it."""
    resource_type, local_id = reference.split("/", 1)
    async with database.transaction(write=False) as session:
        link = await resource_link(session, connection_id, resource_type, local_id)
    if link is None or not link.pushed_content:
        return None
    content: JsonDict = fhir_json.loads(link.pushed_content)
    return content, link.remote_id
