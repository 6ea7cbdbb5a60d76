"""Checking one resource against one compiled profile, driven by its snapshot.

The walk goes down the rule tree, not the JSON: for each element rule it collects the JSON values
the rule governs (its items), sorts sliced items into slices, and checks cardinality, fixed and
pattern values, required bindings and invariants, then descends into children the snapshot
describes (the root, backbone elements, and datatypes the profile expanded).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fhir_profiles.artifacts import JSONObject
from fhir_profiles.checker import references, structure
from fhir_profiles.checker.element_rules import CompiledProfile, ElementRule, Slicing
from fhir_profiles.checker.invariants import Invariant, InvariantEvaluationError
from fhir_profiles.checker.issues import Issue, IssueCode, Severity
from fhir_profiles.checker.terminology import ExpandedValueSet, expand_value_set

# Keys that are not elements: the resource's type, and comments some tools leave in JSON.
_NON_ELEMENT_KEYS = frozenset({"resourceType", "fhir_comments"})


InvariantResults = dict[tuple[str, int, str], "bool | InvariantEvaluationError"]
"""(expression, id of the JSON value, type) -> outcome, shared by the profiles of one check_all:
ele-1's siblings (dom-*, ext-1, gol-1 ...) recur in every US Core version."""

# Each of these is a conjunction of `contained.<...>.empty()` terms, so holds without `contained`.
_HOLD_WITHOUT_CONTAINED = frozenset({"dom-2", "dom-3", "dom-4", "dom-5"})


@dataclass(frozen=True)
class ElementItem:
    """One JSON value an element rule governs, with where it sits in the resource."""

    value: Any
    """The JSON value; None for a primitive that carries only its `_name` extension part."""
    expression: str
    type_name: str | None = None
    """Its datatype, from the rule (or, for a choice, the JSON key); None for backbones."""


@dataclass(frozen=True)
class Occurrence:
    """The items of one element rule (or one slice) under one parent value."""

    rule: ElementRule
    expression: str
    items: list[ElementItem]
    """What the cardinality counts: all items of the element, or those matched to the slice."""
    governed: list[ElementItem]
    """What this rule checks and descends into: for a sliced element, the unmatched items."""
    decidable: bool = True
    """False for a slice whose membership cannot be decided (see slice_is_decidable)."""


@dataclass
class _Walk:
    profile: CompiledProfile
    resource: JSONObject
    invariant_results: InvariantResults
    issues: list[Issue] = field(default_factory=list)

    def report(
        self, severity: Severity, code: IssueCode, expression: str, message: str, rule: ElementRule
    ) -> None:
        self.issues.append(
            Issue(severity, code, expression, message, rule.id, self.profile.canonical)
        )

    def reporter(self, rule: ElementRule) -> structure.Report:
        def report(code: IssueCode, expression: str, message: str) -> None:
            severity: Severity = "warning" if code == "not-supported" else "error"
            self.report(severity, code, expression, message, rule)

        return report

    def value_set(self, reference: str) -> ExpandedValueSet | None:
        return expand_value_set(reference, self.profile.version)


def _items(node: JSONObject, rule: ElementRule, parent_expression: str) -> list[ElementItem]:
    items: list[ElementItem] = []
    for key in rule.json_keys():
        value, extension_part = node.get(key), node.get("_" + key)
        type_name = rule.type_of_key(key)
        if value is None and extension_part is None:
            continue
        if isinstance(value, list) or isinstance(extension_part, list):
            values = value if isinstance(value, list) else []
            count = max(len(values), len(extension_part) if isinstance(extension_part, list) else 0)
            items.extend(
                ElementItem(
                    values[i] if i < len(values) else None,
                    f"{parent_expression}.{key}[{i}]",
                    type_name,
                )
                for i in range(count)
            )
        else:
            items.append(ElementItem(value, f"{parent_expression}.{key}", type_name))
    return items


