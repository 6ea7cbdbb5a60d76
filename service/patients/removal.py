"""Removing a patient recorded in error: what `DELETE /fhir/Patient/{id}` does (FHIR R4
http.html#delete: a server may refuse with 409 when the resource's state forbids the delete).

A patient is removed only when nothing names them: no case (but cases withdrawn as entered in
error, which hold no records and go with the patient), no link to an EHR's patient, no record
pulled from an EHR, no review item and no resolved identity conflict naming them. Otherwise the
refusal counts what still refers to them (counts only, no patient data). Removal deletes the
patient's row, with its identifiers (which another patient may then hold); the FHIR Patient
gets a deleted version (the engine's `deletes`), its history stays.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.vocabulary import CaseStatus
from service.cases.models import Case
from service.errors import Conflict
from service.links.models import PatientLink
from service.patients.models import Patient
from service.pull.models import IdentityConflict, PulledRecord
from service.review.models import ReviewItem


async def removal_blockers(session: AsyncSession, patient_id: str) -> list[str]:
    """What still names the patient, as counts (empty: they may be removed)."""
    counts = {
        "case(s)": select(func.count())
        .select_from(Case)
        .where(Case.patient_id == patient_id, Case.status != CaseStatus.entered_in_error),
        "link(s) to an EHR's patient": select(func.count())
        .select_from(PatientLink)
        .where(PatientLink.patient_id == patient_id),
        "record(s) pulled from an EHR": select(func.count())
        .select_from(PulledRecord)
        .where(PulledRecord.patient_id == patient_id),
        "review item(s)": select(func.count())
        .select_from(ReviewItem)
        .where(ReviewItem.patient_id == patient_id),
        "resolved identity conflict(s)": select(func.count())
        .select_from(IdentityConflict)
        .where(IdentityConflict.resolved_patient_id == patient_id),
    }
    found = []
    for what, statement in counts.items():
        if number := int(await session.scalar(statement) or 0):
            found.append(f"{number} {what}")
    return found


async def remove_patient(session: AsyncSession, patient_id: str) -> None:
    """Remove the patient (see the module), or raise a 409 counting what still names them."""
    if blockers := await removal_blockers(session, patient_id):
        raise Conflict(
            f"Patient/{patient_id} is not deleted: {', '.join(blockers)} still name them; a "
            "patient is kept while any record refers to them"
        )
    # Cases withdrawn as entered in error go too (their records were removed on withdrawal;
    # their history rows follow by ON DELETE CASCADE), then the patient and identifiers.
    await session.execute(
        delete(Case).where(
            Case.patient_id == patient_id, Case.status == CaseStatus.entered_in_error
        )
    )
    await session.execute(delete(Patient).where(Patient.id == patient_id))
