"""Pulled changes reach open cases.

A pull stores what the EHR sent (`ehr_records`). A CarePlan, Goal or ServiceRequest that an open
case has on the EHR (a `ResourceLink`, with the JSON last pushed or imported) may have been
edited there since: the elements the EHR changed take the same inbound path as an EHR edit a
push merges (`push.remote_edits.apply_elements` -> `fhir_engine.updates.apply_update`, as
`ehr:<connection>`, in a unit of work, under the domain rules). Element by element (top-level,
as the push's merge compares them):

- changed on the EHR only: applied to the case;
- changed in the case too since the last push, to another value (the case disagrees), or
  refused by the case's rules: a review item (`service.review`), and the case keeps its value;
- not changed on the EHR, or the case has the EHR's value already: nothing, so pulling the same
  data again makes no new version.

Then the link's merge base is the EHR's version just read (`pushed_content`,
`remote_version_id`), and what the case did not take is noted as EHR edits it lacks
(`remote_edits`): the next push neither re-sends what came from the EHR nor overwrites what it
kept there (a local change over a kept EHR edit is a push conflict).

A referral the receiver has finished with closes the case's referral; a completion without an
outcome is taken with outcome `not_reported` and a review item asking a planner for it (the rule
both inbound paths share: `plans.receiver_status`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mappings import fhir_json
from service.auth.deps import Actor
from service.auth.models import Role
from service.cases.lifecycle import ENDED
from service.cases.models import Case
from service.db.session import Database
from service.errors import CaseBridgeError
from service.fhir_store import repository as fhir_store
from service.links.repository import linked_remote_ids, resource_link, resource_link_by_remote
from service.plans.receiver_status import OUTCOME_NOT_REPORTED, with_outcome_not_reported
from service.push.remote_edits import (
    MERGED_FROM_EHR,
    UnmappedReference,
    apply_elements,
    case_references_to_local,
)
from service.push.remote_form import remote_form, without_server_owned
from service.review.models import ReviewSource
from service.review.repository import open_review_item

JsonDict = dict[str, Any]
log = logging.getLogger(__name__)

# Server-owned, or generated from the case's own content (the narrative): never taken.
NOT_COMPARED = frozenset({"resourceType", "id", "meta", "text"})
DISAGREES = "the case changed it too since its last push; the case keeps its value"


@dataclass
class CaseUpdates:
    """What a pull brought to cases: local reference -> elements."""

    applied: dict[str, list[str]] = field(default_factory=dict)
    reviewed: dict[str, list[str]] = field(default_factory=dict)
    # (type, remote id) -> why its changes could not be looked at (the pull reports it).
    failed: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass
class _Plan:
    """One pulled resource set against its case: what to take, what the case disagrees on."""

    resource_type: str
    local_id: str
    remote_reference: str
    remote_version_id: str | None
    # The link's remote version when planned: a push that moved it meanwhile wins the link.
    link_version_id: str | None
    case_id: str
    patient_id: str
    version_id: int
    theirs: JsonDict  # the EHR's resource, server-owned elements left out
    for_case: JsonDict  # what the case is given: `theirs`, with the referral's outcome
    local: JsonDict  # the case's current resource
    to_local: dict[str, str]
    take: list[str]
    disagree: list[str]
    outcome_missing: bool = False

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.local_id}"


async def bring_pulled_changes_to_cases(
    database: Database, connection_id: str, resources: Iterable[Mapping[str, Any]]
) -> CaseUpdates:
    """Bring the EHR's changes of `resources` (as pulled) to the open cases that hold them."""
    updates = CaseUpdates()
    candidates = [r for r in resources if r.get("resourceType") in MERGED_FROM_EHR]
    if not candidates:
        return updates
    # One query for which of them any case holds: most pulled resources are the EHR's own.
    async with database.transaction(write=False) as session:
        linked = await linked_remote_ids(
            session, connection_id, [(str(r["resourceType"]), str(r["id"])) for r in candidates]
        )
    for pulled in candidates:
        if (str(pulled["resourceType"]), str(pulled["id"])) not in linked:
            continue
        try:
            async with database.transaction(write=False) as session:
                plan = await _plan(session, connection_id, pulled)
            if plan is None:
                continue
            applied, refused = await _apply(database, connection_id, plan)
            await _note(database, connection_id, plan, applied, refused)
        except Exception as exc:
            # One resource's trouble is reported with the pull; the others still go on.
            log.exception(
                "pulled %s/%s could not reach its case", pulled["resourceType"], pulled["id"]
            )
            key = (str(pulled["resourceType"]), str(pulled["id"]))
            updates.failed[key] = f"its changes could not reach the case: {exc!r}"
            continue
        if applied:
            updates.applied[plan.reference] = applied
        reviewed = [e for group, _ in refused for e in group] + plan.disagree
        if plan.outcome_missing and "status" in applied:
            reviewed.append("extension")
        if reviewed:
            updates.reviewed[plan.reference] = reviewed
    return updates


