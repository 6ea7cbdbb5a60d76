"""Golden files: expected FHIR JSON checked in under `tests/mappings/golden/`.

Tests compare the produced JSON with the file byte for byte. To rewrite the files after an
intended mapping change, run the tests with `CASEBRIDGE_REGENERATE_GOLDEN=1`, e.g.

    CASEBRIDGE_REGENERATE_GOLDEN=1 /work/venv/bin/pytest -q tests/mappings

and review the diff (`git diff tests/mappings/golden`) before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

GOLDEN_DIR = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("CASEBRIDGE_REGENERATE_GOLDEN") == "1"


def golden_text(value: Any) -> str:
    """The canonical file form: 2-space indent, element order kept, trailing newline."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n"


def assert_golden(path: Path, value: Any) -> None:
    """`value` equals the golden file at `path` exactly (or rewrites it when regenerating)."""
    text = golden_text(value)
    if REGENERATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing; regenerate with CASEBRIDGE_REGENERATE_GOLDEN=1"
    assert path.read_text(encoding="utf-8") == text, f"{path.name} differs from the golden file"
