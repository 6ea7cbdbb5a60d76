"""What goes into the engine and what comes out: plain data, no web framework.

A `FhirRequest` is one FHIR RESTful interaction (FHIR R4 http.html) as the engine sees it: the
HTTP adapter builds one from a request, a batch builds one from each entry's `request`
element. A `FhirOutcome` is the answer (status, headers, body) together with what the audit
needs to know of it (`AccessFacts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, unquote, urlsplit

from service.audit.events import AccessFacts
from service.errors import BadRequest, NotFound

# Operations the engine knows on a type (`[base]/Type/<operation>`).
TYPE_OPERATIONS = frozenset({"_history", "_search", "$validate"})


@dataclass(frozen=True)
class FhirRequest:
    """One interaction: `[base]/{resource_type}/{id}/_history/{version}` or
    `[base]/{resource_type}/{operation}`, with its query, headers (names in lower case) and
    body. `resource_type` None is the base itself (a transaction or batch); `operation`
    `metadata` is the CapabilityStatement."""

    method: str
    resource_type: str | None = None
    id: str | None = None
    version: str | None = None
    operation: str | None = None
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    base_url: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def prefers(self) -> str:
        """The `Prefer` header without blanks (RFC 7240), for `return=` and `handling=`."""
        return (self.header("prefer") or "").replace(" ", "")


@dataclass
class FhirOutcome:
    """The engine's answer. `facts` is what the interaction touched, for its AuditEvent;
    `entry_facts` are those of a batch's entries, each audited as its own interaction, but for
    the entries whose record was written with their change; those are `kept_entry_facts` (an
    `Idempotency-Key` replay discloses them again). `kept`: the caller's keep ran in this
    outcome's transaction (it committed, if this outcome is the one handed back)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    facts: AccessFacts | None = None
    entry_facts: list[tuple[AccessFacts, int]] = field(default_factory=list)
    kept_entry_facts: list[tuple[AccessFacts, int]] = field(default_factory=list)
    kept: bool = False


def request_from_url(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    body: bytes,
    base_url: str,
) -> FhirRequest:
    """The interaction a relative URL (`Type`, `Type/id`, `Type?query`, `Type/id/_history/2`,
    `metadata`) names, as in a Bundle entry's `request.url` (FHIR R4 http.html#3.1.0.11).

    Absolute URLs are accepted only under `base_url`; dot segments, however encoded, and URLs
    of other servers are refused, so an entry never reaches anything but this engine."""
    if url.startswith(base_url + "/"):
        url = url[len(base_url) + 1 :]
    url = url.lstrip("/")
    parts = urlsplit(url)
    segments = parts.path.split("/") if parts.path else []
    if (
        parts.scheme
        or parts.netloc
        or not segments
        or any(unquote(s) in (".", "..", "") for s in segments)
        or not (segments[0][:1].isupper() or segments == ["metadata"])
    ):
        raise BadRequest(
            "request.url must be relative to this server (Type, Type/id, Type?query)",
            extra={"expression": ["request.url"]},
        )
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    base = FhirRequest(method, query=query, headers=headers, body=body, base_url=base_url)
    if segments == ["metadata"]:
        return replace(base, operation="metadata")
    resource_type, rest = segments[0], segments[1:]
    if not rest:
        return replace(base, resource_type=resource_type)
    if len(rest) == 1 and rest[0] in TYPE_OPERATIONS:
        return replace(base, resource_type=resource_type, operation=rest[0])
    if len(rest) == 1:
        return replace(base, resource_type=resource_type, id=rest[0])
    if rest[1] == "_history" and len(rest) in (2, 3):
        version = rest[2] if len(rest) == 3 else None
        return replace(
            base, resource_type=resource_type, id=rest[0], operation="_history", version=version
        )
    raise NotFound(f"{url} names no interaction of this server")