def matches_pattern(pattern: Any, value: Any) -> bool:
    """FHIR pattern[x] semantics: every part of the pattern is present in the value."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and matches_pattern(part, value[key]) for key, part in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(value, list) and all(
            any(matches_pattern(part, candidate) for candidate in value) for part in pattern
        )
    return isinstance(pattern, bool) == isinstance(value, bool) and bool(pattern == value)


def _codings(value: Any) -> list[JSONObject]:
    if isinstance(value, dict):
        coding = value.get("coding")
        return [c for c in coding if isinstance(c, dict)] if isinstance(coding, list) else [value]
    return []


def _in_value_set(value: Any, value_set: ExpandedValueSet) -> bool:
    if isinstance(value, str):
        return value_set.contains_code(value)
    return any(value_set.contains_coding(c.get("system"), c.get("code")) for c in _codings(value))


def _values_at(value: Any, path: str) -> list[Any]:
    """Plain navigation of a discriminator path (`type`, `coding.code`) through JSON."""
    current = [value]
    for step in path.split(".") if path != "$this" else []:
        following: list[Any] = []
        for node in current:
            found = node.get(step) if isinstance(node, dict) else None
            following.extend(found if isinstance(found, list) else [] if found is None else [found])
        current = following
    return current


def _discriminating_rule(slice_rule: ElementRule, path: str) -> ElementRule | None:
    rule: ElementRule | None = slice_rule
    for step in path.split(".") if path != "$this" else []:
        rule = rule.child(step) if rule is not None else None
    return rule


def _matches_slice(
    item: ElementItem, slice_rule: ElementRule, slicing: Slicing, walk: _Walk
) -> bool:
    """value/pattern discriminators only; exists, type and profile discriminators never match."""
    for kind, path in slicing.discriminators:
        if kind not in ("value", "pattern"):
            return False
        candidates = _values_at(item.value, path)
        target = _discriminating_rule(slice_rule, path)
        if target is not None and target.fixed is not None:
            matched = any(candidate == target.fixed for candidate in candidates)
        elif target is not None and target.pattern is not None:
            matched = any(matches_pattern(target.pattern, candidate) for candidate in candidates)
        elif target is not None and target.required_value_set is not None:
            value_set = walk.value_set(target.required_value_set)
            matched = value_set is not None and any(_in_value_set(c, value_set) for c in candidates)
        elif path == "url" and slice_rule.type_profiles:
            # Extension slices are told apart by the url fixed in the extension's own profile.
            urls = {profile.partition("|")[0] for profile in slice_rule.type_profiles}
            matched = any(candidate in urls for candidate in candidates)
        else:
            matched = False
        if not matched:
            return False
    return True


def slice_is_decidable(slice_rule: ElementRule, slicing: Slicing, walk: _Walk) -> bool:
    """False when the checker cannot tell the slice's members from the rest.

    That is the case for `exists`, `type` and `profile` discriminators, for a discriminating
    element with nothing to compare (no fixed, pattern or binding), and for one bound to a
    ValueSet the shipped files cannot enumerate. Such a slice matches nothing here, so neither
    its minimum nor its must-support flag can be judged; both are left unreported rather than
    reported falsely.
    """
    for kind, path in slicing.discriminators:
        if kind not in ("value", "pattern"):
            return False
        target = _discriminating_rule(slice_rule, path)
        if target is None or (target.fixed is None and target.pattern is None):
            if target is not None and target.required_value_set is not None:
                if walk.value_set(target.required_value_set) is None:
                    return False
            elif not (path == "url" and slice_rule.type_profiles):
                return False
    return True


def occurrences(
    node: JSONObject, rule: ElementRule, expression: str, walk: _Walk, *, all_absent: bool
) -> Iterator[Occurrence]:
    """Each child element of `rule` under `node`, then each of its slices.

    An absent child that cannot be required is yielded only with `all_absent` (for the
    must-support report); checking has nothing to do with it.
    """
    for child in rule.children:
        absent = not any(key in node or "_" + key in node for key in child.json_keys())
        if absent and not all_absent and not child.can_be_required:
            continue
        items = _items(node, child, expression)
        child_expression = f"{expression}.{child.name.removesuffix('[x]')}"
        if child.slicing is None or not child.slices:
            yield Occurrence(child, child_expression, items, items)
            continue
        matched: dict[str, list[ElementItem]] = {s.id: [] for s in child.slices}
        unmatched: list[ElementItem] = []
        for item in items:
            slice_rule = next(
                (s for s in child.slices if _matches_slice(item, s, child.slicing, walk)), None
            )
            (matched[slice_rule.id] if slice_rule else unmatched).append(item)
        yield Occurrence(child, child_expression, items, unmatched)
        for slice_rule in child.slices:
            slice_items = matched[slice_rule.id]
            decidable = slice_is_decidable(slice_rule, child.slicing, walk)
            yield Occurrence(slice_rule, child_expression, slice_items, slice_items, decidable)


def _check_cardinality(occurrence: Occurrence, walk: _Walk) -> None:
    rule, count = occurrence.rule, len(occurrence.items)
    what = f"slice '{rule.slice_name}' of " if rule.slice_name else ""
    if count < rule.min and occurrence.decidable:
        walk.report(
            "error",
            "required",
            occurrence.expression,
            f"{what}{occurrence.expression} requires at least {rule.min} (found {count})",
            rule,
        )
    if rule.max is not None and count > rule.max:
        walk.report(
            "error",
            "structure",
            occurrence.expression,
            f"{what}{occurrence.expression} allows at most {rule.max} (found {count})",
            rule,
        )


def _check_binding(item: ElementItem, rule: ElementRule, walk: _Walk) -> None:
    if rule.required_value_set is None or item.value is None:
        return
    value_set = walk.value_set(rule.required_value_set)
    if value_set is None or _in_value_set(item.value, value_set):
        return  # not enumerable here: documented as not checked
    expression = item.expression
    if isinstance(item.value, dict) and isinstance(item.value.get("coding"), list):
        if len(item.value["coding"]) == 1:
            expression += ".coding[0].code"
    elif isinstance(item.value, dict):
        expression += ".code"
    walk.report(
        "error",
        "code-invalid",
        expression,
        f"{json.dumps(item.value)} is not in the required ValueSet {rule.required_value_set}",
        rule,
    )


def _literal_references(value: Any) -> Iterator[str]:
    """Every Reference.reference string anywhere in the JSON value."""
    if isinstance(value, dict):
        for key, part in value.items():
            if key == "reference" and isinstance(part, str):
                yield part
            else:
                yield from _literal_references(part)
    elif isinstance(value, list):
        for part in value:
            yield from _literal_references(part)


def _every_contained_is_referenced(resource: Any) -> bool:
    """A sufficient condition for dom-3, decided without FHIRPath.

    fhirpathpy evaluates dom-3's `%resource.descendants()` once per contained resource, which
    costs tens of milliseconds on a large resource. When each contained id appears as a `#id`
    Reference.reference somewhere in the resource, dom-3 holds; otherwise fhirpathpy decides.
    """
    contained = resource.get("contained") if isinstance(resource, dict) else None
    if not isinstance(contained, list):
        return True
    referenced = set(_literal_references(resource))
    return all(isinstance(c, dict) and f"#{c.get('id')}" in referenced for c in contained)


def _invariant_holds(
    invariant: Invariant, item: ElementItem, rule: ElementRule, walk: _Walk
) -> bool | InvariantEvaluationError:
    contained = item.value.get("contained") if isinstance(item.value, dict) else True
    if invariant.key in _HOLD_WITHOUT_CONTAINED and not contained:
        return True
    if invariant.key == "dom-3" and _every_contained_is_referenced(item.value):
        return True
    type_path = item.type_name if item.type_name and item.type_name[0].isupper() else None
    type_path = type_path or rule.fhirpath_type
    key = (invariant.expression, id(item.value), type_path)
    if key not in walk.invariant_results:
        try:
            outcome: bool | InvariantEvaluationError = invariant.holds(
                item.value, type_path, walk.resource
            )
        except InvariantEvaluationError as error:
            outcome = error
        walk.invariant_results[key] = outcome
    return walk.invariant_results[key]


def _check_invariants(item: ElementItem, rule: ElementRule, walk: _Walk) -> None:
    if item.value is None:
        return
    for invariant in rule.invariants:
        if invariant.evaluator is None:
            continue
        holds = _invariant_holds(invariant, item, rule, walk)
        if isinstance(holds, InvariantEvaluationError):
            walk.report(
                "warning", "not-supported", item.expression, f"not evaluated: {holds}", rule
            )
        elif not holds:
            walk.report(
                "error",
                "invariant",
                item.expression,
                f"{invariant.key}: {invariant.human} ({invariant.expression})",
                rule,
            )


def _check_json_shape(
    node: JSONObject, key: str, child: ElementRule, expression: str, walk: _Walk
) -> None:
    """Array or not as the base element's max says, and no empty or null values (ele-1)."""
    value = node[key]
    if value is None or value == []:
        # Items are built from values; a null or an empty array yields none to check.
        walk.report("error", "structure", expression, str(structure.empty_message(value)), child)
    elif child.is_array and not isinstance(value, list):
        message = f"{key} repeats in FHIR, so its JSON value must be an array"
        walk.report("error", "structure", expression, message, child)
    elif not child.is_array and isinstance(value, list):
        message = f"{key} does not repeat in FHIR, so its JSON value cannot be an array"
        walk.report("error", "structure", expression, message, child)
    elif isinstance(value, list) and "_" + key not in node:
        for index, entry in enumerate(value):
            if entry is None:
                message = str(structure.empty_message(entry))
                walk.report("error", "structure", f"{expression}[{index}]", message, child)


