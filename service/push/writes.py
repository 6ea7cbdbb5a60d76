"""The writes of one push, by the strategy the EHR's capabilities allow.

- **Transaction**: one transaction Bundle. New resources are conditional creates
  (`ifNoneExist` on the CaseBridge identifier) with `urn:uuid` fullUrls that the other entries
  reference; known ones are updates of `Type/<remote id>` with `ifMatch`. If the EHR answers
  412/409 (some copy changed there), the push goes on in ordered mode, which finds which.
- **Who acts** (Organization, Practitioner) goes first, created with `If-None-Exist` on the
  NPI where known (else the CaseBridge identifier) or matched to the EHR's own record, which a
  push never overwrites; an EHR that cannot (or will not let this client) write them gets
  references that keep only their display.
- **Ordered**: Condition, Goal, ServiceRequest, CareTeam, then CarePlan, one request each,
  references resolved to the remote ids as they are assigned; a resource that referenced one
  not yet created is sent again once it exists. Creates are conditional (`If-None-Exist`);
  where the EHR lacks conditional create, the ResourceLink ledger plus a search by identifier
  stops a replay from duplicating. Updates carry `If-Match`; a 412/409 leads to a fetch and a
  three-way merge (`service.push.merge`).

Every confirmed ordered write is recorded (ResourceLink) in its own transaction at once. The
links of a transaction Bundle are recorded with the push's completion, in one DB transaction
(`PushReport.links`): the EHR applied the Bundle all or nothing, and a replay of a Bundle whose
links were lost finds every resource already there as sent (conditional creates answer 200, an
If-Match that fails merges to no change), so it writes nothing twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete

from mappings import fhir_json
from mappings.bundles import full_url, identifier_query, own_identifier, with_references
from mappings.to_fhir.people import PEOPLE_TYPES, match_identifier
from mappings.to_fhir.plan_document import PLAN_DOCUMENT_SYSTEM
from service.db.session import Database
from service.ehr.client import FhirClient, WriteResult, as_etag
from service.ehr.discovery import Capabilities
from service.ehr.errors import (
    EhrForbidden,
    EhrPreconditionFailed,
    EhrProtocolError,
    EhrRejected,
)
from service.links.models import ResourceLink
from service.push import provenance
from service.push.job import LinkState, LocalResource, PushJob, record_links
from service.push.merge import rebase_local_changes, three_way_merge
from service.push.remote_form import RemoteForm, remote_form, without_server_owned

JsonDict = dict[str, Any]
ID_IN_LOCATION = re.compile(r"/([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([^/?#]+))?")
MAX_MERGE_ROUNDS = 3
# "Method Not Allowed": the EHR cannot write this type at all.
NOT_ALLOWED = frozenset({405})


@dataclass
class ConflictFound:
    resource: LocalResource
    remote_id: str
    remote_version_id: str | None
    elements: list[str]
    base: JsonDict
    local: JsonDict
    remote: JsonDict


@dataclass
class PushReport:
    written: list[str] = field(default_factory=list)  # Type/remote id/_history/version
    # (type, local id, local version) of each confirmed write: what names its Provenance.
    written_local: list[provenance.LocalKey] = field(default_factory=list)
    unsupported: dict[str, str] = field(default_factory=dict)  # type -> reason
    conflicts: list[ConflictFound] = field(default_factory=list)
    merged_from_remote: dict[str, list[str]] = field(default_factory=dict)
    # Local reference -> why the EHR's edits of it were not applied to the case.
    remote_edits_kept_remote: dict[str, str] = field(default_factory=dict)
    strategy: str = "ordered"
    plan_sent_as_document: bool = False
    # Links of confirmed writes still to record (a transaction's), with the push's completion.
    links: list[tuple[LocalResource, LinkState]] = field(default_factory=list)


@dataclass
class PushContext:
    job: PushJob
    client: FhirClient
    capabilities: Capabilities
    database: Database
    document_fallback: bool = False
    report: PushReport = field(default_factory=PushReport)
    # Local ids of resources with an open conflict: they wait for its resolution.
    parked: frozenset[str] = frozenset()

    @property
    def patient_targets(self) -> dict[str, str]:
        return {f"Patient/{self.job.local_patient_id}": f"Patient/{self.job.remote_patient_id}"}


def unwritable_reason(capabilities: Capabilities, resource: LocalResource) -> str | None:
    interaction = "update" if resource.link and resource.link.remote_id else "create"
    if capabilities.supports(resource.resource_type, interaction):
        return None
    return (
        f"not supported by this EHR: its CapabilityStatement lists no '{interaction}' "
        f"interaction for {resource.resource_type}"
    )


def linked_targets(ctx: PushContext) -> dict[str, str]:
    targets = ctx.patient_targets
    for resource in ctx.job.resources:
        if resource.link and resource.link.remote_id:
            targets[resource.reference] = f"{resource.resource_type}/{resource.link.remote_id}"
    return targets


def outgoing(resource: LocalResource, targets: dict[str, str]) -> RemoteForm:
    """The body to send: the local changes since the last push, rebased onto what was pushed
    (so EHR edits merged in earlier are kept), references mapped through `targets`."""
    now = remote_form(resource.content, targets)
    link = resource.link
    if link is None or link.pushed_content is None or resource.content_at_push is None:
        return now
    then = remote_form(resource.content_at_push, targets).body
    return RemoteForm(rebase_local_changes(link.pushed_content, then, now.body), now.unresolved)


def rebase_conflict(resource: LocalResource, targets: dict[str, str]) -> ConflictFound | None:
    """A local change to an element whose pushed value is an EHR edit the case never took.

    Rebasing onto `pushed_content` would silently overwrite that edit, so it is a conflict,
    like one a 412 finds. Only elements recorded as EHR edits (`LinkState.remote_edits`, noted
    when a merged edit could not be applied to the case) count: elsewhere `pushed_content` and
    the local content at the last push may differ without anyone having edited anything. A case
    opened from pulled data starts with `pushed_content` = the EHR's own JSON and the local
    version 1 = its mapping, which is lossy (no case-status extension on the EHR, its plan
    status kept as the EHR has it, our identifiers and categories added, ...): a local change
    to such an element is the case's to make, and the rebase sends it."""
    link = resource.link
    if (
        link is None
        or link.remote_id is None
        or link.pushed_content is None
        or resource.content_at_push is None
        or not link.remote_edits
    ):
        return None
    then = remote_form(resource.content_at_push, targets).body
    now = remote_form(resource.content, targets).body
    merge = three_way_merge(then, now, link.pushed_content)
    elements = [e for e in merge.conflicts if e in link.remote_edits]
    if not elements:
        return None
    # `local` is the rebased body (the local values on the conflicting elements, the EHR's
    # other edits kept), as for a 412 conflict: keep-local writes it without undoing those.
    return ConflictFound(
        resource,
        link.remote_id,
        link.remote_version_id,
        elements,
        then,
        merge.merged,
        dict(link.pushed_content),
    )


