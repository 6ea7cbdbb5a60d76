"""Throughput of the case -> FHIR projection, against the floor of bare fhir.resources validation.

    /work/venv/bin/python -m bench.mapping_throughput 200            # 200 cases, 5 runs
    /work/venv/bin/python -m bench.mapping_throughput 200 --runs 9 --compare

The cases are the four golden cases (`tests/mappings/cases.py`), cycled with fresh ids.
Each run times:

- **projection**: `mappings.projection.project_case` for every case: build the dicts,
  validate each resource once with fhir.resources, serialise with orjson;
- **floor**: `model_validate` of the very same output dicts, nothing else. Validation is the
  one cost the projection cannot avoid (PERFORMANCE-NOTES), so `projection / floor` is the
  overhead of the mapping itself; the target is at most 1.5x.

`--compare` also times the way the notes warn against, building the fhir.resources models and
serialising with `model_dump_json`, and the inverse (`import_case` of each projected case).
The script prints figures only; nothing here passes or fails on timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from mappings.case_model import CaseRecord
from mappings.fhir import resource_model
from mappings.from_fhir import import_case
from mappings.projection import case_resources, project_case
from tests.mappings.cases import GOLDEN_CASES

IMPORTED_AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def make_cases(count: int) -> list[CaseRecord]:
    """`count` cases cycled from the golden ones, each with its own case and patient id."""
    templates = [factory() for factory in GOLDEN_CASES.values()]
    cases = []
    for index in range(count):
        template = templates[index % len(templates)]
        patient = template.patient.model_copy(update={"id": f"bench-patient-{index}"})
        cases.append(template.model_copy(update={"id": f"bench-case-{index}", "patient": patient}))
    return cases


def timed(work: Callable[[], Any]) -> float:
    """CPU seconds of this process: other load on a shared machine disturbs it far less than
    wall time (the mapping is single-threaded and does no I/O, so the two agree when idle)."""
    gc.collect()
    start = time.process_time()
    work()
    return time.process_time() - start


def run_projection(cases: Sequence[CaseRecord]) -> None:
    for case in cases:
        project_case(case)


def run_floor(outputs: Sequence[dict[str, Any]]) -> None:
    for resource in outputs:
        resource_model(resource["resourceType"]).model_validate(resource)


def run_import(projected: Sequence[list[dict[str, Any]]]) -> None:
    for resources in projected:
        import_case(resources, IMPORTED_AT)


def run_models_and_dump(outputs: Sequence[dict[str, Any]]) -> None:
    for resource in outputs:
        resource_model(resource["resourceType"]).model_validate(resource).model_dump_json()


def paired_runs(
    first: Callable[[], Any], second: Callable[[], Any], runs: int
) -> tuple[list[float], list[float]]:
    """Times of `first` and `second`, interleaved (order alternating) so drift hits both."""
    a: list[float] = []
    b: list[float] = []
    for run in range(runs):
        if run % 2:
            b.append(timed(second))
            a.append(timed(first))
        else:
            a.append(timed(first))
            b.append(timed(second))
    return a, b


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("cases", type=int, nargs="?", default=200, help="number of cases")
    parser.add_argument("--runs", type=int, default=5, help="runs; the median is reported")
    parser.add_argument("--compare", action="store_true", help="also time model_dump_json")
    args = parser.parse_args(argv)

    cases = make_cases(args.cases)
    outputs = [resource for case in cases for resource in case_resources(case)]
    run_projection(cases[:8])  # warm-up: imports, first validations, caches
    run_floor(outputs[:40])

    projections, floors = paired_runs(
        lambda: run_projection(cases), lambda: run_floor(outputs), args.runs
    )
    projection, floor = statistics.median(projections), statistics.median(floors)
    ratio = statistics.median(p / f for p, f in zip(projections, floors, strict=True))
    resources = len(outputs)
    print(f"cases: {len(cases)}  resources: {resources}  runs: {args.runs} (median, CPU time)")
    print(
        f"projection   {len(cases) / projection:9.1f} cases/s  {resources / projection:9.1f}"
        f" resources/s  {projection * 1e6 / resources:7.1f} us/resource"
    )
    print(
        f"floor        {len(cases) / floor:9.1f} cases/s  {resources / floor:9.1f}"
        f" resources/s  {floor * 1e6 / resources:7.1f} us/resource  (model_validate only)"
    )
    print(f"ratio to floor: {ratio:.2f}x (median of per-run ratios; target <= 1.5x)")
    if args.compare:
        dumps, floors = paired_runs(
            lambda: run_models_and_dump(outputs), lambda: run_floor(outputs), args.runs
        )
        dumped = statistics.median(dumps)
        dump_ratio = statistics.median(d / f for d, f in zip(dumps, floors, strict=True))
        print(
            f"models+dump  {len(cases) / dumped:9.1f} cases/s  {resources / dumped:9.1f}"
            f" resources/s  {dumped * 1e6 / resources:7.1f} us/resource"
            f"  (model_validate + model_dump_json: {dump_ratio:.2f}x the floor)"
        )
        per_case = [case_resources(case) for case in cases]
        imported = statistics.median(timed(lambda: run_import(per_case)) for _ in range(args.runs))
        print(
            f"import       {len(cases) / imported:9.1f} cases/s  {resources / imported:9.1f}"
            f" resources/s  {imported * 1e6 / resources:7.1f} us/resource"
            "  (FHIR -> case: validate, map, regenerate, keep extras)"
        )


if __name__ == "__main__":
    main()