def _check_properties(node: JSONObject, rule: ElementRule, expression: str, walk: _Walk) -> None:
    """The JSON shape of each property the profile defines here, the `_x` parts of its
    primitives, and properties it does not define."""
    known: dict[str, ElementRule] = {}
    for child in rule.children:
        for key in child.json_keys():
            known[key] = child
    context = rule.structure_context
    for key, value in node.items():
        if key in _NON_ELEMENT_KEYS:
            continue
        if key in known:
            _check_json_shape(node, key, known[key], f"{expression}.{key}", walk)
        elif key.startswith("_") and key[1:] in known:
            structure.check_property(
                context, node, key, value, f"{expression}.{key[1:]}", walk.reporter(rule)
            )
        else:
            if structure.is_element(context, key.lstrip("_")):
                message = f"{key} is an R4 element that the profile does not allow in {rule.id}"
            else:
                message = f"{key} is not an element of {rule.id} (unknown in FHIR R4)"
            walk.report("error", "structure", f"{expression}.{key}", message, rule)


def _check_shape(item: ElementItem, rule: ElementRule, walk: _Walk) -> bool:
    """Base R4 structure of the item; False when it is too malformed to check further.

    Where the snapshot lists the item's children the profile walk continues; below that the
    base structure walk (`structure.check_value`) covers the datatype's insides.
    """
    report = walk.reporter(rule)
    if rule.children:
        empty = structure.empty_message(item.value)
        if empty is not None:
            report("structure", item.expression, empty)
            return False
        if not isinstance(item.value, dict):
            report("structure", item.expression, f"{rule.id} must be a JSON object")
            return False
        return True
    if item.type_name is not None:
        structure.check_value(item.type_name, item.value, item.expression, report)
    return True


