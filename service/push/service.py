"""Rules of the push API: replaying a dead-lettered push and resolving a conflict.

Resolving writes to the EHR at once (keep-local, edit) with `If-Match` on the remote version the
person saw; if the EHR copy changed again meanwhile, the conflict is refreshed and the caller
gets 412. Then the resource the conflict held back is queued: the pair's next push sends its
later local versions, if any. (The rest of the case never waited: a conflict parks its own
resource only.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mappings import fhir_json
from service.cases.lifecycle import ENDED
from service.cases.models import Case
from service.connections.fhir_clients import fhir_client_for
from service.connections.service import load_connection
from service.db.base import utcnow
from service.db.session import Database
from service.ehr.errors import EhrPreconditionFailed, EhrRejected
from service.ehr.url_policy import UrlPolicy
from service.errors import Conflict, NotFound, PreconditionFailed, UnprocessableEntity
from service.links.repository import resource_link
from service.push.models import (
    ConflictResolution,
    ConflictStatus,
    PushConflict,
    PushSync,
    SyncStatus,
)
from service.push.outbox import enqueue_pair
from service.push.remote_edits import (
    apply_what_the_case_takes,
    case_references_to_local,
    note_remote_edits,
    open_refused_edit_items,
)
from service.push.remote_form import SERVER_OWNED, without_server_owned
from service.push.schemas import ConflictResolutionIn
from service.push.writes import location_identity
from service.review.models import ReviewSource
from service.security.encryption import SecretBox
from service.smart.backend_services import BackendServicesTokens

JsonDict = dict[str, Any]


async def replay(session: AsyncSession, case_id: str, connection_id: str) -> PushSync:
    """Send a pair again now: a dead-lettered or failed push gets a fresh set of attempts."""
    sync = await session.scalar(
        select(PushSync).where(PushSync.case_id == case_id, PushSync.connection_id == connection_id)
    )
    if sync is None:
        raise NotFound(f"case {case_id} has never been queued for connection {connection_id}")
    if sync.status is SyncStatus.in_flight:
        raise Conflict("that push is in flight now")
    sync.status = SyncStatus.pending
    sync.attempts = 0
    sync.next_attempt_at = utcnow()
    sync.last_error = None
    await session.flush()
    return sync


async def open_conflict_counts(
    session: AsyncSession, case_ids: list[str]
) -> dict[tuple[str, str], int]:
    """(case id, connection id) -> how many open conflicts the pair has, for `case_ids`."""
    if not case_ids:
        return {}
    rows = await session.execute(
        select(PushConflict.case_id, PushConflict.connection_id, func.count())
        .where(
            PushConflict.case_id.in_(sorted(set(case_ids))),
            PushConflict.status == ConflictStatus.open,
        )
        .group_by(PushConflict.case_id, PushConflict.connection_id)
    )
    return {(case_id, connection_id): count for case_id, connection_id, count in rows}


async def load_conflict(session: AsyncSession, conflict_id: str) -> PushConflict:
    conflict = await session.get(PushConflict, conflict_id)
    if conflict is None:
        raise NotFound(f"no push conflict {conflict_id}")
    return conflict


def _edited(conflict: PushConflict, resource: JsonDict) -> JsonDict:
    """A person's edit of the conflicting resource: the same type, about the same patient."""
    if resource.get("resourceType", conflict.resource_type) != conflict.resource_type:
        raise UnprocessableEntity(
            f"the edit must be a {conflict.resource_type}", extra={"pointer": "/resource"}
        )
    for element in ("subject", "patient"):
        if element in conflict.remote and resource.get(element) != conflict.remote[element]:
            raise UnprocessableEntity(
                f"the edit may not change {element}: it stays the EHR's patient",
                extra={"pointer": f"/resource/{element}"},
            )
    return without_server_owned({k: v for k, v in resource.items() if k != "resourceType"})