def to_push(ctx: PushContext) -> list[LocalResource]:
    """The resources that changed since their last push and that the EHR can write; with the
    document fallback on, the rendered plan as a DocumentReference where CarePlan is not; a
    local change over an EHR edit the case lacks is parked as a conflict instead."""
    wanted = []
    targets = linked_targets(ctx)
    for resource in ctx.job.resources:
        reason = unwritable_reason(ctx.capabilities, resource)
        if reason is not None:
            ctx.report.unsupported[resource.resource_type] = reason
            continue
        if resource.up_to_date or _matched_person(resource):
            continue
        conflict = None if resource.id in ctx.parked else rebase_conflict(resource, targets)
        if conflict is not None:
            ctx.report.conflicts.append(conflict)  # parked; not written
            continue
        if _already_there(ctx, resource):
            continue
        wanted.append(resource)
    document = ctx.job.plan_document
    if (
        "CarePlan" in ctx.report.unsupported
        and ctx.document_fallback
        and document is not None
        and unwritable_reason(ctx.capabilities, document) is None
    ):
        ctx.report.unsupported["CarePlan"] += (
            "; the rendered plan is sent as a DocumentReference instead"
        )
        ctx.report.plan_sent_as_document = True
        if not document.up_to_date:
            wanted.append(document)
    return wanted


def _matched_person(resource: LocalResource) -> bool:
    """A Practitioner or Organization the EHR has (created or matched by identifier): it is
    the EHR's record of that person now, never overwritten by a push."""
    return (
        resource.resource_type in PEOPLE_TYPES
        and resource.link is not None
        and resource.link.remote_id is not None
    )


def _already_there(ctx: PushContext, resource: LocalResource) -> bool:
    """A new local version whose outgoing form is what the EHR already has (the EHR's own
    edits, applied to the case after a merge) is recorded as pushed, and not written again."""
    link = resource.link
    if link is None or link.remote_id is None or link.pushed_content is None:
        return False
    form = outgoing(resource, linked_targets(ctx))
    if without_server_owned(form.body) != without_server_owned(link.pushed_content):
        return False
    state = LinkState(link.remote_id, link.remote_version_id, resource.version_id, form.body)
    ctx.report.links.append((resource, state))
    return True


