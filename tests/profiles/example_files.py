"""Shared helpers for the profile checker tests: example files and issue summaries."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any, Final

from fhir_profiles.checker import Issue

DATA_DIR: Final = Path(__file__).parent / "data"
US_CORE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/"
US_CORE_VERSIONS: Final = ("6.1.0", "7.0.0")

US_CORE_EXAMPLES: Final = sorted(path.name for path in DATA_DIR.glob("*.json"))
R4_EXAMPLES: Final = sorted(path.name for path in (DATA_DIR / "r4").glob("*.json"))


@functools.cache
def _parsed(relative_path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA_DIR / relative_path).read_text(encoding="utf-8"))
    return loaded


def example(relative_path: str) -> dict[str, Any]:
    """A fresh copy of an example under tests/profiles/data, free to mutate."""
    return copy.deepcopy(_parsed(relative_path))


def errors(issues: list[Issue]) -> list[Issue]:
    return [issue for issue in issues if issue.severity == "error"]


def where(issues: list[Issue]) -> set[tuple[str, str]]:
    """(code, expression) of each error: what the tests pin down."""
    return {(issue.code, issue.expression) for issue in errors(issues)}
