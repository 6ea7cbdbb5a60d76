"""What keeps a received resource lossless: its elements the case cannot regenerate.

When a resource written by someone else is mapped into the case, the mapping regenerates the
resource from the new records and compares it with what was received, element by element
(top-level elements). Every element that differs is kept in the record's `fhir_extras`:

    {"received":  {element: value as received, or None if the source had no such element},
     "generated": {element: value the case produced at that time, or None}}

On re-export (`restore_elements`), a received value replaces the regenerated one only while
the case still produces what it produced when the resource was received. Once the case changes
that element (a manager edits the goal's description, say), the case wins: a stale copy never
shadows an edit.

Three elements are merged rather than replaced, so the service's own entries are always there:
`identifier` (the key of conditional writes), `category` (holds the slices US Core requires
and the program) and `basedOn` (a ServiceRequest's link to the case's CarePlan).
`meta` and `text` are not kept: meta is the store's, the narrative is
regenerated from the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mappings.fhir_datatypes import JsonDict

MERGED_ELEMENTS = frozenset({"identifier", "category", "basedOn"})
NOT_PRESERVED = frozenset({"resourceType", "id", "meta", "text"})


def preserve_elements(received: Mapping[str, Any], generated: Mapping[str, Any]) -> JsonDict:
    """The `fhir_extras` of a record mapped from `received`; {} when the mapping is lossless."""
    kept: JsonDict = {}
    produced: JsonDict = {}
    for element, value in received.items():
        if element in NOT_PRESERVED:
            continue
        now = generated.get(element)
        if now != value:
            kept[element] = value
            produced[element] = now
    for element, now in generated.items():
        if element not in received and element not in NOT_PRESERVED | MERGED_ELEMENTS:
            kept[element] = None
            produced[element] = now
    return {"received": kept, "generated": produced} if kept else {}


def restore_elements(
    generated: JsonDict, extras: Mapping[str, Any], element_order: Sequence[str]
) -> JsonDict:
    """`generated` with the preserved received elements put back (see the module doc)."""
    kept = extras.get("received")
    if not kept:
        return generated
    produced: Mapping[str, Any] = extras.get("generated") or {}
    restored = dict(generated)
    for element, value in kept.items():
        now = generated.get(element)
        then = produced.get(element)
        if element in MERGED_ELEMENTS:
            items = _merge_items(value or [], now or [], then or [], unchanged=now == then)
            if items:
                restored[element] = items
            else:
                restored.pop(element, None)
        elif now == then:
            if value is None:
                restored.pop(element, None)
            else:
                restored[element] = value
    return _in_element_order(restored, element_order)


def _merge_items(
    received: list[Any], now: list[Any], then: list[Any], *, unchanged: bool
) -> list[Any]:
    if unchanged:
        return received + [item for item in now if not _covered(item, received)]
    # The case changed the element: keep only the foreign items, then what the case says now.
    foreign = [item for item in received if item not in then]
    return foreign + [item for item in now if item not in foreign]


def _codings(item: Any) -> set[tuple[Any, Any]]:
    if not isinstance(item, dict):
        return set()
    return {
        (c.get("system"), c.get("code")) for c in item.get("coding") or () if isinstance(c, dict)
    }


def _covered(item: Any, received: list[Any]) -> bool:
    """`item` is in `received`, or (a CodeableConcept) all its codings are already there: a
    received `sdoh` category with its own text needs no second `sdoh` category."""
    if item in received:
        return True
    codings = _codings(item)
    return bool(codings) and codings <= set().union(*(_codings(r) for r in received))


def _in_element_order(resource: JsonDict, element_order: Sequence[str]) -> JsonDict:
    rank = {name: index for index, name in enumerate(element_order)}
    last = len(rank)

    def position(key: str) -> tuple[int, int]:
        if key == "resourceType":
            return (-1, 0)
        # `_status` (a primitive's extensions) sits right after `status`.
        base = key[1:] if key.startswith("_") else key
        return (rank.get(base, last), 1 if key.startswith("_") else 0)

    return {key: resource[key] for key in sorted(resource, key=position)}
