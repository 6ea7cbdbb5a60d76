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

`note` (0..* Annotation) is merged too: the annotations the case did not produce (the receiver's
note beside a referral's outcome note, an EHR's note without the id a case note needs) are kept
when the case changes its own notes; one is the case's own when its text is one the case
produced on receipt.

Three more things are kept beside the elements:

- `as_sent`: the lexical form of every received date, dateTime, instant and decimal (see
  `mappings.lexical_forms`), written back while the typed value is unchanged;
- `meta`: the received `profile`, `tag`, `security` and `source` (`versionId` and
  `lastUpdated` are the store's); received profiles come first, CaseBridge's are added;
- `text`, the narrative, by the rule of `restore_narrative`.

"Unchanged" compares what the case produced then and now after `lexical_forms.comparable`,
so a database round trip (an offset normalised to UTC, a decimal's scale) is not a change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mappings.fhir_datatypes import JsonDict
from mappings.lexical_forms import (
    AS_SENT,
    apply_lexical_forms,
    comparable,
    json_safe,
    lexical_forms,
)

MERGED_ELEMENTS = frozenset({"identifier", "category", "basedOn"})
ANNOTATION_LISTS = frozenset({"note"})
NOT_PRESERVED = frozenset({"resourceType", "id", "meta", "text"})
KEPT_META = ("profile", "tag", "security", "source")
AUTHORED_NARRATIVE = frozenset({"additional", "extensions"})


def preserve_elements(received: Mapping[str, Any], generated: Mapping[str, Any]) -> JsonDict:
    """The `fhir_extras` of a record mapped from `received`; {} when the mapping is lossless."""
    kept: JsonDict = {}
    produced: JsonDict = {}
    for element, value in received.items():
        if element in NOT_PRESERVED and element != "text":
            continue
        now = generated.get(element)
        if now != value:
            kept[element] = json_safe(value)
            produced[element] = now
    for element, now in generated.items():
        if (
            element not in received
            and element not in NOT_PRESERVED | MERGED_ELEMENTS | ANNOTATION_LISTS
        ):
            kept[element] = None
            produced[element] = now
    extras: JsonDict = {"received": kept, "generated": produced} if kept else {}
    meta = received.get("meta")
    ours = generated.get("meta") or {}
    if isinstance(meta, Mapping) and (
        kept_meta := {
            k: json_safe(meta[k]) for k in KEPT_META if k in meta and meta[k] != ours.get(k)
        }
    ):
        extras["meta"] = kept_meta
    if forms := lexical_forms(received, generated):
        extras[AS_SENT] = forms
    return extras


def restore_elements(
    generated: JsonDict, extras: Mapping[str, Any], element_order: Sequence[str]
) -> JsonDict:
    """`generated` with the preserved received elements put back (see the module doc)."""
    if not extras:
        return generated
    kept: Mapping[str, Any] = extras.get("received") or {}
    produced: Mapping[str, Any] = extras.get("generated") or {}
    restored = dict(generated)
    for element, value in kept.items():
        now = generated.get(element)
        then = produced.get(element)
        unchanged = comparable(now) == comparable(then)
        if element == "text":
            restore_narrative(restored, value, unchanged=unchanged)
        elif element in MERGED_ELEMENTS | ANNOTATION_LISTS:
            merge = _merge_annotations if element in ANNOTATION_LISTS else _merge_items
            items = merge(value or [], now or [], then or [], unchanged=unchanged)
            if items:
                restored[element] = items
            else:
                restored.pop(element, None)
        elif unchanged:
            if value is None:
                restored.pop(element, None)
            else:
                restored[element] = value
    if kept_meta := extras.get("meta"):
        restored["meta"] = _merged_meta(generated.get("meta") or {}, kept_meta)
    restored = apply_lexical_forms(restored, extras.get(AS_SENT) or {})
    return _in_element_order(restored, element_order)


def restore_narrative(resource: JsonDict, received: Any, *, unchanged: bool) -> None:
    """Put the sender's narrative back, or leave the generated one (FHIR R4 §2.4 Narrative,
    DomainResource.text and its `status` codes).

    - `additional` ("contains additional information not found in the structured data") and
      `extensions` (generated, partly from extensions CaseBridge does not render) were written
      by the sender and cannot be regenerated here: they are always kept, also after the case
      changes the data.
    - `generated` and `empty` are a rendering of the data: the sender's is kept while the case
      still generates what it generated on receipt (the data is unchanged), and replaced by
      CaseBridge's rendering once the case changes it, so the narrative never contradicts the
      data.
    - No narrative received: CaseBridge generates one (`generated`).
    """
    if not isinstance(received, Mapping):
        return
    if received.get("status") in AUTHORED_NARRATIVE or unchanged:
        resource["text"] = received


def _merged_meta(generated: Mapping[str, Any], kept: Mapping[str, Any]) -> JsonDict:
    meta = dict(generated)
    for key, value in kept.items():
        if key == "profile":
            ours = [p for p in generated.get("profile") or () if p not in value]
            meta["profile"] = [*value, *ours]
        else:
            meta[key] = value
    return meta


def _merge_items(
    received: list[Any], now: list[Any], then: list[Any], *, unchanged: bool
) -> list[Any]:
    if unchanged:
        return received + [item for item in now if not _covered(item, received)]
    # The case changed the element: keep only the foreign items, then what the case says now.
    foreign = [item for item in received if item not in then]
    return foreign + [item for item in now if not any(_within(item, f) for f in foreign)]


def _merge_annotations(
    received: list[Any], now: list[Any], then: list[Any], *, unchanged: bool
) -> list[Any]:
    """The received annotations while the case's notes are unchanged; once it changes them,
    what it says now, then the received annotations that were never the case's own."""
    if unchanged:
        return received + [note for note in now if _text(note) not in _texts(received)]
    own = _texts(then)
    return now + [note for note in received if _text(note) not in own]


def _text(note: Any) -> Any:
    return note.get("text") if isinstance(note, dict) else None


def _texts(notes: list[Any]) -> set[Any]:
    return {_text(note) for note in notes}


def _codings(item: Any) -> set[tuple[Any, Any]]:
    if not isinstance(item, dict):
        return set()
    return {
        (c.get("system"), c.get("code")) for c in item.get("coding") or () if isinstance(c, dict)
    }


def _covered(item: Any, received: list[Any]) -> bool:
    """`item` is in `received` or within one of its items, or (a CodeableConcept) all its
    codings are already there: a received `sdoh` category with its own text needs no second
    `sdoh` category."""
    if any(_within(item, r) for r in received):
        return True
    codings = _codings(item)
    return bool(codings) and codings <= set().union(*(_codings(r) for r in received))


def _within(item: Any, received: Any) -> bool:
    """`item` says nothing `received` does not: equal, or each of its elements is there with
    the same value. The case's plain `{system, value}` identifier is within the received one
    that also has a `use`, `type` and `period` (official example Patient-example), so the
    identifier is not given twice."""
    if item == received:
        return True
    return (
        isinstance(item, dict)
        and isinstance(received, dict)
        and all(received.get(key) == value for key, value in item.items())
    )


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
