"""The benchmark script still runs (figures only; nothing here looks at timing)."""

from __future__ import annotations

import pytest

from bench.mapping_throughput import main, make_cases


def test_bench_cases_have_distinct_ids() -> None:
    cases = make_cases(9)
    assert len({c.id for c in cases}) == 9
    assert len({c.patient.id for c in cases}) == 9


def test_bench_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    main(["4", "--runs", "1", "--compare"])
    out = capsys.readouterr().out
    for label in ("projection", "floor", "ratio to floor", "models+dump", "import"):
        assert label in out
