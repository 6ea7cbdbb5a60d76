"""What one push of a (case, connection) pair works from, read in one short transaction, and
the writes that record its results (ResourceLinks) in their own short transactions, so that a
worker killed mid-push leaves every confirmed write recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.to_fhir.plan_document import plan_document, plan_document_id
from service.cases.models import Case
from service.fhir_store.models import ResourceVersion, StoredResource
from service.links.models import LinkOrigin, PatientLink, ResourceLink
from service.links.repository import resource_link

JsonDict = dict[str, Any]
# Targets before the resources that reference them; the CarePlan references all of them.
# A DocumentReference is the rendered plan, pushed instead of a CarePlan an EHR cannot write.
PUSH_ORDER = ("Condition", "Goal", "ServiceRequest", "CareTeam", "CarePlan", "DocumentReference")


@dataclass
class LinkState:
    remote_id: str | None
    remote_version_id: str | None
    pushed_version_id: int | None
    pushed_content: JsonDict | None
    # Elements of pushed_content that are EHR edits the case lacks (ResourceLink.remote_edits).
    remote_edits: frozenset[str] = frozenset()


@dataclass
class LocalResource:
    resource_type: str
    id: str
    version_id: int
    content: JsonDict
    link: LinkState | None
    # The local content as of the last push (for rebasing onto what the EHR has).
    content_at_push: JsonDict | None

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"

    @property
    def up_to_date(self) -> bool:
        return (
            self.link is not None
            and self.link.remote_id is not None
            and self.link.pushed_version_id == self.version_id
        )


@dataclass
class PushJob:
    case_id: str
    connection_id: str
    local_patient_id: str
    remote_patient_id: str
    manager: str | None
    resources: list[LocalResource]
    care_plan_version: int | None
    # The CarePlan as a DocumentReference, for an EHR that cannot write CarePlan.
    plan_document: LocalResource | None = None
    # Resources this push created on the EHR that the case has since withdrawn (a deleted
    # local version): (resource type, local id, remote id).
    withdrawn: list[tuple[str, str, str]] = field(default_factory=list)


class NothingToPush(Exception):
    """The pair no longer exists as a pushable thing (case or patient link gone)."""


async def load_job(session: AsyncSession, case_id: str, connection_id: str) -> PushJob:
    case = await session.get(Case, case_id)
    if case is None:
        raise NothingToPush(f"case {case_id} no longer exists")
    remote_patient = await session.scalar(
        select(PatientLink.remote_id)
        .where(
            PatientLink.patient_id == case.patient_id, PatientLink.connection_id == connection_id
        )
        .order_by(PatientLink.created_at)
        .limit(1)
    )
    if remote_patient is None:
        raise NothingToPush(f"the patient of case {case_id} is not linked to the connection")
    stored = list(
        await session.scalars(
            select(StoredResource).where(
                StoredResource.case_id == case_id,
                StoredResource.deleted.is_(False),
                StoredResource.resource_type.in_(PUSH_ORDER),
            )
        )
    )
    care_plan_row = next((r for r in stored if r.resource_type == "CarePlan"), None)
    document_key = (
        ("DocumentReference", plan_document_id(care_plan_row.id)) if care_plan_row else None
    )
    keys = [(r.resource_type, r.id) for r in stored] + ([document_key] if document_key else [])
    links = (
        {
            (link.resource_type, link.local_id): link
            for link in await session.scalars(
                select(ResourceLink).where(
                    ResourceLink.connection_id == connection_id,
                    tuple_(ResourceLink.resource_type, ResourceLink.local_id).in_(keys),
                )
            )
        }
        if stored
        else {}
    )
    then_keys = [
        (t, i, link.pushed_version_id)
        for (t, i), link in links.items()
        if link.pushed_version_id is not None
    ]
    then = {
        (v.resource_type, v.id): orjson.loads(v.content)
        for v in (
            await session.scalars(
                select(ResourceVersion).where(
                    tuple_(
                        ResourceVersion.resource_type,
                        ResourceVersion.id,
                        ResourceVersion.version_id,
                    ).in_(then_keys)
                )
            )
            if then_keys
            else []
        )
        if v.content
    }
    resources = [
        LocalResource(
            resource_type=row.resource_type,
            id=row.id,
            version_id=row.version_id,
            content=orjson.loads(row.content),
            link=_state(links.get((row.resource_type, row.id))),
            content_at_push=then.get((row.resource_type, row.id)),
        )
        for row in stored
    ]
    resources.sort(key=lambda r: (PUSH_ORDER.index(r.resource_type), r.id))
    care_plan = next((r for r in resources if r.resource_type == "CarePlan"), None)
    document = None
    if care_plan is not None and document_key is not None:
        document = LocalResource(
            resource_type="DocumentReference",
            id=document_key[1],
            version_id=care_plan.version_id,
            content=plan_document(care_plan.content),
            link=_state(links.get(document_key)),
            content_at_push=None,
        )
    withdrawn = [
        (link.resource_type, link.local_id, link.remote_id)
        for link in await session.scalars(
            select(ResourceLink)
            .join(
                StoredResource,
                (StoredResource.resource_type == ResourceLink.resource_type)
                & (StoredResource.id == ResourceLink.local_id),
            )
            .where(
                ResourceLink.connection_id == connection_id,
                ResourceLink.origin == LinkOrigin.pushed,
                ResourceLink.remote_id.is_not(None),
                StoredResource.case_id == case_id,
                StoredResource.deleted.is_(True),
            )
        )
        if link.remote_id is not None
    ]
    return PushJob(
        case_id=case_id,
        connection_id=connection_id,
        local_patient_id=case.patient_id,
        remote_patient_id=remote_patient,
        manager=case.manager,
        resources=resources,
        care_plan_version=care_plan.version_id if care_plan else None,
        plan_document=document,
        withdrawn=withdrawn,
    )


def _state(link: ResourceLink | None) -> LinkState | None:
    if link is None:
        return None
    return LinkState(
        remote_id=link.remote_id,
        remote_version_id=link.remote_version_id,
        pushed_version_id=link.pushed_version_id,
        pushed_content=orjson.loads(link.pushed_content) if link.pushed_content else None,
        remote_edits=frozenset(link.remote_edits or ()),
    )


async def record_pushed(
    session: AsyncSession,
    connection_id: str,
    resource: LocalResource,
    state: LinkState,
) -> None:
    """Store the ResourceLink of a confirmed write (insert or update)."""
    link = await resource_link(session, connection_id, resource.resource_type, resource.id)
    if link is None:
        link = ResourceLink(
            connection_id=connection_id,
            resource_type=resource.resource_type,
            local_id=resource.id,
            origin=LinkOrigin.pushed,
        )
        session.add(link)
    link.remote_id = state.remote_id
    link.remote_version_id = state.remote_version_id
    link.pushed_version_id = state.pushed_version_id
    link.pushed_content = (
        orjson.dumps(state.pushed_content) if state.pushed_content is not None else None
    )
    # Which elements are EHR edits changes only through service.push.remote_edits.
    state.remote_edits = frozenset(link.remote_edits or ())
    resource.link = state
    await session.flush()
