"""US Core CareTeam (anyone's) -> care team members of a case."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mappings.canonical import CARE_TEAM_ROLE_SYSTEM
from mappings.case_model import CareTeamMemberRecord
from mappings.concept_maps import CARE_TEAM_ROLE_BY_CODE
from mappings.fhir_datatypes import first_coding
from mappings.vocabulary import CareTeamRole


def member_role(roles: object) -> CareTeamRole:
    """Our own role code, else a standard code we map, else `other`."""
    for concept in roles if isinstance(roles, list) else ():
        own = first_coding(concept, CARE_TEAM_ROLE_SYSTEM)
        if own and own.get("code") in CareTeamRole.__members__:
            return CareTeamRole(own["code"])
        for item in concept.get("coding") or ():
            key = (item.get("system"), item.get("code"))
            if key in CARE_TEAM_ROLE_BY_CODE:
                return CARE_TEAM_ROLE_BY_CODE[key]
    return CareTeamRole.other


def member_records(resource: Mapping[str, Any]) -> tuple[CareTeamMemberRecord, ...]:
    """Members with a name; what the case does not hold of them stays in the extras."""
    contained = {c.get("id"): c for c in resource.get("contained") or () if isinstance(c, Mapping)}
    members = []
    for index, participant in enumerate(resource.get("participant") or ()):
        member = participant.get("member") or {}
        name = member.get("display")
        if not name:
            continue
        target = member.get("reference") or ""
        # A participant without an element id gets a stable one from its position.
        member_id = participant.get("id") or f"participant-{index + 1}"
        person = contained.get(target[1:], {}) if target.startswith("#") else {}
        telecom = [t.get("value") for t in person.get("telecom") or () if t.get("value")]
        members.append(
            CareTeamMemberRecord(
                id=member_id,
                role=member_role(participant.get("role")),
                name=name,
                telecom=telecom[0] if telecom else None,
                active=person.get("active", True),
            )
        )
    return tuple(members)