def _check_reference_target(item: ElementItem, rule: ElementRule, walk: _Walk) -> None:
    if item.type_name != "Reference" or not rule.target_profiles:
        return
    allowed = references.allowed_types(rule.target_profiles)
    target = references.referenced_type(item.value, walk.resource)
    if allowed is None or target is None or target in allowed:
        return
    walk.report(
        "error",
        "value",
        item.expression,
        f"{rule.id} may refer to {', '.join(sorted(allowed))}, not {target}",
        rule,
    )


def check_item(item: ElementItem, rule: ElementRule, walk: _Walk) -> None:
    if item.value is None:
        return  # only the `_x` part of a primitive, checked with the parent's properties
    if not _check_shape(item, rule, walk):
        return
    _check_reference_target(item, rule, walk)
    if rule.fixed is not None and item.value != rule.fixed:
        walk.report(
            "error",
            "value",
            item.expression,
            f"must be exactly {json.dumps(rule.fixed)} (found {json.dumps(item.value)})",
            rule,
        )
    if rule.pattern is not None and not matches_pattern(rule.pattern, item.value):
        walk.report(
            "error",
            "value",
            item.expression,
            f"must match the pattern {json.dumps(rule.pattern)} (found {json.dumps(item.value)})",
            rule,
        )
    _check_binding(item, rule, walk)
    _check_invariants(item, rule, walk)
    if rule.children and isinstance(item.value, dict):
        check_children(item.value, rule, item.expression, walk)