async def _plan(
    session: AsyncSession, connection_id: str, pulled: Mapping[str, Any]
) -> _Plan | None:
    resource_type, remote_id = str(pulled["resourceType"]), str(pulled["id"])
    link = await resource_link_by_remote(session, connection_id, resource_type, remote_id)
    if link is None or link.pushed_content is None:
        return None  # not the case's on this EHR, or not pushed yet
    version = (pulled.get("meta") or {}).get("versionId")
    if version is not None and version == link.remote_version_id:
        return None  # what the case pushed, or took, last
    stored = await fhir_store.latest(session, resource_type, link.local_id)
    if stored is None or stored.deleted or stored.case_id is None:
        return None
    case = await session.get(Case, stored.case_id)
    if case is None or case.status in ENDED:
        return None  # a closed case's records are final
    to_local = await case_references_to_local(session, connection_id, case.id)
    if to_local is None:
        return None
    targets = {local: remote for remote, local in to_local.items()}
    base: JsonDict = fhir_json.loads(link.pushed_content)
    theirs = without_server_owned(pulled)
    local: JsonDict = fhir_json.loads(stored.content)
    now = remote_form(local, targets).body
    then = await _content_at_push(session, resource_type, link.local_id, link.pushed_version_id)
    then_form = None if then is None else remote_form(then, targets).body
    take: list[str] = []
    disagree: list[str] = []
    for element in dict.fromkeys([*base, *theirs]):
        if element in NOT_COMPARED or base.get(element) == theirs.get(element):
            continue  # the EHR did not change it
        if now.get(element) == theirs.get(element):
            continue  # the case has the EHR's value already
        if then_form is None or then_form.get(element) != now.get(element):
            disagree.append(element)
        else:
            take.append(element)
    plan = _Plan(
        resource_type=resource_type,
        local_id=link.local_id,
        remote_reference=f"{resource_type}/{remote_id}",
        remote_version_id=version,
        link_version_id=link.remote_version_id,
        case_id=case.id,
        patient_id=case.patient_id,
        version_id=stored.version_id,
        theirs=theirs,
        for_case=theirs,
        local=local,
        to_local=to_local,
        take=take,
        disagree=disagree,
    )
    if resource_type == "ServiceRequest":
        await _closed_by_receiver(session, plan)
    return plan


async def _content_at_push(
    session: AsyncSession, resource_type: str, local_id: str, version_id: int | None
) -> JsonDict | None:
    if version_id is None:
        return None
    try:
        row = await fhir_store.version(session, resource_type, local_id, version_id)
    except CaseBridgeError:
        return None
    content: JsonDict = fhir_json.loads(row.content)
    return content


