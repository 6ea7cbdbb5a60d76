"""The case's care team -> US Core CareTeam.

Members other than the patient have no Practitioner or RelatedPerson resource of their own in
the case, so each is a contained resource holding the name and telecom the case knows; the
participant's element id is the member's id, so the inverse gets it back.
"""

from __future__ import annotations

from mappings.canonical import CARE_TEAM_ROLE_SYSTEM, IDENTIFIER_SYSTEM, profiles_for
from mappings.case_model import CareTeamMemberRecord, CaseRecord
from mappings.concept_maps import CARE_TEAM_ROLE
from mappings.fhir_datatypes import JsonDict, codeable_concept, coding, compact, reference
from mappings.narrative import generated_narrative
from mappings.preserved_elements import restore_elements
from mappings.to_fhir.context import CaseContext, care_team_id
from mappings.to_fhir.element_order import element_order
from mappings.vocabulary import CareTeamRole, CaseStatus


def member_role(role: CareTeamRole) -> JsonDict:
    """The standard role code if one fits, plus CaseBridge's own code so the role round-trips."""
    entry = CARE_TEAM_ROLE[role]
    codings = [coding(entry.system, entry.code, entry.code_display)] if entry.code else []
    codings.append(coding(CARE_TEAM_ROLE_SYSTEM, role.value, entry.display))
    return codeable_concept(codings)


def telecom(value: str) -> JsonDict:
    return {"system": "email" if "@" in value else "phone", "value": value}


def contained_member(member: CareTeamMemberRecord, context: CaseContext) -> JsonDict:
    caregiver = member.role is CareTeamRole.caregiver
    return compact(
        resourceType="RelatedPerson" if caregiver else "Practitioner",
        id=member.id,
        active=None if member.active else False,
        patient=context.subject if caregiver else None,
        name=[{"text": member.name}],
        telecom=[telecom(member.telecom)] if member.telecom else None,
    )


def participant(member: CareTeamMemberRecord, context: CaseContext) -> JsonDict:
    if member.role is CareTeamRole.patient:
        who = reference(context.subject.get("reference"), member.name)
    else:
        who = reference(f"#{member.id}", member.name)
    return {"id": member.id, "role": [member_role(member.role)], "member": who}


def build_care_team(case: CaseRecord, context: CaseContext) -> JsonDict:
    members = case.care_team
    return compact(
        resourceType="CareTeam",
        id=care_team_id(case.id),
        meta={"profile": profiles_for("CareTeam")},
        text=generated_narrative(
            f"Care team of {case.title or 'the case'}",
            [],
            [("Members", [f"{m.name} ({CARE_TEAM_ROLE[m.role].display})" for m in members])],
        ),
        contained=[
            contained_member(m, context) for m in members if m.role is not CareTeamRole.patient
        ],
        identifier=[{"system": IDENTIFIER_SYSTEM["CareTeam"], "value": care_team_id(case.id)}],
        status="inactive" if case.status is CaseStatus.closed else "active",
        subject=context.subject,
        participant=[participant(m, context) for m in members],
    )


def care_team_resource(case: CaseRecord, context: CaseContext) -> JsonDict:
    extras = case.fhir_extras.get("CareTeam") or {}
    return restore_elements(build_care_team(case, context), extras, element_order("CareTeam"))