def check_children(node: JSONObject, rule: ElementRule, expression: str, walk: _Walk) -> None:
    _check_properties(node, rule, expression, walk)
    for occurrence in occurrences(node, rule, expression, walk, all_absent=False):
        _check_cardinality(occurrence, walk)
        if occurrence.rule.slicing is not None and occurrence.rule.slicing.rules == "closed":
            for item in occurrence.governed:
                walk.report(
                    "error",
                    "structure",
                    item.expression,
                    f"matches no slice of {occurrence.rule.id}, and its slicing is closed",
                    occurrence.rule,
                )
            continue
        for item in occurrence.governed:
            check_item(item, occurrence.rule, walk)


def check_against(
    resource: JSONObject,
    profile: CompiledProfile,
    invariant_results: InvariantResults | None = None,
) -> list[Issue]:
    """Issues of `resource` against `profile`.

    `invariant_results` lets the checks of one resource against several profiles share the
    invariants they have in common; it must not outlive the resource (it is keyed by id()).
    """
    walk = _Walk(profile, resource, {} if invariant_results is None else invariant_results)
    if resource.get("resourceType") != profile.resource_type:
        walk.report(
            "error",
            "structure",
            profile.resource_type,
            f"{profile.canonical} constrains {profile.resource_type}, "
            f"not {resource.get('resourceType')}",
            profile.root,
        )
        return walk.issues
    check_item(ElementItem(resource, profile.resource_type), profile.root, walk)
    return walk.issues


def _missing_must_support(
    node: JSONObject,
    rule: ElementRule,
    expression: str,
    walk: _Walk,
    missing: list[tuple[ElementRule, str]],
) -> None:
    for occurrence in occurrences(node, rule, expression, walk, all_absent=True):
        if occurrence.rule.must_support and not occurrence.items and occurrence.decidable:
            missing.append((occurrence.rule, occurrence.expression))
        if not occurrence.rule.children:
            continue
        for item in occurrence.governed:
            if isinstance(item.value, dict):
                _missing_must_support(item.value, occurrence.rule, item.expression, walk, missing)


def _missing(resource: JSONObject, profile: CompiledProfile) -> list[tuple[ElementRule, str]]:
    missing: list[tuple[ElementRule, str]] = []
    _missing_must_support(
        resource, profile.root, profile.resource_type, _Walk(profile, resource, {}), missing
    )
    return missing


def missing_must_support_of(resource: JSONObject, profile: CompiledProfile) -> list[str]:
    return list(dict.fromkeys(rule.id for rule, _ in _missing(resource, profile)))


def must_support_report_of(resource: JSONObject, profile: CompiledProfile) -> list[Issue]:
    """One `information` issue per place a must-support element is absent."""
    return [
        Issue(
            "information",
            "informational",
            expression,
            f"must-support {'slice ' + repr(rule.slice_name) + ' of ' if rule.slice_name else ''}"
            f"{rule.id.partition(':')[0] if rule.slice_name else rule.id} is absent",
            rule.id,
            profile.canonical,
        )
        for rule, expression in _missing(resource, profile)
    ]
