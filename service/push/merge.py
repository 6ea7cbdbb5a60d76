"""Three-way merge of FHIR resources, element by element (top-level elements).

base = what the service last pushed, ours = what it would push now, theirs = what the EHR has.
An element changed on one side only takes that side's value; changed alike on both sides is no
conflict; changed differently on both sides is a conflict. `id` and `meta` are server-owned and
never compared; the narrative (`text`) is generated from our content, so ours wins it.

Lists of Annotation (`note`: 0..* Annotation on Condition, Goal, ServiceRequest, CareTeam and
CarePlan, FHIR R4 §2.24.0.7 Annotation) are merged as lists, not replaced as one value: a
receiver's note and the planner's note are two notes, not two versions of one. Each annotation
is matched across the three by its `id` where it has one (the case's own notes carry theirs),
else by its text, time and author; each is then merged like an element, so an addition on
either side is kept, a deletion on one side is taken, and only an annotation deleted or edited
differently on both sides is a conflict (of the whole element).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]
IGNORED = frozenset({"id", "meta"})
OURS_WIN = frozenset({"text"})
ANNOTATION_LISTS = frozenset({"note"})


@dataclass(frozen=True)
class MergeResult:
    merged: JsonDict
    conflicts: list[str] = field(default_factory=list)
    # Elements the EHR changed that the result takes from it.
    taken_from_theirs: list[str] = field(default_factory=list)


def three_way_merge(
    base: Mapping[str, Any], ours: Mapping[str, Any], theirs: Mapping[str, Any]
) -> MergeResult:
    merged: JsonDict = {}
    conflicts: list[str] = []
    taken: list[str] = []
    keys = (
        list(ours)
        + [k for k in theirs if k not in ours]
        + [k for k in base if k not in ours and k not in theirs]
    )
    for key in keys:
        if key in IGNORED:
            if key == "meta" and key in ours:
                merged[key] = ours[key]
            continue
        b, o, t = base.get(key), ours.get(key), theirs.get(key)
        if key in OURS_WIN or o == t or t == b:
            value = o
        elif o == b:
            value = t
            taken.append(key)
        elif key in ANNOTATION_LISTS and (notes := merge_annotations(b, o, t)) is not None:
            # Both sides changed the notes, in ways that fit together: theirs are kept too.
            value = notes or None
            taken.append(key)
        else:
            conflicts.append(key)
            value = o
        if value is not None:
            merged[key] = value
    return MergeResult(merged, conflicts, taken)


def rebase_local_changes(
    pushed: Mapping[str, Any], local_then: Mapping[str, Any], local_now: Mapping[str, Any]
) -> JsonDict:
    """What to push now: the local changes since the last push, applied on top of what was
    pushed (which holds the EHR's edits merged in earlier, which the local case lacks)."""
    return three_way_merge(local_then, local_now, pushed).merged


AnnotationKey = tuple[Any, ...]


def annotation_key(annotation: Any) -> AnnotationKey:
    """What tells one annotation from another: its `id`, else its text, time and author."""
    if not isinstance(annotation, Mapping):
        return ("value", repr(annotation))
    if annotation.get("id"):
        return ("id", annotation["id"])
    author = annotation.get("authorString") or annotation.get("authorReference")
    return ("content", annotation.get("text"), annotation.get("time"), repr(author))


def _keyed(annotations: Any) -> dict[tuple[AnnotationKey, int], Any]:
    """Each annotation under its key and its occurrence (two alike are two notes)."""
    keyed: dict[tuple[AnnotationKey, int], Any] = {}
    seen: dict[AnnotationKey, int] = {}
    for annotation in annotations if isinstance(annotations, list) else ():
        key = annotation_key(annotation)
        seen[key] = seen.get(key, -1) + 1
        keyed[(key, seen[key])] = annotation
    return keyed


def merge_annotations(base: Any, ours: Any, theirs: Any) -> list[Any] | None:
    """Three lists of Annotation merged annotation by annotation (see the module doc): ours in
    our order, then those only theirs added, in theirs. None: a conflict (an annotation deleted
    or edited on both sides differently)."""
    b, o, t = _keyed(base), _keyed(ours), _keyed(theirs)
    merged: list[Any] = []
    for key in list(o) + [k for k in t if k not in o] + [k for k in b if k not in o and k not in t]:
        mine, yours, was = o.get(key), t.get(key), b.get(key)
        if mine == yours or yours == was:
            value = mine
        elif mine == was:
            value = yours
        else:
            return None
        if value is not None:
            merged.append(value)
    return merged
