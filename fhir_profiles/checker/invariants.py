"""FHIRPath invariants (ElementDefinition.constraint), compiled once with fhirpathpy.

fhirpathpy 2.2 compiles every expression in the US Core snapshots, but raises
`Not implemented` at evaluation time for some functions. A constraint that calls one of them is
marked not evaluable up front and skipped; the reasons are listed in NOT_EVALUABLE_FUNCTIONS.
ele-1 is one of them; `fhir_profiles.checker.structure` checks what it means (no empty element)
without FHIRPath.

One published R4 expression is evaluated in its corrected form: R4's dom-3 applies the
*function* `as()` to a collection (`descendants().as(canonical)`), which FHIRPath defines on a
singleton only, so fhirpathpy fails on any resource with `contained`. FHIR R5 fixed the
expression by writing `ofType()`; CORRECTED_EXPRESSIONS holds that correction, applied by exact
match only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models as fhirpath_models

from fhir_profiles.artifacts import JSONObject

NOT_EVALUABLE_FUNCTIONS: Final = {
    "htmlChecks": "XHTML narrative rules (txt-1, txt-2); fhirpathpy does not implement it",
    "hasValue": "used by ele-1; fhirpathpy does not implement it (JSON has no empty elements "
    "once parsed by a FHIR model)",
    "resolve": "needs the referenced resources (ctm-1, provenance-1); the checker sees one",
    "conformsTo": "needs profile validation of another resource",
    "memberOf": "needs a terminology server",
}
_DOM_3_R4: Final = (
    "contained.where((('#'+id in (%resource.descendants().reference"
    " | %resource.descendants().as(canonical) | %resource.descendants().as(uri)"
    " | %resource.descendants().as(url))) or descendants().where(reference = '#').exists()"
    " or descendants().where(as(canonical) = '#').exists()"
    " or descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()"
)
_DOM_3_R5: Final = (
    "contained.where(((id.exists() and ('#'+id in (%resource.descendants().reference"
    " | %resource.descendants().ofType(canonical) | %resource.descendants().ofType(uri)"
    " | %resource.descendants().ofType(url)))) or descendants().where(reference = '#').exists()"
    " or descendants().where(ofType(canonical) = '#').exists()"
    " or descendants().where(ofType(canonical) = '#').exists()).not()).trace('unmatched', id)"
    ".empty()"
)
CORRECTED_EXPRESSIONS: Final = {_DOM_3_R4: _DOM_3_R5}
"""Published expression -> the expression evaluated instead (the later FHIR release's fix)."""

_NOT_EVALUABLE_CALL: Final = re.compile(r"\b(" + "|".join(NOT_EVALUABLE_FUNCTIONS) + r")\s*\(")
_R4_MODEL: Final = fhirpath_models["r4"]

FhirPathEvaluator = Callable[[Any, dict[str, Any]], list[Any]]


class InvariantEvaluationError(RuntimeError):
    """fhirpathpy failed on an expression it had compiled."""


@dataclass(frozen=True)
class Invariant:
    key: str
    severity: str
    human: str
    expression: str
    evaluator: FhirPathEvaluator | None
    not_evaluable_because: str | None

    def holds(self, focus: Any, type_path: str, resource: JSONObject) -> bool:
        """True when the expression yields exactly `true` on the focus element.

        `type_path` (a type name like `Extension`, or an element path like `Goal.target`) lets
        fhirpathpy's R4 model resolve choice elements such as `value` in ext-1.
        """
        if self.evaluator is None:
            raise InvariantEvaluationError(f"{self.key} is not evaluable")
        node = ResourceNode.create_node(focus, type_path)  # type: ignore[no-untyped-call]
        try:
            result = self.evaluator(node, {"resource": resource, "rootResource": resource})
        except Exception as error:  # fhirpathpy raises bare Exceptions
            raise InvariantEvaluationError(f"{self.key}: {error}") from error
        return result == [True]


def _ignore_trace(label: str, value: Any) -> None:
    """dom-3 calls trace(); fhirpathpy would print it to stdout."""


@functools.cache
def _compile(expression: str) -> tuple[FhirPathEvaluator | None, str | None]:
    unsupported = _NOT_EVALUABLE_CALL.search(expression)
    if unsupported:
        return None, f"{unsupported.group(1)}(): {NOT_EVALUABLE_FUNCTIONS[unsupported.group(1)]}"
    try:
        evaluator: FhirPathEvaluator = fhirpathpy.compile(
            CORRECTED_EXPRESSIONS.get(expression, expression), _R4_MODEL, {"traceFn": _ignore_trace}
        )
    except Exception as error:  # a parse error in a published profile must not stop checking
        return None, f"fhirpathpy cannot compile it: {error}"
    return evaluator, None


def compile_invariant(constraint: JSONObject) -> Invariant:
    """Compiles once per distinct expression (ele-1, ext-1 ... recur on every element)."""
    expression = constraint.get("expression", "")
    evaluator, reason = _compile(expression) if expression else (None, "no expression")
    return Invariant(
        key=constraint["key"],
        severity=constraint["severity"],
        human=constraint.get("human", ""),
        expression=expression,
        evaluator=evaluator,
        not_evaluable_because=reason,
    )
