"""Three-way merge of FHIR resources, element by element (top-level elements).

base = what the service last pushed, ours = what it would push now, theirs = what the EHR has.
An element changed on one side only takes that side's value; changed alike on both sides is no
conflict; changed differently on both sides is a conflict. `id` and `meta` are server-owned and
never compared; the narrative (`text`) is generated from our content, so ours wins it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]
IGNORED = frozenset({"id", "meta"})
OURS_WIN = frozenset({"text"})


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