async def resolve(
    database: Database,
    conflict_id: str,
    choice: ConflictResolutionIn,
    actor: str,
    *,
    box: SecretBox,
    tokens: BackendServicesTokens,
    policy: UrlPolicy,
) -> PushConflict:
    async with database.transaction(write=False) as session:
        conflict = await load_conflict(session, conflict_id)
        if conflict.status is not ConflictStatus.open:
            raise Conflict(f"push conflict {conflict_id} is resolved already")
        connection = await load_connection(session, conflict.connection_id)
    resolution = ConflictResolution(choice.resolution)
    content: JsonDict
    remote_version = conflict.remote_version_id
    if resolution is ConflictResolution.take_remote:
        content = conflict.remote
    else:
        content = (
            conflict.local
            if resolution is ConflictResolution.keep_local
            else _edited(conflict, choice.resource or {})
        )
        client = fhir_client_for(
            connection, settings=database.settings, box=box, tokens=tokens, policy=policy
        )
        async with client:
            try:
                result = await client.update(
                    {"resourceType": conflict.resource_type, "id": conflict.remote_id, **content},
                    if_match=remote_version,
                )
            except EhrRejected as exc:
                if not isinstance(exc, EhrPreconditionFailed) and exc.remote_status != 409:
                    raise
                remote = await client.read(conflict.resource_type, conflict.remote_id)
                await _refresh(database, conflict_id, remote)
                raise PreconditionFailed(
                    "the EHR copy changed again since the conflict was recorded; it has been "
                    "refreshed: review it and resolve again"
                ) from exc
        remote_version = (
            result.version_id or location_identity(result.location, conflict.resource_type)[1]
        )
    async with database.transaction() as session:
        conflict = await load_conflict(session, conflict_id)
        link = await resource_link(
            session, conflict.connection_id, conflict.resource_type, conflict.local_id
        )
        if link is None:
            raise NotFound("the link of the conflicting resource is gone")
        # The resolved content is the new merge base; the local version the conflict was about
        # counts as pushed, so later local changes are rebased onto it.
        link.remote_version_id = remote_version
        link.pushed_content = fhir_json.dumps(content)
        link.pushed_version_id = conflict.local_version_id
        # The conflicting elements are settled: ours written (keep-local, edit), or the
        # EHR's taken by the case (take-remote, edit; noted again below if that fails).
        remaining = [e for e in link.remote_edits or () if e not in conflict.elements]
        link.remote_edits = remaining or None
        conflict.status = ConflictStatus.resolved
        conflict.resolution = resolution
        conflict.resolved_by = actor
        conflict.resolved_at = utcnow()
        await session.flush()
        # The resource the conflict held back goes to the EHR with the pair's next push (its
        # later local versions too); the rest of the case never waited.
        await enqueue_pair(session, conflict.case_id, conflict.connection_id, actor)
    if resolution is not ConflictResolution.keep_local:
        kept = await _apply_resolution(database, conflict, content)
        if kept:
            reference = f"{conflict.resource_type}/{conflict.local_id}"
            await note_remote_edits(database, conflict.connection_id, reference, kept=kept)
    return conflict


async def _apply_resolution(
    database: Database, conflict: PushConflict, content: JsonDict
) -> list[str]:
    """The resolved content is the case's too: the elements where it differs from the local
    version the conflict was about go to the case, like the EHR's merged edits. Returns those
    the case could not take (they stay on the EHR only, and become a review item)."""
    elements = sorted(
        key
        for key in set(content) | set(conflict.local)
        if key not in SERVER_OWNED and content.get(key) != conflict.local.get(key)
    )
    if not elements:
        return []
    async with database.transaction(write=False) as session:
        case = await session.get(Case, conflict.case_id)
        to_local = await case_references_to_local(session, conflict.connection_id, conflict.case_id)
    if case is None:
        return []  # the case is gone, and its conflicts with it
    reference = f"{conflict.resource_type}/{conflict.local_id}"
    # A closed case takes no change: said first, rather than a version mismatch (its closure
    # settled its goals and referrals, so their versions moved on since the conflict).
    refused: dict[str, str]
    if case.status in ENDED:
        refused = dict.fromkeys(elements, f"the case is {case.status.value}")
    elif to_local is None:
        refused = dict.fromkeys(elements, "the case's patient is no longer linked here")
    else:
        refused = await apply_what_the_case_takes(
            database,
            conflict.connection_id,
            reference,
            conflict.local_version_id,
            elements,
            content,
            to_local,
        )
    if refused:
        await open_refused_edit_items(
            database,
            ReviewSource.resolution,
            refused,
            content,
            case_id=case.id,
            patient_id=case.patient_id,
            connection_id=conflict.connection_id,
            reference=reference,
            remote_id=conflict.remote_id,
        )
    return sorted(refused)


async def _refresh(database: Database, conflict_id: str, remote: JsonDict) -> None:
    async with database.transaction() as session:
        conflict = await load_conflict(session, conflict_id)
        conflict.remote = without_server_owned(remote)
        conflict.remote_version_id = (remote.get("meta") or {}).get("versionId")
        await session.flush()