def identifier_of(resource: LocalResource) -> tuple[str, str]:
    """The (system, value) a conditional create or a search by identifier uses."""
    if resource.resource_type in PEOPLE_TYPES:
        return match_identifier(resource.content)
    if resource.resource_type == "DocumentReference":
        return PLAN_DOCUMENT_SYSTEM, str(resource.content["identifier"][0]["value"])
    return own_identifier(resource.content)


# ---- ordered -----------------------------------------------------------------------------------


async def push_ordered(ctx: PushContext, resources: list[LocalResource]) -> None:
    first_bodies: dict[str, RemoteForm] = {}
    for resource in resources:
        form = outgoing(resource, linked_targets(ctx))
        first_bodies[resource.reference] = form
        await _write_one(ctx, resource, form.body)
    # Second pass: resources that referenced ones created after them.
    for resource in resources:
        form = first_bodies[resource.reference]
        if not form.unresolved or resource.link is None or resource.link.remote_id is None:
            continue
        targets = linked_targets(ctx)
        if not form.unresolved & targets.keys():
            continue
        full = remote_form(resource.content, targets).body
        without = remote_form(resource.content, {}).body
        sent = resource.link.pushed_content or form.body
        await _write_one(ctx, resource, rebase_local_changes(sent, without, full))


async def _write_one(ctx: PushContext, resource: LocalResource, body: JsonDict) -> None:
    try:
        link = resource.link
        if link is None or link.remote_id is None:
            existing = await _find_existing(ctx, resource, body)
            if existing is None:
                return
            link = existing
        await _update(ctx, resource, body, link)
    except EhrRejected as exc:
        person = resource.resource_type in PEOPLE_TYPES
        if exc.remote_status not in NOT_ALLOWED and not (person and exc.remote_status == 403):
            raise
        # The CapabilityStatement promised more than the EHR does, or the client may not write
        # who acts (no Practitioner/Organization scope): report; references to it keep only
        # their display.
        ctx.report.unsupported[resource.resource_type] = f"not supported by this EHR: {exc}"


async def _find_existing(
    ctx: PushContext, resource: LocalResource, body: JsonDict
) -> LinkState | None:
    """Create the resource, unless the EHR has it already (an earlier, unrecorded push):
    then return its link, for an update. Returns None when the create did the write."""
    system, value = identifier_of(resource)
    client, caps = ctx.client, ctx.capabilities
    if caps.supports_conditional_create(resource.resource_type):
        result = await client.create(body, if_none_exist=identifier_query(system, value))
        existing = without_server_owned(result.resource or {})
        # Server-owned elements aside: `meta` is both ours (profile) and the server's.
        if result.status == 201 or existing == without_server_owned(body):
            # Created, or already there exactly as we would write it (a replay): no update.
            await _record(ctx, resource, result, body)
            return None
        remote_id, version = _identity(resource.resource_type, result)
        if resource.resource_type in PEOPLE_TYPES:  # the EHR's own record of the person
            await _record_state(
                ctx, resource, LinkState(remote_id, version, resource.version_id, existing)
            )
            return None
        return LinkState(remote_id, version, None, existing)
    if caps.supports_search_param(resource.resource_type, "identifier"):
        async for found in client.search(
            resource.resource_type, [("identifier", f"{system}|{value}")]
        ):
            version = (found.get("meta") or {}).get("versionId")
            state = LinkState(str(found["id"]), version, None, without_server_owned(found))
            if resource.resource_type in PEOPLE_TYPES:
                state.pushed_version_id = resource.version_id
                await _record_state(ctx, resource, state)
                return None
            return state
    result = await client.create(body)
    await _record(ctx, resource, result, body)
    return None


async def _update(
    ctx: PushContext, resource: LocalResource, body: JsonDict, link: LinkState
) -> None:
    assert link.remote_id is not None
    base = link.pushed_content or {}
    version = link.remote_version_id
    for _ in range(MAX_MERGE_ROUNDS):
        try:
            result = await ctx.client.update(
                {"resourceType": resource.resource_type, "id": link.remote_id, **body},
                if_match=version,
            )
        except EhrRejected as exc:
            if not isinstance(exc, EhrPreconditionFailed) and exc.remote_status != 409:
                raise
        else:
            await _record(ctx, resource, result, body, remote_id=link.remote_id)
            return
        remote = await ctx.client.read(resource.resource_type, link.remote_id)
        version = (remote.get("meta") or {}).get("versionId")
        theirs = without_server_owned(remote)
        merge = three_way_merge(base, body, theirs)
        if merge.conflicts:
            ctx.report.conflicts.append(
                ConflictFound(
                    resource, link.remote_id, version, merge.conflicts, base, body, theirs
                )
            )
            return
        if merge.taken_from_theirs:
            ctx.report.merged_from_remote[resource.reference] = merge.taken_from_theirs
        if without_server_owned(merge.merged) == without_server_owned(theirs):
            # The EHR has exactly what we would write (a replay of a write whose link was
            # lost, or the same edit made there): record it, write nothing.
            state = LinkState(link.remote_id, version, resource.version_id, theirs)
            await _record_state(ctx, resource, state)
            return
        body, base = merge.merged, theirs
    raise EhrPreconditionFailed(
        f"{resource.resource_type}/{link.remote_id} kept changing on the EHR while merging",
        remote_status=412,
    )


