"""Profiles are compiled once; checking a resource stays well under a few milliseconds.

Timed in process CPU time, so other work on a busy machine does not make the tests flaky.
"""

from __future__ import annotations

import statistics
import time

from fhir_profiles.artifacts import us_core_profile_for
from fhir_profiles.checker import check, check_all, compiled_profile
from tests.profiles.example_files import example


def test_profile_is_compiled_once() -> None:
    canonical = us_core_profile_for("CarePlan", "7.0.0") or ""
    assert compiled_profile(canonical) is compiled_profile(canonical)
    url = canonical.partition("|")[0]
    assert compiled_profile(url) is compiled_profile(canonical)  # unversioned = newest


def test_checking_one_resource_takes_well_under_a_few_milliseconds() -> None:
    resource = example("Condition-health-concern-example.json")  # the largest example
    profile = us_core_profile_for("Condition", "7.0.0") or ""
    check(resource, profile)  # warm the caches
    timings = []
    for _ in range(50):
        start = time.process_time()
        check(resource, profile)
        timings.append(time.process_time() - start)
    assert statistics.median(timings) < 0.003


def test_check_all_of_three_profiles_stays_cheap() -> None:
    resource = example("CarePlan-colonoscopy.json")
    check_all(resource)
    start = time.process_time()
    for _ in range(20):
        check_all(resource)
    assert (time.process_time() - start) / 20 < 0.010
