"""The enforcement API the /fhir layer calls: allows, require and compartment."""

from __future__ import annotations

import pytest

from service.errors import Forbidden, Unauthenticated
from service.fhir_auth import FhirPrincipal, Interaction, Scope, ScopeForbidden
from service.fhir_auth.principal import principal_from_claims


def principal(*scopes: str, patient: str | None = None) -> FhirPrincipal:
    return FhirPrincipal("app", tuple(Scope.parse(s) for s in scopes), patient)


def test_interaction_letters() -> None:
    assert [i.value for i in Interaction] == ["c", "r", "u", "d", "s"]


def test_system_scopes_allow_any_patient() -> None:
    p = principal("system/CarePlan.rs")
    assert p.allows("CarePlan", Interaction.read)
    assert not p.allows("CarePlan", Interaction.update)
    assert not p.allows("Goal", Interaction.read)
    p.require("CarePlan", Interaction.read, patient_id="p1")
    p.require("CarePlan", Interaction.read)
    assert p.compartment("CarePlan", Interaction.search) is None
    with pytest.raises(ScopeForbidden, match="update of CarePlan"):
        p.require("CarePlan", Interaction.update, patient_id="p1")
    with pytest.raises(Forbidden):
        p.compartment("Goal", Interaction.search)


def test_patient_scopes_are_confined_to_the_context_patient() -> None:
    p = principal("patient/CarePlan.rs", patient="p1")
    p.require("CarePlan", Interaction.read, patient_id="p1")
    with pytest.raises(ScopeForbidden, match="compartment of patient p1"):
        p.require("CarePlan", Interaction.read, patient_id="p2")  # cross-patient
    with pytest.raises(ScopeForbidden):
        p.require("CarePlan", Interaction.read)  # patient unknown: cannot confirm
    assert p.compartment("CarePlan", Interaction.search) == "p1"
    assert p.allows("CarePlan", Interaction.read)


def test_patient_scopes_without_a_context_patient_allow_nothing() -> None:
    p = principal("patient/*.cruds")
    assert not p.allows("CarePlan", Interaction.read)
    with pytest.raises(ScopeForbidden):
        p.require("CarePlan", Interaction.read, patient_id="p1")
    with pytest.raises(ScopeForbidden):
        p.compartment("CarePlan", Interaction.search)


def test_a_system_scope_lifts_the_patient_confinement() -> None:
    p = principal("patient/*.rs", "system/Goal.s", patient="p1")
    assert p.compartment("Goal", Interaction.search) is None
    assert p.compartment("CarePlan", Interaction.search) == "p1"
    p.require("Goal", Interaction.search, patient_id="p2")
    with pytest.raises(ScopeForbidden):
        p.require("Goal", Interaction.read, patient_id="p2")


def test_user_scopes_are_unconfined_and_wildcards_match_every_type() -> None:
    p = principal("user/*.read")
    p.require("Provenance", Interaction.search, patient_id="p9")
    assert p.compartment("Patient", Interaction.read) is None
    with pytest.raises(ScopeForbidden):
        p.require("Provenance", Interaction.create)


def test_the_forbidden_error_is_a_403_naming_the_interaction() -> None:
    with pytest.raises(ScopeForbidden) as raised:
        principal().require("Goal", Interaction.delete, patient_id="p1")
    assert raised.value.status == 403
    assert raised.value.extra == {"resource_type": "Goal", "interaction": "delete"}


def test_principal_from_claims() -> None:
    p = principal_from_claims(
        {"sub": "u1", "scope": "openid patient/Goal.rs bogus", "patient": "p1"}
    )
    assert p == FhirPrincipal("u1", (Scope.parse("patient/Goal.rs"),), "p1")
    listed = principal_from_claims({"client_id": "c1", "scope": ["system/Goal.r"]})
    assert listed.subject == "c1"
    assert listed.scopes == (Scope.parse("system/Goal.r"),)
    assert principal_from_claims({"sub": "u1"}).scopes == ()
    with pytest.raises(Unauthenticated):
        principal_from_claims({"scope": "system/Goal.r"})
