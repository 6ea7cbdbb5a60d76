"""The one module that chooses the FHIR release: everything else imports FHIR models from here.

CaseBridge exchanges FHIR R4. fhir.resources' `R4B` package is used for that exchange; the
R4B-only elements are never produced, so the output is valid R4.
"""

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntryRequest
from fhir.resources.R4B.careplan import CarePlan, CarePlanActivity, CarePlanActivityDetail
from fhir.resources.R4B.careteam import CareTeam, CareTeamParticipant
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.fhirresourcemodel import FHIRResourceModel
from fhir.resources.R4B.goal import Goal, GoalTarget
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.narrative import Narrative
from fhir.resources.R4B.operationoutcome import OperationOutcome, OperationOutcomeIssue
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.provenance import Provenance, ProvenanceAgent
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.servicerequest import ServiceRequest


def resource_model(resource_type: str) -> type[FHIRResourceModel]:
    """The fhir.resources model class of a resource type (KeyError-like ValueError if unknown)."""
    model = get_fhir_model_class(resource_type)
    if not issubclass(model, FHIRResourceModel):
        raise ValueError(f"{resource_type} is not a resource type")
    return model


__all__ = [
    "Bundle",
    "BundleEntry",
    "BundleEntryRequest",
    "CarePlan",
    "CarePlanActivity",
    "CarePlanActivityDetail",
    "CareTeam",
    "CareTeamParticipant",
    "CodeableConcept",
    "Coding",
    "Condition",
    "DocumentReference",
    "FHIRResourceModel",
    "Goal",
    "GoalTarget",
    "Identifier",
    "Meta",
    "Narrative",
    "OperationOutcome",
    "OperationOutcomeIssue",
    "Patient",
    "Period",
    "Provenance",
    "ProvenanceAgent",
    "Reference",
    "ServiceRequest",
    "resource_model",
]
