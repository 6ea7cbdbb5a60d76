"""A stored local resource in the form an EHR receives: no id and no server-stamped meta, its
references rewritten to the EHR's ids (or a transaction's `urn:uuid`s).

A reference to a local resource the EHR does not have (not pushed yet, or of a type it cannot
write) is left out rather than sent dangling; the push re-sends the resource once the target
exists. Patient references point at the EHR's own patient (`PatientLink.remote_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]
# Server-owned elements: never sent, never compared.
SERVER_OWNED = ("id", "meta")
_DROPPED = object()


@dataclass
class RemoteForm:
    body: JsonDict
    unresolved: set[str] = field(default_factory=set)


def remote_form(local: Mapping[str, Any], targets: Mapping[str, str]) -> RemoteForm:
    """`local` with every `Type/id` reference mapped through `targets` (unknown ones dropped).

    `meta.profile` is kept (it is a claim about the content); versionId/lastUpdated are not."""
    unresolved: set[str] = set()
    body: JsonDict = {}
    for key, value in local.items():
        if key == "id":
            continue
        if key == "meta":
            profile = value.get("profile") if isinstance(value, dict) else None
            if profile:
                body["meta"] = {"profile": profile}
            continue
        rewritten = _rewrite(value, targets, unresolved)
        if rewritten is not _DROPPED:
            body[key] = rewritten
    return RemoteForm(body, unresolved)


def _rewrite(value: Any, targets: Mapping[str, str], unresolved: set[str]) -> Any:
    if isinstance(value, list):
        items = [_rewrite(item, targets, unresolved) for item in value]
        kept = [item for item in items if item is not _DROPPED]
        return kept if kept else _DROPPED
    if not isinstance(value, dict):
        return value
    copied: JsonDict = {}
    for key, item in value.items():
        rewritten = _rewrite(item, targets, unresolved)
        if rewritten is not _DROPPED:
            copied[key] = rewritten
    reference = value.get("reference")
    if isinstance(reference, str) and "/" in reference and not reference.startswith("urn:"):
        if reference in targets:
            copied["reference"] = targets[reference]
        else:
            unresolved.add(reference)
            copied.pop("reference", None)
            # A Reference with nothing left to say (no display, no identifier) is dropped.
            if not ({"display", "identifier"} & copied.keys()):
                return _DROPPED
    # An extension whose value was a dropped reference goes too.
    if "url" in value and any(k.startswith("value") for k in value) and copied.keys() <= {"url"}:
        return _DROPPED
    return copied if copied else _DROPPED


def without_server_owned(resource: Mapping[str, Any]) -> JsonDict:
    return {k: v for k, v in resource.items() if k not in SERVER_OWNED}