def location_identity(location: str | None, resource_type: str) -> tuple[str | None, str | None]:
    """(id, version) from a Location: the last `Type/id` of the resource's type (a base such
    as …/api/FHIR/R4/ holds others)."""
    matches = [m for m in ID_IN_LOCATION.finditer(location or "") if m[1] == resource_type]
    return (matches[-1][2], matches[-1][3]) if matches else (None, None)


def _identity(resource_type: str, result: WriteResult) -> tuple[str, str | None]:
    remote_id = (result.resource or {}).get("id")
    version = result.version_id
    located_id, located_version = location_identity(result.location, resource_type)
    remote_id = remote_id or located_id
    version = version or located_version
    if not isinstance(remote_id, str):
        raise EhrProtocolError(f"the EHR did not say which {resource_type} it wrote")
    return remote_id, version


async def _record(
    ctx: PushContext,
    resource: LocalResource,
    result: WriteResult,
    body: JsonDict,
    *,
    remote_id: str | None = None,
) -> None:
    found_id, version = _identity(resource.resource_type, result)
    await _record_state(
        ctx, resource, LinkState(remote_id or found_id, version, resource.version_id, body)
    )


async def _record_state(ctx: PushContext, resource: LocalResource, state: LinkState) -> None:
    async with ctx.database.transaction() as session:
        await record_links(session, ctx.job.connection_id, [(resource, state)])
    ctx.report.written.append(
        f"{resource.resource_type}/{state.remote_id}/_history/{state.remote_version_id}"
    )
    ctx.report.written_local.append((resource.resource_type, resource.id, resource.version_id))


# ---- transaction ------------------------------------------------------------------------------


class TransactionConflict(Exception):
    """The EHR refused the transaction with 412/409 (some copy changed there), or with 403
    (its scopes allow writing each type but not a whole-system transaction, as sekmet does
    without `system/*` scopes), or with 405 (some type in it cannot be written): push in
    ordered mode instead, which finds out resource by resource."""


