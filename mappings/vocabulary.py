"""The case-management vocabulary: every internal code the service stores.

These enums are the single source of the internal codes. The database columns, the
internal API and the concept maps in `mappings/concept_maps/` all use these values, and a
test checks that every value has a concept-map entry.
"""

from enum import StrEnum


class Program(StrEnum):
    nursing = "nursing"
    social_work = "social_work"
    behavioral_health = "behavioral_health"
    disability = "disability"
    workers_compensation = "workers_compensation"
    geriatric = "geriatric"
    pediatric = "pediatric"
    transitional_care = "transitional_care"


class CaseStatus(StrEnum):
    referral = "referral"
    intake = "intake"
    assessment = "assessment"
    planning = "planning"
    active = "active"
    monitoring = "monitoring"
    transition = "transition"
    closed = "closed"
    # Withdrawn as never valid (DELETE of its CarePlan, service/cases/withdrawal.py): final, and
    # the case has no FHIR resources any more.
    entered_in_error = "entered_in_error"


class ClosureReason(StrEnum):
    goals_met = "goals_met"
    patient_declined = "patient_declined"
    transferred = "transferred"
    moved_out_of_area = "moved_out_of_area"
    lost_to_follow_up = "lost_to_follow_up"
    ineligible = "ineligible"
    deceased = "deceased"
    other = "other"


class Priority(StrEnum):
    """Request priority, as FHIR's request-priority code system has it."""

    routine = "routine"
    urgent = "urgent"
    asap = "asap"
    stat = "stat"


class AssessmentKind(StrEnum):
    initial = "initial"
    reassessment = "reassessment"


class NeedDomain(StrEnum):
    medical = "medical"
    behavioral = "behavioral"
    functional = "functional"
    housing = "housing"
    food = "food"
    transportation = "transportation"
    financial = "financial"
    safety = "safety"


class Severity(StrEnum):
    mild = "mild"
    moderate = "moderate"
    severe = "severe"


class NeedStatus(StrEnum):
    active = "active"
    resolved = "resolved"


class RiskLevel(StrEnum):
    low = "low"
    moderate = "moderate"
    high = "high"


class GoalExpressedBy(StrEnum):
    patient = "patient"
    caregiver = "caregiver"
    case_manager = "case_manager"
    care_team = "care_team"


class GoalPriority(StrEnum):
    high = "high"
    medium = "medium"
    low = "low"


class GoalLifecycle(StrEnum):
    proposed = "proposed"
    planned = "planned"
    accepted = "accepted"
    active = "active"
    on_hold = "on_hold"
    completed = "completed"
    cancelled = "cancelled"
    rejected = "rejected"


class GoalAchievement(StrEnum):
    in_progress = "in_progress"
    improving = "improving"
    worsening = "worsening"
    no_change = "no_change"
    achieved = "achieved"
    sustaining = "sustaining"
    not_achieved = "not_achieved"
    no_progress = "no_progress"
    not_attainable = "not_attainable"


class InterventionKind(StrEnum):
    referral = "referral"
    service = "service"


class InterventionType(StrEnum):
    home_health = "home_health"
    durable_medical_equipment = "durable_medical_equipment"
    housing_assistance = "housing_assistance"
    food_assistance = "food_assistance"
    transportation_assistance = "transportation_assistance"
    financial_counseling = "financial_counseling"
    counseling = "counseling"
    medication_management = "medication_management"
    physical_therapy = "physical_therapy"
    primary_care_follow_up = "primary_care_follow_up"
    caregiver_support = "caregiver_support"
    patient_education = "patient_education"
    care_coordination = "care_coordination"
    other = "other"


class InterventionStatus(StrEnum):
    draft = "draft"
    active = "active"
    on_hold = "on_hold"
    completed = "completed"
    revoked = "revoked"
    entered_in_error = "entered_in_error"  # the receiver withdrew it as never valid


class PerformerKind(StrEnum):
    organization = "organization"
    practitioner = "practitioner"


class ReferralOutcome(StrEnum):
    service_provided = "service_provided"
    declined_by_patient = "declined_by_patient"
    not_eligible = "not_eligible"
    unable_to_contact = "unable_to_contact"
    waitlisted = "waitlisted"
    referred_elsewhere = "referred_elsewhere"
    # The receiver completed the referral without saying how it went: a planner completes it.
    not_reported = "not_reported"


class CareTeamRole(StrEnum):
    patient = "patient"
    caregiver = "caregiver"
    case_manager = "case_manager"
    primary_care_physician = "primary_care_physician"
    social_worker = "social_worker"
    nurse = "nurse"
    behavioral_health_clinician = "behavioral_health_clinician"
    pharmacist = "pharmacist"
    community_health_worker = "community_health_worker"
    specialist = "specialist"
    other = "other"


class CheckInMode(StrEnum):
    phone = "phone"
    in_person = "in_person"
    video = "video"
    message = "message"


class TransitionKind(StrEnum):
    discharge = "discharge"
    admission = "admission"
    level_of_care_change = "level_of_care_change"
    transfer = "transfer"


class CareSetting(StrEnum):
    acute_hospital = "acute_hospital"
    skilled_nursing_facility = "skilled_nursing_facility"
    inpatient_rehabilitation = "inpatient_rehabilitation"
    home = "home"
    home_with_home_health = "home_with_home_health"
    assisted_living = "assisted_living"
    long_term_care = "long_term_care"
    hospice = "hospice"
    behavioral_health_facility = "behavioral_health_facility"
    shelter = "shelter"


class TransitionStatus(StrEnum):
    planned = "planned"
    completed = "completed"
    cancelled = "cancelled"


class AdministrativeGender(StrEnum):
    male = "male"
    female = "female"
    other = "other"
    unknown = "unknown"
