"""Base FHIR R4 structure below what a profile snapshot spells out.

A profile's snapshot lists the resource's own elements, but not the insides of most datatypes:
`CarePlan.category` is a CodeableConcept and the snapshot stops there. Below that point the
checker walks the JSON with the element table of fhirpathpy's R4 model (the same model the
invariants are evaluated with), and reports:

- properties that R4 does not define for the datatype (`coding[0].cdoe`);
- JSON of the wrong kind for a primitive (a number where a `code` is expected);
- ele-1, "All FHIR elements must have a @value or children": `null`, `{}`, `[]`, `""` or an
  object holding only `id`. fhirpathpy does not implement `hasValue()`, so ele-1 is checked here
  in Python rather than with its FHIRPath expression;
- ext-1 on every Extension found below the snapshot, evaluated with fhirpathpy.

The model carries no cardinalities, so array-versus-single is not checked below the snapshot.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, Final

from fhirpathpy.models import models as fhirpath_models

from fhir_profiles.checker.invariants import Invariant, InvariantEvaluationError, compile_invariant
from fhir_profiles.checker.issues import IssueCode

_MODEL: Final = fhirpath_models["r4"]
_PATH_TO_TYPE: Final[dict[str, str]] = _MODEL["path2Type"]
_TYPE_TO_PARENT: Final[dict[str, str]] = _MODEL["type2Parent"]
_DEFINED_ELSEWHERE: Final[dict[str, str]] = _MODEL["pathsDefinedElsewhere"]

_STRING_PRIMITIVES: Final = frozenset(
    {
        "string", "code", "id", "uri", "url", "canonical", "oid", "uuid", "markdown",
        "base64Binary", "instant", "date", "dateTime", "time", "xhtml",
        "System.String",
    }
)  # fmt: skip
_INTEGER_PRIMITIVES: Final = frozenset({"integer", "unsignedInt", "positiveInt"})
PRIMITIVE_TYPES: Final = _STRING_PRIMITIVES | _INTEGER_PRIMITIVES | {"boolean", "decimal"}

_YEAR: Final = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TIME: Final = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_ZONE: Final = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_MONTH_DAY: Final = r"(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
# The value regexes of the FHIR R4 primitive types (http://hl7.org/fhir/R4/datatypes.html).
PRIMITIVE_PATTERNS: Final[dict[str, re.Pattern[str]]] = {
    name: re.compile(pattern)
    for name, pattern in {
        "date": rf"{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?",
        "dateTime": rf"{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T{_TIME}{_ZONE})?)?)?",
        "instant": rf"{_YEAR}-{_MONTH_DAY}T{_TIME}{_ZONE}",
        "time": _TIME,
        "id": r"[A-Za-z0-9\-\.]{1,64}",
        "code": r"[^\s]+(\s[^\s]+)*",
        "oid": r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+",
        "uuid": r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "uri": r"\S*",
        "url": r"\S*",
        "canonical": r"\S*",
        "base64Binary": r"(\s*([0-9a-zA-Z\+/=]){4}\s*)+",
    }.items()
}
_INTEGER_RANGES: Final = {
    "integer": (-(2**31), 2**31 - 1),
    "unsignedInt": (0, 2**31 - 1),
    "positiveInt": (1, 2**31 - 1),
}

EXT_1: Final[Invariant] = compile_invariant(
    {
        "key": "ext-1",
        "severity": "error",
        "human": "Must have either extensions or value[x], not both",
        "expression": "extension.exists() != value.exists()",
    }
)

Report = Callable[[IssueCode, str, str], None]
"""report(code, expression, message); `not-supported` findings are warnings, the rest errors."""


@functools.cache
def _backbone_paths() -> frozenset[str]:
    """Element paths with children of their own (BackboneElements), e.g. `CarePlan.activity`."""
    paths: set[str] = set()
    for path in _PATH_TO_TYPE:
        parts = path.split(".")
        paths.update(".".join(parts[:end]) for end in range(2, len(parts)))
    return frozenset(paths)


def is_resource_type(name: str) -> bool:
    return name in _TYPE_TO_PARENT and _ancestor_is(name, "Resource")


@functools.cache
def resource_type_names() -> frozenset[str]:
    """Every R4 resource type (and the abstract Resource and DomainResource)."""
    return frozenset(name for name in _TYPE_TO_PARENT if _ancestor_is(name, "Resource"))


def _ancestor_is(type_name: str, ancestor: str) -> bool:
    current: str | None = type_name
    while current is not None:
        if current == ancestor:
            return True
        current = _TYPE_TO_PARENT.get(current)
    return False


@functools.cache
def element_type(context: str, key: str) -> str | None:
    """The type (or backbone path) of property `key` in `context`; None when R4 has no such element.

    `context` is a type name (`Coding`, `CarePlan`) or a backbone path (`CarePlan.activity`).
    Inherited elements are found through the type's ancestors (`Patient.id` -> `Resource.id`).
    The result is a datatype name, or a backbone path for backbone elements.
    """
    current: str | None = context
    while current is not None:
        path = f"{current}.{key}"
        if path in _DEFINED_ELSEWHERE:
            return _DEFINED_ELSEWHERE[path]
        if path in _PATH_TO_TYPE:
            return _PATH_TO_TYPE[path]
        if path in _backbone_paths():
            return path
        current = _TYPE_TO_PARENT.get(current)
    return None


def is_element(context: str, key: str) -> bool:
    return element_type(context, key) is not None


def _json_kind_error(type_name: str, value: Any) -> str | None:
    if type_name == "boolean":
        ok = isinstance(value, bool)
    elif type_name in _INTEGER_PRIMITIVES:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif type_name == "decimal":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif type_name in _STRING_PRIMITIVES:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, dict)
    if ok:
        return None
    shown = "an object" if isinstance(value, dict) else type(value).__name__
    return f"a {type_name} cannot be {shown} in JSON"


def check_primitive(type_name: str, value: Any, expression: str, report: Report) -> None:
    """JSON kind and non-emptiness of one primitive value (None = only an `_x` part)."""
    if value is None:
        return
    problem = _json_kind_error(type_name, value)
    if problem is not None:
        report("structure", expression, problem)
    elif value == "" or (isinstance(value, str) and not value.strip()):
        report("structure", expression, "ele-1: a primitive value cannot be empty")
    elif type_name in PRIMITIVE_PATTERNS and not PRIMITIVE_PATTERNS[type_name].fullmatch(value):
        report("value", expression, f"{value!r} is not a valid FHIR {type_name}")
    elif type_name in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[type_name]
        if not low <= value <= high:
            report("value", expression, f"{value} is out of range for a FHIR {type_name}")


def empty_message(value: Any) -> str | None:
    if value is None:
        return "ele-1: null is not a FHIR value (leave the element out)"
    if value == {} or value == []:
        return f"ele-1: an element must have a value or children (found {value!r})"
    if isinstance(value, dict) and set(value) == {"id"}:
        return "ele-1: an element must have a value or children (found only `id`)"
    return None


def check_value(type_name: str, value: Any, expression: str, report: Report) -> None:
    """A value of `type_name` (datatype, backbone path or resource type), recursively."""
    empty = empty_message(value)
    if empty is not None:
        report("structure", expression, empty)
        return
    if type_name in PRIMITIVE_TYPES:
        check_primitive(type_name, value, expression, report)
        return
    if type_name == "Resource":  # contained resources carry their own type
        type_name = value.get("resourceType", "") if isinstance(value, dict) else ""
        if not is_resource_type(type_name):
            report("structure", expression, f"{type_name!r} is not an R4 resource type")
            return
    problem = _json_kind_error(type_name, value)
    if problem is not None:
        report("structure", expression, problem)
        return
    check_object(type_name, value, expression, report)


def check_object(context: str, node: dict[str, Any], expression: str, report: Report) -> None:
    """Every property of a JSON object of type (or backbone path) `context`."""
    for key, value in node.items():
        if key == "resourceType" and is_resource_type(context):
            continue
        check_property(context, node, key, value, f"{expression}.{key.lstrip('_')}", report)
    if context == "Extension":
        try:
            holds = EXT_1.holds(node, "Extension", node)
        except InvariantEvaluationError as error:
            report("not-supported", expression, f"not evaluated: {error}")
            return
        if not holds:
            report("invariant", expression, f"ext-1: {EXT_1.human} ({EXT_1.expression})")


def check_property(
    context: str, node: dict[str, Any], key: str, value: Any, expression: str, report: Report
) -> None:
    """One property `key` of `node`; `expression` locates the property itself."""
    base_key = key[1:] if key.startswith("_") else key
    type_name = element_type(context, base_key)
    if type_name is None:
        report("structure", expression, f"{base_key} is not an element of {context} in FHIR R4")
        return
    if key.startswith("_"):
        if type_name not in PRIMITIVE_TYPES:
            report("structure", expression, f"_{base_key}: only primitives have a `_` part")
            return
        # The `_x` part holds the primitive's id and extensions; nulls align with the values.
        _check_each(value, "Element", expression, report, nulls_allowed=True)
        return
    _check_each(value, type_name, expression, report, nulls_allowed="_" + key in node)


def _check_each(
    value: Any, type_name: str, expression: str, report: Report, *, nulls_allowed: bool
) -> None:
    if not isinstance(value, list):
        check_value(type_name, value, expression, report)
        return
    if not value:
        report("structure", expression, "ele-1: an array cannot be empty (leave it out)")
    for index, item in enumerate(value):
        if item is None and nulls_allowed:
            continue
        check_value(type_name, item, f"{expression}[{index}]", report)