async def push_transaction(ctx: PushContext, resources: list[LocalResource]) -> None:
    targets = linked_targets(ctx)
    for resource in resources:
        if resource.link is None or resource.link.remote_id is None:
            targets[resource.reference] = full_url(resource.reference)
    entries: list[JsonDict] = []
    bodies: list[JsonDict] = []
    for resource in resources:
        body = outgoing(resource, targets).body
        bodies.append(body)
        link = resource.link
        if link is not None and link.remote_id is not None:
            request: JsonDict = {
                "method": "PUT",
                "url": f"{resource.resource_type}/{link.remote_id}",
            }
            if link.remote_version_id:
                request["ifMatch"] = as_etag(link.remote_version_id)
            entries.append(
                {
                    "fullUrl": f"{ctx.client.base_url}/{resource.resource_type}/{link.remote_id}",
                    "resource": {
                        "resourceType": resource.resource_type,
                        "id": link.remote_id,
                        **body,
                    },
                    "request": request,
                }
            )
        else:
            system, value = identifier_of(resource)
            entries.append(
                {
                    "fullUrl": targets[resource.reference],
                    "resource": body,
                    "request": {
                        "method": "POST",
                        "url": resource.resource_type,
                        "ifNoneExist": identifier_query(system, value),
                    },
                }
            )
    # Its id names the local versions sent: a replay of this Bundle overwrites, not adds, it.
    provenance_entry = provenance.transaction_entry(
        ctx.client,
        ctx.job,
        ctx.capabilities,
        [str(entry["fullUrl"]) for entry in entries],
        [(r.resource_type, r.id, r.version_id) for r in resources],
    )
    if provenance_entry is not None:
        entries.append(provenance_entry)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    try:
        response = await ctx.client.send(
            "POST",
            ctx.client.base_url,
            content=fhir_json.dumps(bundle),
            headers={"Content-Type": "application/fhir+json"},
        )
    except EhrRejected as exc:
        if (
            isinstance(exc, EhrPreconditionFailed | EhrForbidden)
            or exc.remote_status == 409
            or exc.remote_status in NOT_ALLOWED
        ):
            raise TransactionConflict(str(exc)) from exc
        raise
    answer = fhir_json.loads(response.content)
    answered = answer.get("entry") or []
    if answer.get("type") != "transaction-response" or len(answered) != len(entries):
        raise EhrProtocolError("the transaction response does not answer every entry")
    ctx.report.strategy = "transaction"
    confirmed: list[tuple[LocalResource, LinkState]] = []
    stale: list[LocalResource] = []
    # The merge base must name the EHR's ids, not this Bundle's urn:uuids.
    assigned = {
        str(entry["fullUrl"]): "/".join(_identity_of(resource.resource_type, answer))
        for resource, entry, answer in zip(resources, entries, answered, strict=False)
    }
    bodies = [with_references(body, assigned) for body in bodies]
    for resource, body, entry in zip(resources, bodies, answered, strict=False):
        outcome = entry.get("response") or {}
        result = WriteResult(
            status=int(str(outcome.get("status", "0")).split()[0]),
            resource=entry.get("resource"),
            etag=outcome.get("etag"),
            version_id=None,
            location=outcome.get("location"),
        )
        remote_id, version = _identity(resource.resource_type, result)
        version = version or _etag_version(outcome.get("etag"))
        created_before = resource.link is None or resource.link.remote_id is None
        server_copy = without_server_owned(result.resource or {})
        if resource.resource_type in PEOPLE_TYPES and result.status == 200:
            # Matched: the EHR's record of the person, as it has it.
            confirmed.append(
                (resource, LinkState(remote_id, version, resource.version_id, server_copy))
            )
        elif created_before and result.status == 200 and server_copy != without_server_owned(body):
            # The EHR had it, differently (a push that was not recorded): update it next.
            confirmed.append((resource, LinkState(remote_id, version, None, server_copy)))
            stale.append(resource)
        else:
            confirmed.append((resource, LinkState(remote_id, version, resource.version_id, body)))
    ctx.report.written += [
        f"{r.resource_type}/{state.remote_id}/_history/{state.remote_version_id}"
        for r, state in confirmed
        if r not in stale
    ]
    for resource, state in confirmed:
        if resource in stale:
            await _record_state(ctx, resource, state)
        else:
            resource.relink(state)
            ctx.report.links.append((resource, state))
    for resource in stale:
        await _write_one(ctx, resource, outgoing(resource, linked_targets(ctx)).body)


def _identity_of(resource_type: str, answer: JsonDict) -> tuple[str, str]:
    outcome = answer.get("response") or {}
    result = WriteResult(0, answer.get("resource"), None, None, outcome.get("location"))
    return resource_type, _identity(resource_type, result)[0]


def _etag_version(etag: str | None) -> str | None:
    match = re.match(r'^(?:W/)?"([^"]+)"$', etag or "")
    return match.group(1) if match else None


async def post_provenance(ctx: PushContext) -> None:
    """The Provenance of an ordered push, once something was confirmed on the EHR. A replay
    confirms (conditional create answering 200, a merge to no change) what the lost push wrote,
    so its `written_local` names the same versions and the Provenance is the same one."""
    if not ctx.report.written:
        return
    await provenance.send(
        ctx.client, ctx.job, ctx.capabilities, list(ctx.report.written), ctx.report.written_local
    )


# ---- withdrawals ------------------------------------------------------------------------------


async def delete_withdrawn(ctx: PushContext) -> None:
    """Delete on the EHR what this service created there and the case has withdrawn; the link
    goes with it. Only our own creations: a resource that came from the EHR stays there."""
    for resource_type, local_id, remote_id in ctx.job.withdrawn:
        if not ctx.capabilities.supports(resource_type, "delete"):
            ctx.report.unsupported[f"{resource_type} (delete)"] = (
                f"not supported by this EHR: {resource_type}/{remote_id} was withdrawn from the "
                "case but its CapabilityStatement lists no 'delete' interaction"
            )
            continue
        try:
            await ctx.client.send("DELETE", f"{resource_type}/{remote_id}")
        except EhrRejected as exc:
            if exc.remote_status not in (404, 410):  # already gone is what we wanted
                raise
        async with ctx.database.transaction() as session:
            await session.execute(
                delete(ResourceLink).where(
                    ResourceLink.connection_id == ctx.job.connection_id,
                    ResourceLink.resource_type == resource_type,
                    ResourceLink.local_id == local_id,
                )
            )
        ctx.report.written.append(f"{resource_type}/{remote_id} (deleted)")
