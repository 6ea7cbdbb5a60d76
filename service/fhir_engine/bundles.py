"""Search and history Bundles assembled around the stored bytes of each resource.

The resources are spliced in as stored: nothing is parsed or re-serialised on the read path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from service.db.base import utcnow


@dataclass(frozen=True)
class Entry:
    full_url: str
    content: bytes | None  # None: a deleted version in a history
    search_mode: str | None = None  # "match" | "include" | "outcome"
    method: str | None = None  # history: the request that made this version
    url: str | None = None
    status: str | None = None  # history: "201 Created" | "200 OK" | "204 No Content"


def _entry(entry: Entry) -> bytes:
    parts = [b'{"fullUrl":' + orjson.dumps(entry.full_url)]
    if entry.content:
        parts.append(b'"resource":' + entry.content)
    if entry.search_mode is not None:
        parts.append(b'"search":' + orjson.dumps({"mode": entry.search_mode}))
    if entry.method is not None:
        parts.append(b'"request":' + orjson.dumps({"method": entry.method, "url": entry.url}))
    if entry.status is not None:
        parts.append(b'"response":' + orjson.dumps({"status": entry.status}))
    return b",".join(parts) + b"}"


def bundle_bytes(
    bundle_type: str,
    entries: Iterable[Entry],
    *,
    links: dict[str, str],
    total: int | None = None,
) -> bytes:
    head: dict[str, object] = {
        "resourceType": "Bundle",
        "type": bundle_type,
        "timestamp": utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if total is not None:
        head["total"] = total
    head["link"] = [{"relation": relation, "url": url} for relation, url in links.items()]
    rendered = [_entry(e) for e in entries]
    if not rendered:  # FHIR JSON has no empty arrays
        return orjson.dumps(head)
    return orjson.dumps(head)[:-1] + b',"entry":[' + b",".join(rendered) + b"]}"
