"""Removing a patient recorded in error: what `DELETE /fhir/Patient/{id}` does (FHIR R4
http.html#delete: a server may refuse with 409 when the resource's state forbids the delete).

A patient is removed only when nothing names them: no case (but cases withdrawn as entered in
error, which hold no records and go with the patient), no link to an EHR's patient, no record
pulled from an EHR, no review item, and no identity conflict naming them: neither one resolved
to them nor one still open with them among its candidates (a person must still choose there;
removing a candidate would leave them a choice that no longer exists). Otherwise the refusal
counts what still refers to them (counts only, no patient data). Removal deletes the
patient's row, with its identifiers (which another patient may then hold); the FHIR Patient
gets a deleted version (the engine's `deletes`), its history stays.
"""

from __future__ import annotations

from sqlalchemy import Select, Text, cast, delete
from sqlalchemy.ext.asyncio import AsyncSession

from mappings.vocabulary import CaseStatus
from service.cases.models import Case
from service.db.counts import count_of, nonzero_counts
from service.errors import Conflict
from service.links.models import PatientLink
from service.patients.models import Patient
from service.pull.models import IdentityConflict, PulledRecord
from service.review.models import ReviewItem


def _open_conflicts_naming(patient_id: str) -> Select[int]:
    """Count the open identity conflicts with the patient among their candidates. The
    candidates are a JSON list of patient ids, and an id (a FHIR id: letters, digits, `-`,
    `.`) has no quote, so the id between quotes in the list's text is one whole element: one
    test, on SQLite and PostgreSQL alike."""
    return count_of(
        IdentityConflict,
        IdentityConflict.resolved_at.is_(None),
        cast(IdentityConflict.candidate_patient_ids, Text).contains(
            f'"{patient_id}"', autoescape=True
        ),
    )


async def removal_blockers(session: AsyncSession, patient_id: str) -> list[str]:
    """What still names the patient, as counts (empty: they may be removed)."""
    return await nonzero_counts(
        session,
        {
            "case(s)": count_of(
                Case, Case.patient_id == patient_id, Case.status != CaseStatus.entered_in_error
            ),
            "link(s) to an EHR's patient": count_of(
                PatientLink, PatientLink.patient_id == patient_id
            ),
            "record(s) pulled from an EHR": count_of(
                PulledRecord, PulledRecord.patient_id == patient_id
            ),
            "review item(s)": count_of(ReviewItem, ReviewItem.patient_id == patient_id),
            "open identity conflict(s)": _open_conflicts_naming(patient_id),
            "resolved identity conflict(s)": count_of(
                IdentityConflict, IdentityConflict.resolved_patient_id == patient_id
            ),
        },
    )


async def remove_patient(session: AsyncSession, patient_id: str) -> None:
    """Remove the patient (see the module), or raise a 409 counting what still names them.
    The caller holds the patient's row lock (`repository.lock_patient`), so a row whose key
    names them cannot come between the count and the delete; an open identity conflict's
    candidates are no key (a JSON list), and on PostgreSQL a pull could still name them then."""
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
