"""One push of a (case, connection) pair: write what its job holds (loaded with the claim) by
the strategy the EHR allows, and park what could not be merged as conflicts. A conflict holds
back its own resource only: the other resources of the case (and its closure, the CarePlan's
status) go on, and the parked one goes once a person resolves the conflict."""

from __future__ import annotations

from service.db.session import Database
from service.ehr.client import FhirClient
from service.ehr.discovery import Capabilities
from service.push.job import PushJob
from service.push.models import ConflictStatus, PushConflict
from service.push.remote_edits import apply_remote_edits
from service.push.writes import (
    PushContext,
    PushReport,
    TransactionConflict,
    delete_withdrawn,
    post_provenance,
    push_ordered,
    push_transaction,
    to_push,
)


async def push_pair(
    database: Database,
    client: FhirClient,
    capabilities: Capabilities,
    job: PushJob,
) -> tuple[PushReport, int | None]:
    """Push the pair's latest projection (`job`, loaded with its claim); returns the report
    and the CarePlan version sent."""
    case_id, connection_id = job.case_id, job.connection_id
    ctx = PushContext(
        job,
        client,
        capabilities,
        database,
        # The connection's own setting, else the global default.
        document_fallback=(
            database.settings.push_document_fallback
            if job.document_fallback is None
            else job.document_fallback
        ),
        parked=job.parked,
    )
    # A resource with an open conflict waits for its resolution; the others go on.
    resources = [r for r in to_push(ctx) if r.id not in job.parked]
    if resources:
        if capabilities.supports_transaction:
            try:
                await push_transaction(ctx, resources)
            except TransactionConflict:
                await push_ordered(ctx, [r for r in resources if not r.up_to_date])
                await post_provenance(ctx)
        else:
            await push_ordered(ctx, resources)
            await post_provenance(ctx)
    await delete_withdrawn(ctx)
    await apply_remote_edits(database, job, ctx.report)
    if ctx.report.conflicts:
        async with database.transaction() as session:
            for found in ctx.report.conflicts:
                session.add(
                    PushConflict(
                        case_id=case_id,
                        connection_id=connection_id,
                        resource_type=found.resource.resource_type,
                        local_id=found.resource.id,
                        local_version_id=found.resource.version_id,
                        remote_id=found.remote_id,
                        remote_version_id=found.remote_version_id,
                        elements=found.elements,
                        base=found.base,
                        local=found.local,
                        remote=found.remote,
                        status=ConflictStatus.open,
                    )
                )
    held_back = job.parked | {found.resource.id for found in ctx.report.conflicts}
    plan_held_back = any(r.resource_type == "CarePlan" and r.id in held_back for r in job.resources)
    # The plan's version counts as synced only when the EHR has it, not while it waits.
    return ctx.report, None if plan_held_back else job.care_plan_version
