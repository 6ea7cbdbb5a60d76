"""SMART scope parsing (v1 and v2) and the grant rule: what a client may ask for."""

from __future__ import annotations

import pytest

from service.fhir_auth.scopes import (
    Context,
    Interaction,
    InvalidScope,
    Scope,
    is_covered,
    parse_scopes,
)

C, R, U, D, S = (
    Interaction.create,
    Interaction.read,
    Interaction.update,
    Interaction.delete,
    Interaction.search,
)


@pytest.mark.parametrize(
    ("text", "context", "resource_type", "interactions"),
    [
        ("system/CarePlan.rs", Context.system, "CarePlan", {R, S}),
        ("system/CarePlan.cruds", Context.system, "CarePlan", {C, R, U, D, S}),
        ("patient/Goal.r", Context.patient, "Goal", {R}),
        ("user/ServiceRequest.cud", Context.user, "ServiceRequest", {C, U, D}),
        ("system/*.s", Context.system, "*", {S}),
        ("system/Patient.cd", Context.system, "Patient", {C, D}),
        # v1
        ("system/CarePlan.read", Context.system, "CarePlan", {R, S}),
        ("patient/Goal.write", Context.patient, "Goal", {C, U, D}),
        ("user/*.*", Context.user, "*", {C, R, U, D, S}),
        ("system/Condition.*", Context.system, "Condition", {C, R, U, D, S}),
    ],
)
def test_valid_scopes(
    text: str, context: Context, resource_type: str, interactions: set[Interaction]
) -> None:
    scope = Scope.parse(text)
    assert scope.context is context
    assert scope.resource_type == resource_type
    assert scope.interactions == interactions
    assert scope.text == text


@pytest.mark.parametrize(
    "text",
    [
        "system/CarePlan.sr",  # out of order
        "system/CarePlan.rr",  # repeated
        "system/CarePlan.x",
        "system/CarePlan.",
        "system/CarePlan",
        "admin/CarePlan.rs",  # no such context
        "system/careplan.rs",  # not a resource type
        "system/CarePlan.rs?category=x",  # granular: refused rather than widened
        "system/CarePlan.readwrite",
        "system/**.rs",
        " system/CarePlan.rs",
        "openid",  # not a resource scope
        "",
    ],
)
def test_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(InvalidScope):
        Scope.parse(text)


def test_v1_and_v2_spellings_are_the_same_grant() -> None:
    assert Scope.parse("system/Goal.read").v2 == "system/Goal.rs"
    assert Scope.parse("system/Goal.write").v2 == "system/Goal.cud"
    assert Scope.parse("system/Goal.*").v2 == "system/Goal.cruds"


def test_non_resource_scopes_are_ignored_and_strictness_decides_the_rest() -> None:
    text = "openid fhirUser launch/patient launch offline_access system/Goal.rs profile"
    assert [s.text for s in parse_scopes(text, strict=True)] == ["system/Goal.rs"]
    with pytest.raises(InvalidScope):
        parse_scopes("system/Goal.rs email", strict=True)
    # Another issuer's unknown scopes grant nothing, and do not void the token.
    assert [s.text for s in parse_scopes("email system/Goal.rs", strict=False)] == [
        "system/Goal.rs"
    ]


@pytest.mark.parametrize(
    ("requested", "allowed", "covered"),
    [
        ("system/Goal.rs", ["system/Goal.rs"], True),
        ("system/Goal.r", ["system/Goal.rs"], True),
        ("system/Goal.rs", ["system/Goal.r", "system/Goal.s"], True),  # union
        ("system/Goal.rs", ["system/*.read"], True),
        ("system/Goal.rs", ["system/Goal.r"], False),
        ("system/*.r", ["system/Goal.r", "system/CarePlan.r"], False),
        ("patient/Goal.r", ["system/Goal.r"], False),
        ("system/Goal.r", ["patient/Goal.r"], False),
        ("system/Goal.write", ["system/Goal.cu"], False),
        ("system/Goal.cud", ["system/Goal.write"], True),
    ],
)
def test_is_covered(requested: str, allowed: list[str], covered: bool) -> None:
    assert is_covered(Scope.parse(requested), [Scope.parse(a) for a in allowed]) is covered
