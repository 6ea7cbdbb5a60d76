"""The golden cases: four realistic case-management episodes as `CaseRecord`s.

Each is the input of one golden test (`golden/<name>/`); ids are fixed UUID-like strings so
the expected JSON never changes between runs.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from mappings.case_model import (
    AssessmentRecord,
    CareTeamMemberRecord,
    CaseRecord,
    CheckInRecord,
    CodingRecord,
    GoalProgressRecord,
    GoalRecord,
    GoalTargetRecord,
    IdentifierRecord,
    InterventionRecord,
    NeedRecord,
    NoteRecord,
    PatientRecord,
    PerformerRecord,
    RiskRecord,
    TransitionRecord,
)
from mappings.vocabulary import (
    AdministrativeGender,
    AssessmentKind,
    CareSetting,
    CareTeamRole,
    CaseStatus,
    CheckInMode,
    ClosureReason,
    GoalAchievement,
    GoalExpressedBy,
    GoalLifecycle,
    GoalPriority,
    InterventionKind,
    InterventionStatus,
    InterventionType,
    NeedDomain,
    NeedStatus,
    PerformerKind,
    Priority,
    Program,
    ReferralOutcome,
    RiskLevel,
    Severity,
    TransitionKind,
    TransitionStatus,
)

UTC = dt.UTC
MRN = "http://hospital.example.org/mrn"
NPI = "http://hl7.org/fhir/sid/us-npi"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"


def at(day: str, time: str = "09:00:00") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=UTC)


def discharge_home_case() -> CaseRecord:
    """Hospital discharge to home after a hip fracture: home health, a walker, a caregiver."""
    case_id = "0b6f1c2e-1a11-4c2d-9a01-000000000001"
    return CaseRecord(
        id=case_id,
        patient=PatientRecord(
            id="a1000000-0000-4000-8000-000000000001",
            identifiers=(IdentifierRecord(system=MRN, value="MRN-448812"),),
            given_name="Margaret",
            family_name="Okafor",
            birth_date=dt.date(1948, 3, 14),
            gender=AdministrativeGender.female,
        ),
        program=Program.transitional_care,
        title="Discharge home after hip fracture repair",
        manager="Dana Whitfield, RN",
        priority=Priority.urgent,
        status=CaseStatus.transition,
        opened_at=at("2026-10-02", "14:30:00"),
        updated_at=at("2026-10-06", "16:05:00"),
        assessments=(
            AssessmentRecord(
                id="as-discharge-1",
                kind=AssessmentKind.initial,
                performed_at=at("2026-10-03", "10:00:00"),
                performed_by="Dana Whitfield, RN",
                summary="Post-operative mobility limits; lives with daughter in a two-storey home.",
                strengths=("Engaged daughter as caregiver", "Motivated to return home"),
                preferences=("Prefers morning visits",),
                risks=(
                    RiskRecord(
                        id="risk-fall", description="Fall risk at home", level=RiskLevel.high
                    ),
                ),
                need_ids=("need-mobility", "need-wound"),
            ),
        ),
        needs=(
            NeedRecord(
                id="need-mobility",
                domain=NeedDomain.functional,
                description="Impaired mobility after hip fracture repair",
                severity=Severity.moderate,
                code=CodingRecord(
                    system=SNOMED, code="302040008", display="Impaired mobility (finding)"
                ),
                assessment_id="as-discharge-1",
                recorded_at=at("2026-10-03", "10:00:00"),
            ),
            NeedRecord(
                id="need-wound",
                domain=NeedDomain.medical,
                description="Surgical wound needs dressing changes",
                severity=Severity.mild,
                assessment_id="as-discharge-1",
                recorded_at=at("2026-10-03", "10:00:00"),
            ),
        ),
        goals=(
            GoalRecord(
                id="goal-walk",
                description="Walk 50 metres with a walker within four weeks",
                need_ids=("need-mobility",),
                expressed_by=GoalExpressedBy.patient,
                priority=GoalPriority.high,
                lifecycle_status=GoalLifecycle.active,
                achievement_status=GoalAchievement.in_progress,
                start_date=dt.date(2026, 10, 6),
                target=GoalTargetRecord(
                    measure=CodingRecord(
                        system=LOINC, code="41950-7", display="Number of steps in 24 hour Measured"
                    ),
                    detail_quantity=Decimal("500"),
                    detail_unit="steps",
                    due_date=dt.date(2026, 11, 3),
                ),
            ),
            GoalRecord(
                id="goal-wound",
                description="Surgical wound heals without infection",
                need_ids=("need-wound",),
                expressed_by=GoalExpressedBy.case_manager,
                priority=GoalPriority.medium,
                lifecycle_status=GoalLifecycle.active,
                start_date=dt.date(2026, 10, 6),
                target=GoalTargetRecord(
                    detail_text="Wound closed, no signs of infection",
                    due_date=dt.date(2026, 10, 27),
                ),
            ),
        ),
        interventions=(
            InterventionRecord(
                id="sr-home-health",
                kind=InterventionKind.referral,
                type=InterventionType.home_health,
                description="Home health nursing and physical therapy, 3 visits a week",
                performer=PerformerRecord(
                    kind=PerformerKind.organization,
                    name="Riverside Home Health",
                    identifier=IdentifierRecord(system=NPI, value="1234567893"),
                ),
                status=InterventionStatus.active,
                priority=Priority.urgent,
                scheduled_start=at("2026-10-07"),
                scheduled_end=at("2026-11-04"),
                authored_at=at("2026-10-05", "11:20:00"),
                requested_by="Dana Whitfield, RN",
                goal_ids=("goal-walk", "goal-wound"),
                need_ids=("need-mobility", "need-wound"),
            ),
            InterventionRecord(
                id="sr-walker",
                kind=InterventionKind.referral,
                type=InterventionType.durable_medical_equipment,
                description="Front-wheeled walker and raised toilet seat",
                performer=PerformerRecord(kind=PerformerKind.organization, name="MedSupply Direct"),
                status=InterventionStatus.completed,
                priority=Priority.urgent,
                scheduled_start=at("2026-10-06"),
                authored_at=at("2026-10-05", "11:25:00"),
                requested_by="Dana Whitfield, RN",
                goal_ids=("goal-walk",),
                need_ids=("need-mobility",),
                referral_outcome=ReferralOutcome.service_provided,
                outcome_note="Delivered to the home on 6 October.",
            ),
        ),
        care_team=(
            CareTeamMemberRecord(
                id="ct-patient", role=CareTeamRole.patient, name="Margaret Okafor"
            ),
            CareTeamMemberRecord(
                id="ct-daughter",
                role=CareTeamRole.caregiver,
                name="Grace Okafor",
                telecom="+1-555-0142",
            ),
            CareTeamMemberRecord(
                id="ct-manager",
                role=CareTeamRole.case_manager,
                name="Dana Whitfield, RN",
                telecom="dana.whitfield@example.org",
            ),
            CareTeamMemberRecord(
                id="ct-pcp", role=CareTeamRole.primary_care_physician, name="Dr. Samuel Reyes"
            ),
        ),
        transitions=(
            TransitionRecord(
                id="tr-discharge",
                kind=TransitionKind.discharge,
                from_setting=CareSetting.acute_hospital,
                to_setting=CareSetting.home_with_home_health,
                planned_date=dt.date(2026, 10, 7),
                status=TransitionStatus.planned,
                follow_ups=("PCP visit within 7 days", "Orthopaedic clinic at 6 weeks"),
            ),
        ),
        notes=(
            NoteRecord(
                id="note-1",
                author="Dana Whitfield, RN",
                text="Daughter trained on transfers and wound care before discharge.",
                created_at=at("2026-10-06", "15:40:00"),
            ),
        ),
    )


def social_work_case() -> CaseRecord:
    """Housing, food and transportation needs, with community referrals."""
    case_id = "0b6f1c2e-1a11-4c2d-9a01-000000000002"
    return CaseRecord(
        id=case_id,
        patient=PatientRecord(
            id="a1000000-0000-4000-8000-000000000002",
            identifiers=(IdentifierRecord(system=MRN, value="MRN-551207"),),
            given_name="Luis",
            family_name="Hernández",
            birth_date=dt.date(1981, 7, 22),
            gender=AdministrativeGender.male,
        ),
        program=Program.social_work,
        title="Housing, food and transportation support",
        manager="Keisha Brown, LCSW",
        status=CaseStatus.active,
        opened_at=at("2026-09-14", "08:45:00"),
        updated_at=at("2026-10-01", "13:00:00"),
        assessments=(
            AssessmentRecord(
                id="as-sw-1",
                kind=AssessmentKind.initial,
                performed_at=at("2026-09-15", "09:30:00"),
                performed_by="Keisha Brown, LCSW",
                summary="Facing eviction; skipping meals; no car, misses dialysis transport.",
                risks=(
                    RiskRecord(
                        id="risk-homeless", description="Risk of homelessness", level=RiskLevel.high
                    ),
                ),
                need_ids=("need-housing", "need-food", "need-transport"),
            ),
        ),
        needs=(
            NeedRecord(
                id="need-housing",
                domain=NeedDomain.housing,
                description="Eviction notice; rent two months behind",
                severity=Severity.severe,
                assessment_id="as-sw-1",
                recorded_at=at("2026-09-15", "09:30:00"),
            ),
            NeedRecord(
                id="need-food",
                domain=NeedDomain.food,
                description="Runs out of food before the end of the month",
                severity=Severity.moderate,
                assessment_id="as-sw-1",
                recorded_at=at("2026-09-15", "09:30:00"),
            ),
            NeedRecord(
                id="need-transport",
                domain=NeedDomain.transportation,
                description="No reliable transport to dialysis three times a week",
                severity=Severity.severe,
                assessment_id="as-sw-1",
                recorded_at=at("2026-09-15", "09:30:00"),
            ),
        ),
        goals=(
            GoalRecord(
                id="goal-housing",
                description="Keep stable housing",
                need_ids=("need-housing",),
                expressed_by=GoalExpressedBy.patient,
                priority=GoalPriority.high,
                lifecycle_status=GoalLifecycle.active,
                achievement_status=GoalAchievement.improving,
                start_date=dt.date(2026, 9, 15),
                target=GoalTargetRecord(
                    detail_text="Rental arrears paid and lease renewed",
                    due_date=dt.date(2026, 12, 31),
                ),
                progress=(
                    GoalProgressRecord(
                        id="gp-housing-1",
                        recorded_at=at("2026-10-01", "12:30:00"),
                        recorded_by="Keisha Brown, LCSW",
                        achievement_status=GoalAchievement.improving,
                        note="Emergency rental assistance approved; landlord paused eviction.",
                    ),
                ),
            ),
            GoalRecord(
                id="goal-food",
                description="Has enough food every day of the month",
                need_ids=("need-food",),
                expressed_by=GoalExpressedBy.patient,
                priority=GoalPriority.medium,
                lifecycle_status=GoalLifecycle.active,
                achievement_status=GoalAchievement.in_progress,
                start_date=dt.date(2026, 9, 15),
            ),
            GoalRecord(
                id="goal-transport",
                description="Gets to every dialysis session",
                need_ids=("need-transport",),
                expressed_by=GoalExpressedBy.case_manager,
                priority=GoalPriority.high,
                lifecycle_status=GoalLifecycle.accepted,
                start_date=dt.date(2026, 9, 15),
            ),
        ),
        interventions=(
            InterventionRecord(
                id="sr-housing",
                kind=InterventionKind.referral,
                type=InterventionType.housing_assistance,
                description="Referral to county emergency rental assistance",
                performer=PerformerRecord(
                    kind=PerformerKind.organization, name="County Housing Authority"
                ),
                status=InterventionStatus.completed,
                priority=Priority.asap,
                authored_at=at("2026-09-15", "11:00:00"),
                requested_by="Keisha Brown, LCSW",
                goal_ids=("goal-housing",),
                need_ids=("need-housing",),
                referral_outcome=ReferralOutcome.service_provided,
            ),
            InterventionRecord(
                id="sr-food",
                kind=InterventionKind.referral,
                type=InterventionType.food_assistance,
                description="Referral to the neighbourhood food pantry",
                performer=PerformerRecord(
                    kind=PerformerKind.organization, name="Eastside Community Food Pantry"
                ),
                status=InterventionStatus.active,
                authored_at=at("2026-09-15", "11:10:00"),
                requested_by="Keisha Brown, LCSW",
                goal_ids=("goal-food",),
                need_ids=("need-food",),
            ),
            InterventionRecord(
                id="sr-transport",
                kind=InterventionKind.referral,
                type=InterventionType.transportation_assistance,
                description="Non-emergency medical transport for dialysis",
                performer=PerformerRecord(kind=PerformerKind.organization, name="RideWell NEMT"),
                status=InterventionStatus.active,
                priority=Priority.urgent,
                scheduled_start=at("2026-09-20", "06:30:00"),
                authored_at=at("2026-09-15", "11:20:00"),
                requested_by="Keisha Brown, LCSW",
                goal_ids=("goal-transport",),
                need_ids=("need-transport",),
                referral_outcome=ReferralOutcome.waitlisted,
                outcome_note="Waitlisted two weeks; interim taxi vouchers issued.",
            ),
        ),
        care_team=(
            CareTeamMemberRecord(id="ct-patient", role=CareTeamRole.patient, name="Luis Hernández"),
            CareTeamMemberRecord(
                id="ct-sw", role=CareTeamRole.social_worker, name="Keisha Brown, LCSW"
            ),
            CareTeamMemberRecord(
                id="ct-chw", role=CareTeamRole.community_health_worker, name="Tomás Ruiz"
            ),
        ),
        check_ins=(
            CheckInRecord(
                id="ci-1",
                occurred_at=at("2026-10-01", "12:00:00"),
                mode=CheckInMode.phone,
                performed_by="Keisha Brown, LCSW",
                notes="Rental assistance approved; pantry visits weekly.",
                goal_progress_ids=("gp-housing-1",),
            ),
        ),
    )


def behavioral_health_case() -> CaseRecord:
    """Depression with counselling and medication management."""
    case_id = "0b6f1c2e-1a11-4c2d-9a01-000000000003"
    return CaseRecord(
        id=case_id,
        patient=PatientRecord(
            id="a1000000-0000-4000-8000-000000000003",
            identifiers=(IdentifierRecord(system=MRN, value="MRN-660314"),),
            given_name="Priya",
            family_name="Natarajan",
            birth_date=dt.date(1994, 1, 9),
            gender=AdministrativeGender.female,
        ),
        program=Program.behavioral_health,
        title="Depression: counselling and medication management",
        manager="Alex Morgan, LPC",
        status=CaseStatus.monitoring,
        opened_at=at("2026-08-03", "10:15:00"),
        updated_at=at("2026-09-28", "17:45:00"),
        assessments=(
            AssessmentRecord(
                id="as-bh-1",
                kind=AssessmentKind.initial,
                performed_at=at("2026-08-04", "10:00:00"),
                performed_by="Alex Morgan, LPC",
                summary="PHQ-9 of 17; no suicidal ideation; supportive partner.",
                strengths=("Supportive partner", "Stable employment"),
                preferences=("Evening video sessions",),
                need_ids=("need-depression",),
            ),
        ),
        needs=(
            NeedRecord(
                id="need-depression",
                domain=NeedDomain.behavioral,
                description="Moderately severe depression",
                severity=Severity.moderate,
                code=CodingRecord(
                    system=SNOMED,
                    code="370143000",
                    display="Major depressive disorder (disorder)",
                ),
                assessment_id="as-bh-1",
                recorded_at=at("2026-08-04", "10:00:00"),
            ),
        ),
        goals=(
            GoalRecord(
                id="goal-phq9",
                description="PHQ-9 score below 10",
                need_ids=("need-depression",),
                expressed_by=GoalExpressedBy.patient,
                priority=GoalPriority.high,
                lifecycle_status=GoalLifecycle.active,
                achievement_status=GoalAchievement.improving,
                start_date=dt.date(2026, 8, 4),
                target=GoalTargetRecord(
                    measure=CodingRecord(
                        system=LOINC, code="44261-6", display="Patient Health Questionnaire 9 item"
                    ),
                    detail_quantity=Decimal("9"),
                    detail_unit="{score}",
                    due_date=dt.date(2026, 11, 30),
                ),
                progress=(
                    GoalProgressRecord(
                        id="gp-phq9-1",
                        recorded_at=at("2026-09-28", "17:30:00"),
                        recorded_by="Alex Morgan, LPC",
                        achievement_status=GoalAchievement.improving,
                        note="PHQ-9 down to 12.",
                    ),
                ),
            ),
        ),
        interventions=(
            InterventionRecord(
                id="sr-counselling",
                kind=InterventionKind.service,
                type=InterventionType.counseling,
                description="Weekly cognitive behavioural therapy, 12 sessions",
                performer=PerformerRecord(kind=PerformerKind.practitioner, name="Alex Morgan, LPC"),
                status=InterventionStatus.active,
                scheduled_start=at("2026-08-11", "18:00:00"),
                scheduled_end=at("2026-10-27", "19:00:00"),
                authored_at=at("2026-08-04", "11:00:00"),
                requested_by="Alex Morgan, LPC",
                goal_ids=("goal-phq9",),
                need_ids=("need-depression",),
            ),
            InterventionRecord(
                id="sr-meds",
                kind=InterventionKind.referral,
                type=InterventionType.medication_management,
                description="Psychiatric medication management",
                performer=PerformerRecord(
                    kind=PerformerKind.practitioner,
                    name="Dr. Hannah Cole",
                    identifier=IdentifierRecord(system=NPI, value="1987654321"),
                ),
                status=InterventionStatus.active,
                authored_at=at("2026-08-04", "11:15:00"),
                requested_by="Alex Morgan, LPC",
                goal_ids=("goal-phq9",),
                need_ids=("need-depression",),
            ),
        ),
        care_team=(
            CareTeamMemberRecord(
                id="ct-patient", role=CareTeamRole.patient, name="Priya Natarajan"
            ),
            CareTeamMemberRecord(
                id="ct-therapist",
                role=CareTeamRole.behavioral_health_clinician,
                name="Alex Morgan, LPC",
            ),
            CareTeamMemberRecord(
                id="ct-psychiatrist", role=CareTeamRole.specialist, name="Dr. Hannah Cole"
            ),
        ),
        check_ins=(
            CheckInRecord(
                id="ci-bh-1",
                occurred_at=at("2026-09-28", "17:00:00"),
                mode=CheckInMode.video,
                performed_by="Alex Morgan, LPC",
                notes="Sleeping better; tolerating sertraline.",
                goal_progress_ids=("gp-phq9-1",),
            ),
        ),
    )


def geriatric_reassessment_case() -> CaseRecord:
    """A re-assessment after a fall changes the plan: a goal is cancelled, services are added."""
    case_id = "0b6f1c2e-1a11-4c2d-9a01-000000000004"
    return CaseRecord(
        id=case_id,
        patient=PatientRecord(
            id="a1000000-0000-4000-8000-000000000004",
            identifiers=(IdentifierRecord(system=MRN, value="MRN-209977"),),
            given_name="Walter",
            family_name="Kowalski",
            birth_date=dt.date(1939, 11, 2),
            gender=AdministrativeGender.male,
        ),
        program=Program.geriatric,
        title="Geriatric care management",
        manager="Ruth Adeyemi, RN",
        status=CaseStatus.closed,
        closure_reason=ClosureReason.transferred,
        opened_at=at("2026-05-04", "09:00:00"),
        closed_at=at("2026-10-15", "12:00:00"),
        updated_at=at("2026-10-15", "12:00:00"),
        assessments=(
            AssessmentRecord(
                id="as-ger-1",
                kind=AssessmentKind.initial,
                performed_at=at("2026-05-05"),
                performed_by="Ruth Adeyemi, RN",
                summary="Lives alone; mild cognitive impairment; manages own medicines.",
                risks=(
                    RiskRecord(
                        id="risk-med", description="Medication errors", level=RiskLevel.moderate
                    ),
                ),
                need_ids=("need-meds",),
            ),
            AssessmentRecord(
                id="as-ger-2",
                kind=AssessmentKind.reassessment,
                performed_at=at("2026-08-20"),
                performed_by="Ruth Adeyemi, RN",
                summary="Fell at home on 14 August; cannot live alone safely any more.",
                risks=(
                    RiskRecord(
                        id="risk-fall-2", description="Recurrent falls", level=RiskLevel.high
                    ),
                ),
                need_ids=("need-meds", "need-safety", "need-financial"),
            ),
        ),
        needs=(
            NeedRecord(
                id="need-meds",
                domain=NeedDomain.medical,
                description="Difficulty managing multiple medications",
                severity=Severity.mild,
                status=NeedStatus.resolved,
                assessment_id="as-ger-1",
                recorded_at=at("2026-05-05"),
            ),
            NeedRecord(
                id="need-safety",
                domain=NeedDomain.safety,
                description="Unsafe to live alone after a fall",
                severity=Severity.severe,
                assessment_id="as-ger-2",
                recorded_at=at("2026-08-20"),
            ),
            NeedRecord(
                id="need-financial",
                domain=NeedDomain.financial,
                description="Cannot afford assisted-living fees without benefits",
                severity=Severity.moderate,
                assessment_id="as-ger-2",
                recorded_at=at("2026-08-20"),
            ),
        ),
        goals=(
            GoalRecord(
                id="goal-home",
                description="Continue living independently at home",
                need_ids=("need-meds",),
                expressed_by=GoalExpressedBy.patient,
                priority=GoalPriority.high,
                lifecycle_status=GoalLifecycle.cancelled,
                achievement_status=GoalAchievement.not_attainable,
                start_date=dt.date(2026, 5, 5),
                progress=(
                    GoalProgressRecord(
                        id="gp-home-1",
                        recorded_at=at("2026-08-20", "10:00:00"),
                        recorded_by="Ruth Adeyemi, RN",
                        achievement_status=GoalAchievement.not_attainable,
                        note="Re-assessment after fall: living alone is no longer safe.",
                    ),
                ),
            ),
            GoalRecord(
                id="goal-pillbox",
                description="Takes medicines as prescribed using a weekly pill organiser",
                need_ids=("need-meds",),
                expressed_by=GoalExpressedBy.caregiver,
                priority=GoalPriority.medium,
                lifecycle_status=GoalLifecycle.completed,
                achievement_status=GoalAchievement.achieved,
                start_date=dt.date(2026, 5, 5),
            ),
            GoalRecord(
                id="goal-assisted",
                description="Moves safely to assisted living",
                need_ids=("need-safety", "need-financial"),
                expressed_by=GoalExpressedBy.care_team,
                priority=GoalPriority.high,
                lifecycle_status=GoalLifecycle.completed,
                achievement_status=GoalAchievement.achieved,
                start_date=dt.date(2026, 8, 20),
                target=GoalTargetRecord(due_date=dt.date(2026, 10, 15)),
            ),
        ),
        interventions=(
            InterventionRecord(
                id="sr-pharm",
                kind=InterventionKind.service,
                type=InterventionType.medication_management,
                description="Pharmacist medication review and pill organiser set-up",
                performer=PerformerRecord(
                    kind=PerformerKind.practitioner, name="Lena Fischer, PharmD"
                ),
                status=InterventionStatus.completed,
                authored_at=at("2026-05-06"),
                requested_by="Ruth Adeyemi, RN",
                goal_ids=("goal-pillbox",),
                need_ids=("need-meds",),
            ),
            InterventionRecord(
                id="sr-caregiver",
                kind=InterventionKind.service,
                type=InterventionType.caregiver_support,
                description="Caregiver support group for the son",
                status=InterventionStatus.revoked,
                authored_at=at("2026-05-06"),
                goal_ids=("goal-home",),
                need_ids=("need-meds",),
            ),
            InterventionRecord(
                id="sr-financial",
                kind=InterventionKind.referral,
                type=InterventionType.financial_counseling,
                description="Benefits counselling for assisted-living costs",
                performer=PerformerRecord(
                    kind=PerformerKind.organization, name="Area Agency on Aging"
                ),
                status=InterventionStatus.completed,
                priority=Priority.urgent,
                authored_at=at("2026-08-21"),
                requested_by="Ruth Adeyemi, RN",
                goal_ids=("goal-assisted",),
                need_ids=("need-financial",),
                referral_outcome=ReferralOutcome.service_provided,
            ),
            InterventionRecord(
                id="sr-coordination",
                kind=InterventionKind.service,
                type=InterventionType.care_coordination,
                description="Coordinate the move to assisted living",
                status=InterventionStatus.completed,
                scheduled_start=at("2026-09-01"),
                scheduled_end=at("2026-10-15"),
                authored_at=at("2026-08-21"),
                requested_by="Ruth Adeyemi, RN",
                goal_ids=("goal-assisted",),
                need_ids=("need-safety",),
            ),
        ),
        care_team=(
            CareTeamMemberRecord(
                id="ct-patient", role=CareTeamRole.patient, name="Walter Kowalski"
            ),
            CareTeamMemberRecord(
                id="ct-son",
                role=CareTeamRole.caregiver,
                name="Peter Kowalski",
                telecom="+1-555-0177",
            ),
            CareTeamMemberRecord(id="ct-nurse", role=CareTeamRole.nurse, name="Ruth Adeyemi, RN"),
            CareTeamMemberRecord(
                id="ct-pharmacist", role=CareTeamRole.pharmacist, name="Lena Fischer, PharmD"
            ),
            CareTeamMemberRecord(
                id="ct-old-chw",
                role=CareTeamRole.community_health_worker,
                name="Nia Thompson",
                active=False,
            ),
        ),
        check_ins=(
            CheckInRecord(
                id="ci-ger-1",
                occurred_at=at("2026-08-20", "10:00:00"),
                mode=CheckInMode.in_person,
                performed_by="Ruth Adeyemi, RN",
                notes="Home visit after the fall; re-assessment done, plan revised.",
                goal_progress_ids=("gp-home-1",),
            ),
        ),
        transitions=(
            TransitionRecord(
                id="tr-assisted",
                kind=TransitionKind.level_of_care_change,
                from_setting=CareSetting.home,
                to_setting=CareSetting.assisted_living,
                planned_date=dt.date(2026, 10, 15),
                actual_date=dt.date(2026, 10, 15),
                status=TransitionStatus.completed,
                follow_ups=("Assisted-living nurse takes over medication administration",),
            ),
        ),
        notes=(
            NoteRecord(
                id="note-ger-1",
                author="Ruth Adeyemi, RN",
                text="Case transferred to the assisted-living facility's care coordinator.",
                created_at=at("2026-10-15", "11:30:00"),
            ),
        ),
    )


GOLDEN_CASES = {
    "discharge_home": discharge_home_case,
    "social_work": social_work_case,
    "behavioral_health": behavioral_health_case,
    "geriatric_reassessment": geriatric_reassessment_case,
}
