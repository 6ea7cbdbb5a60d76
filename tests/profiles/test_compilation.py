"""Profiles are compiled once. What a check costs is measured by `bench/checker_speed.py`,
never asserted here: timings do not belong in pass/fail tests."""

from __future__ import annotations

from fhir_profiles.artifacts import us_core_profile_for
from fhir_profiles.checker import compiled_profile


def test_profile_is_compiled_once() -> None:
    canonical = us_core_profile_for("CarePlan", "7.0.0") or ""
    assert compiled_profile(canonical) is compiled_profile(canonical)
    url = canonical.partition("|")[0]
    assert compiled_profile(url) is compiled_profile(canonical)  # unversioned = newest
