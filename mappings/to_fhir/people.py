"""Who acts in the service -> US Core Practitioner, or the service's own Organization.

A change records its actor as `user:<sub>`, `apikey:<name>`, ... (service/auth). Such an id is
not a clinician and never leaves the service as a display. Instead:

- an actor an admin gave a professional identity (a `PersonRecord`: name, NPI optional) is a
  US Core Practitioner, with the NPI (`http://hl7.org/fhir/sid/us-npi`) where known and
  CaseBridge's own identifier always; its id is derived from the actor, so every case names
  the same resource;
- an actor without one (a system's API key, the bootstrap key, a SMART client, a scheduled
  job, a user no admin has described) is the service itself: the Organization CaseBridge,
  which Provenance already names as transmitter.

US Core 6.1 allows both targets where the case names people: ServiceRequest.requester
(us-core-practitioner must-support, us-core-organization allowed), CarePlan.author and
CarePlan.activity.detail.performer (Practitioner | Organization among others). A string that is
not an actor id (a name received from an EHR, or typed by a planner) stays a display.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from mappings.canonical import IDENTIFIER_SYSTEM, NPI_SYSTEM, profiles_for
from mappings.case_model import CaseRecord, PersonRecord
from mappings.fhir_datatypes import JsonDict, compact, reference
from mappings.narrative import generated_narrative

ACTOR_ID = re.compile(r"^(user|apikey|client|schedule):\S+$")
"""The ids the service records for who acted: an OIDC user, an API key (service/auth/deps.py),
a SMART client on /fhir, a scheduled job."""

SERVICE_ORGANIZATION_ID = "casebridge"
SERVICE_ORGANIZATION_NAME = "CaseBridge"
_PRACTITIONER_NAMESPACE = uuid.UUID("0b9a4c0e-63c4-4f57-8a43-2f5c6c1e6d31")

# Who acts and what resource stands for them: these are shared by every case that names them.
PEOPLE_TYPES = frozenset({"Practitioner", "Organization"})


def is_actor(value: str) -> bool:
    return ACTOR_ID.match(value) is not None


def practitioner_id(actor: str) -> str:
    """The Practitioner id of an actor: a UUID5, so it says nothing of the key or user name."""
    return str(uuid.uuid5(_PRACTITIONER_NAMESPACE, actor))


def person_name(person: PersonRecord) -> str:
    return " ".join((*person.given_names, person.family_name))


def practitioner_resource(person: PersonRecord) -> JsonDict:
    """US Core Practitioner: identifier (NPI slice where known) and name.family, both 1..*."""
    own_id = practitioner_id(person.actor)
    identifiers = [{"system": NPI_SYSTEM, "value": person.npi}] if person.npi else []
    identifiers.append({"system": IDENTIFIER_SYSTEM["Practitioner"], "value": own_id})
    return compact(
        resourceType="Practitioner",
        id=own_id,
        meta={"profile": profiles_for("Practitioner")},
        text=generated_narrative(person_name(person), [("NPI", person.npi)]),
        identifier=identifiers,
        active=True,
        name=[
            compact(
                text=person_name(person),
                family=person.family_name,
                given=list(person.given_names) or None,
            )
        ],
    )


def service_organization_resource() -> JsonDict:
    """US Core Organization: active, name and an identifier (CaseBridge's own; no NPI)."""
    return {
        "resourceType": "Organization",
        "id": SERVICE_ORGANIZATION_ID,
        "meta": {"profile": profiles_for("Organization")},
        "text": generated_narrative(SERVICE_ORGANIZATION_NAME, []),
        "identifier": [
            {"system": IDENTIFIER_SYSTEM["Organization"], "value": SERVICE_ORGANIZATION_ID}
        ],
        "active": True,
        "name": SERVICE_ORGANIZATION_NAME,
    }


def actor_reference(value: str, people: Mapping[str, PersonRecord]) -> JsonDict:
    """The Reference for whoever `value` names (see the module doc)."""
    person = people.get(value)
    if person is not None:
        return reference(
            f"Practitioner/{practitioner_id(value)}", person_name(person), type_="Practitioner"
        )
    if is_actor(value):
        return reference(
            f"Organization/{SERVICE_ORGANIZATION_ID}",
            SERVICE_ORGANIZATION_NAME,
            type_="Organization",
        )
    return reference(display=value)


def case_actors(case: CaseRecord) -> list[str]:
    """Every actor id the case's resources name, in a stable order."""
    named: Iterable[str | None] = (
        case.manager,
        *(i.requested_by for i in case.interventions),
        *(c.performed_by for c in case.check_ins),
    )
    return sorted({value for value in named if value and is_actor(value)})


def people_resources(case: CaseRecord) -> list[JsonDict]:
    """The Organization (if any actor lacks an identity) and the Practitioners the case names."""
    people = {p.actor: p for p in case.people}
    actors = case_actors(case)
    resources = [service_organization_resource()] if any(a not in people for a in actors) else []
    resources += [practitioner_resource(people[a]) for a in actors if a in people]
    return resources


def match_identifier(resource: Mapping[str, Any]) -> tuple[str, str]:
    """The (system, value) a Practitioner or Organization is created on or matched at an EHR
    by: its NPI where it has one (the EHR may know the clinician already), else CaseBridge's."""
    own = None
    for identifier in resource.get("identifier") or ():
        system, value = identifier.get("system"), identifier.get("value")
        if system == NPI_SYSTEM and value:
            return NPI_SYSTEM, str(value)
        if system == IDENTIFIER_SYSTEM[resource["resourceType"]] and value:
            own = (str(system), str(value))
    if own is None:
        raise ValueError(f"{resource['resourceType']}/{resource.get('id')} has no identifier")
    return own
