"""A referral its receiver has closed on the EHR, as the case takes it.

One rule for both inbound paths (a pull, `pull.into_cases`; an EHR edit a push merges on 412,
`push.remote_edits`). A closing status (`REFERRAL_CLOSED_BY_RECEIVER`; FHIR R4 request-status
`completed`, `revoked`, `entered-in-error`, https://hl7.org/fhir/R4/valueset-request-status.html)
closes the case's referral. `completed` carries an outcome (a planner cannot complete a referral
without one): the EHR's referral-outcome extension when it sent one, else the case's own, else
`not_reported`, with a review item asking a planner for the outcome: the EHR's fact is recorded,
not dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mappings.canonical import EXT_REFERRAL_OUTCOME
from mappings.concept_maps import REFERRAL_CLOSED_BY_RECEIVER
from mappings.from_fhir.service_request import referral_outcome
from mappings.to_fhir.service_request import outcome_extension
from mappings.vocabulary import InterventionKind, InterventionStatus, ReferralOutcome
from service.plans.models import Intervention

JsonDict = dict[str, Any]

OUTCOME_NOT_REPORTED = (
    "the receiver completed the referral without reporting its outcome; the case records "
    "'outcome not reported': record the outcome"
)


async def with_outcome_not_reported(
    session: AsyncSession,
    resource_type: str,
    local_id: str,
    ehr_form: Mapping[str, Any],
    extensions_from: Mapping[str, Any],
) -> JsonDict | None:
    """What the case takes of `ehr_form` when it completes a referral without an outcome and
    the case's referral has none: `ehr_form` whose `extension` is that of `extensions_from`
    (the form whose other extensions the case keeps) with outcome `not_reported`. None when
    the rule does not apply (another status, an outcome sent or held, not a referral)."""
    closed = REFERRAL_CLOSED_BY_RECEIVER.get((resource_type, str(ehr_form.get("status", ""))))
    if closed is not InterventionStatus.completed or referral_outcome(ehr_form) is not None:
        return None
    row = await session.get(Intervention, local_id)
    if row is None or row.kind is not InterventionKind.referral or row.referral_outcome:
        return None
    kept = [
        x for x in extensions_from.get("extension") or () if x.get("url") != EXT_REFERRAL_OUTCOME
    ]
    return {**ehr_form, "extension": [*kept, outcome_extension(ReferralOutcome.not_reported)]}