async def _closed_by_receiver(session: AsyncSession, plan: _Plan) -> None:
    """A referral the receiver completed carries an outcome into the case: the EHR's, else the
    case's own, else `not_reported` (`plan.outcome_missing`: a planner is asked for it)."""
    if "status" not in plan.take:
        return
    source = plan.theirs if "extension" in plan.take else plan.local
    for_case = await with_outcome_not_reported(
        session, plan.resource_type, plan.local_id, plan.theirs, source
    )
    if for_case is None:
        return
    plan.for_case = for_case
    if "extension" in plan.disagree:
        plan.disagree.remove("extension")
    if "extension" not in plan.take:
        plan.take.append("extension")
    plan.outcome_missing = True


def _groups(plan: _Plan) -> list[list[str]]:
    """The elements to try one by one when the whole change is refused; a completion and the
    outcome it carries go together."""
    together = {"status", "extension"} if plan.outcome_missing else set()
    groups = [[e] for e in plan.take if e not in together]
    if together:
        groups.insert(0, [e for e in plan.take if e in together])
    return groups


async def _apply(
    database: Database, connection_id: str, plan: _Plan
) -> tuple[list[str], list[tuple[list[str], str]]]:
    """Apply what the EHR changed, all at once (one new version), else group by group so a
    refused element does not hold back the rest. (elements applied, [(elements, why refused)])."""
    if not plan.take:
        return [], []
    actor = Actor(f"ehr:{connection_id}", Role.case_manager)
    version: int | None = plan.version_id

    async def attempt(elements: Sequence[str]) -> str | None:
        nonlocal version
        try:
            async with database.unit_of_work() as session:
                stored = await fhir_store.latest(session, plan.resource_type, plan.local_id)
                if stored is None or stored.deleted:
                    return "the case no longer has it"
                stored = await apply_elements(
                    session, actor, stored, version, elements, plan.for_case, plan.to_local
                )
                version = stored.version_id
        except (CaseBridgeError, UnmappedReference) as exc:
            return str(exc)
        return None

    reason = await attempt(plan.take)
    if reason is None:
        return list(plan.take), []
    groups = _groups(plan)
    if len(groups) == 1:
        return [], [(plan.take, reason)]
    applied: list[str] = []
    refused: list[tuple[list[str], str]] = []
    for group in groups:
        why = await attempt(group)
        if why is None:
            applied.extend(group)
        else:
            refused.append((group, why))
    return applied, refused


async def _note(
    database: Database,
    connection_id: str,
    plan: _Plan,
    applied: list[str],
    refused: list[tuple[list[str], str]],
) -> None:
    """Review items for what the case did not take, and the link moved on to the EHR's version
    (what the case lacks noted as kept EHR edits)."""
    async with database.transaction() as session:

        async def review(elements: list[str], reason: str, ehr: Mapping[str, Any]) -> None:
            await open_review_item(
                session,
                source=ReviewSource.pull,
                reason=reason,
                resource_type=plan.resource_type,
                elements=elements,
                ehr_value={e: ehr[e] for e in elements if e in ehr},
                case_value={e: plan.local[e] for e in elements if e in plan.local},
                case_id=plan.case_id,
                patient_id=plan.patient_id,
                connection_id=connection_id,
                local_id=plan.local_id,
                remote_reference=plan.remote_reference,
            )

        for elements, why in refused:
            await review(elements, f"the case's rules refused the EHR's change: {why}", plan.theirs)
        if plan.disagree:
            await review(plan.disagree, DISAGREES, plan.theirs)
        if plan.outcome_missing and "status" in applied:
            await review(["extension"], OUTCOME_NOT_REPORTED, plan.theirs)
        link = await resource_link(session, connection_id, plan.resource_type, plan.local_id)
        if link is None or link.remote_version_id != plan.link_version_id:
            return  # a push wrote the resource meanwhile: its state is newer
        kept = {e for elements, _ in refused for e in elements} | set(plan.disagree)
        edits = (set(link.remote_edits or ()) - set(applied)) | kept
        link.pushed_content = fhir_json.dumps(plan.theirs)
        link.remote_version_id = plan.remote_version_id
        link.remote_edits = sorted(edits) or None
    if refused or plan.disagree:
        log.info(
            "a pulled change of %s was left for review (case %s)", plan.reference, plan.case_id
        )
