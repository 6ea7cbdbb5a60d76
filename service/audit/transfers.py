"""Audit records of data crossing to or from an EHR: a pull job when it finishes (who started
it, which patients came in) and each delivered push (which resources went to which
connection). Written in the transaction that records the job's end or the push's delivery,
so the trail holds exactly the transfers the database says happened."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.audit.events import event_bytes, transfer_event
from service.audit.recorder import AuditEntry, insert_audit_entries
from service.cases.models import Case
from service.pull.models import PulledRecord, PullJob, PullState

PUSH_AGENT = "system:push"
OBSERVER = "casebridge"


def _entry(
    event_id: str,
    recorded: dt.datetime,
    content: bytes,
    *,
    agent: str,
    action: str,
    interaction: str,
    resource_type: str,
    resource_id: str,
    status: int,
    patient_ids: Sequence[str],
) -> AuditEntry:
    return AuditEntry(
        row={
            "id": event_id,
            "recorded_at": recorded,
            "agent": agent[:200],
            "action": action,
            "interaction": interaction,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "status": status,
            "content": content,
        },
        patient_ids=tuple(sorted(set(patient_ids))),
    )


async def audit_finished_pull(session: AsyncSession, job: PullJob, patient_ids: set[str]) -> None:
    """Record a finished pull job: its requester, connection and patients. A Bulk Data pull
    does not report its patients one by one: they are the local patients whose Patient
    resource this connection wrote since the job started."""
    patients: set[str | None] = set(patient_ids)
    if job.bulk_group_id is not None and job.started_at is not None:
        patients |= set(
            await session.scalars(
                select(PulledRecord.patient_id).where(
                    PulledRecord.connection_id == job.connection_id,
                    PulledRecord.resource_type == "Patient",
                    PulledRecord.patient_id.is_not(None),
                    PulledRecord.pulled_at >= job.started_at,
                )
            )
        )
    event_id, recorded, event = transfer_event(
        kind="pull",
        requestor=job.requested_by,
        connection_id=job.connection_id,
        resources=[f"Group/{job.bulk_group_id}"] if job.bulk_group_id else [],
        patient_ids=sorted(p for p in patients if p),
        observer=OBSERVER,
        failed=job.state is not PullState.succeeded,
    )
    event["entity"] = [
        *event.get("entity", []),
        {"what": {"identifier": {"system": "urn:casebridge:pull-job", "value": job.id}}},
    ]
    await insert_audit_entries(
        session,
        [
            _entry(
                event_id,
                recorded,
                event_bytes(event),
                agent=job.requested_by,
                action=event["action"],
                interaction="pull",
                resource_type="PullJob",
                resource_id=job.id,
                status=200 if job.state is PullState.succeeded else 500,
                patient_ids=[p for p in patients if p],
            )
        ],
    )


@dataclass(frozen=True)
class DeliveredPush:
    case_id: str
    connection_id: str
    # (type, local id, local version) of each resource the EHR confirmed.
    written: Sequence[tuple[str, str, int]]


async def audit_delivered_pushes(
    connection: AsyncConnection, pushes: Sequence[DeliveredPush]
) -> None:
    """One record per delivered push: the resources (local id and version) sent, the
    connection they went to, and the case's patient. A push that wrote nothing (every type
    unsupported, or a conflict parked it first) sent no data and leaves no record."""
    pushes = [push for push in pushes if push.written]
    if not pushes:
        return
    patient_of: dict[str, str] = dict(
        (
            await connection.execute(
                select(Case.id, Case.patient_id).where(
                    Case.id.in_({push.case_id for push in pushes})
                )
            )
        ).all()
    )
    entries = []
    for push in pushes:
        patient = patient_of.get(push.case_id)
        patients = [patient] if patient else []
        event_id, recorded, event = transfer_event(
            kind="push",
            requestor=PUSH_AGENT,
            connection_id=push.connection_id,
            resources=[f"{kind}/{local_id}/_history/{v}" for kind, local_id, v in push.written],
            patient_ids=patients,
            observer=OBSERVER,
        )
        entries.append(
            _entry(
                event_id,
                recorded,
                event_bytes(event),
                agent=PUSH_AGENT,
                action=event["action"],
                interaction="push",
                resource_type="CarePlan",
                resource_id=push.case_id,
                status=200,
                patient_ids=patients,
            )
        )
    await insert_audit_entries(connection, entries)
