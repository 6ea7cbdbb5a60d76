"""SMART resource scopes, v2 (`system/CarePlan.rs`) and v1 (`system/CarePlan.read`).

A scope names a context (`patient`, `user` or `system`), a resource type or `*`, and a set of
interactions. The v1 forms map onto v2 letters: `read` is `rs`, `write` is `cud`, `*` is
`cruds`. v2 letters must appear in the order c, r, u, d, s, each at most once.

Scopes that grant no resource access (`openid`, `fhirUser`, `launch/patient`,
`offline_access`...) are recognised and ignored. Granular v2 scopes with a query
(`patient/Observation.rs?category=...`) are refused rather than widened: this server does not
enforce the query part.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Interaction(StrEnum):
    create = "c"
    read = "r"
    update = "u"
    delete = "d"
    search = "s"


class Context(StrEnum):
    patient = "patient"
    user = "user"
    system = "system"


V2_ORDER = "cruds"
V1_INTERACTIONS: dict[str, str] = {"read": "rs", "write": "cud", "*": "cruds"}
ANY_RESOURCE = "*"

_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<resource>\*|[A-Z][A-Za-z]{0,63})"
    r"\.(?P<permission>read|write|\*|[cruds]{1,5})$"
)
_NON_RESOURCE = frozenset(
    {"openid", "fhirUser", "profile", "offline_access", "online_access", "launch"}
)


class InvalidScope(ValueError):
    """The text is not a SMART resource scope this server understands."""


def is_non_resource_scope(text: str) -> bool:
    """`openid`, `fhirUser`, `launch/patient`, ...: valid SMART scopes that grant no access."""
    return text in _NON_RESOURCE or text.startswith("launch/")


def _letters(permission: str, text: str) -> str:
    if permission in V1_INTERACTIONS:
        return V1_INTERACTIONS[permission]
    position = -1
    for letter in permission:
        found = V2_ORDER.index(letter)
        if found <= position:
            raise InvalidScope(f"{text!r}: v2 permissions must be in the order c, r, u, d, s")
        position = found
    return permission


@dataclass(frozen=True)
class Scope:
    context: Context
    resource_type: str  # a FHIR resource type, or "*"
    interactions: frozenset[Interaction]
    text: str  # as written, so that a v1 grant is returned as v1

    @classmethod
    def parse(cls, text: str) -> Scope:
        """A resource scope; raises InvalidScope for anything else, including `openid`."""
        found = _SCOPE.match(text)
        if found is None:
            if "?" in text and _SCOPE.match(text.split("?", 1)[0]):
                raise InvalidScope(f"{text!r}: scopes with a query are not supported")
            raise InvalidScope(f"{text!r} is not a SMART resource scope")
        letters = _letters(found["permission"], text)
        return cls(
            context=Context(found["context"]),
            resource_type=found["resource"],
            interactions=frozenset(Interaction(letter) for letter in letters),
            text=text,
        )

    def covers_resource(self, resource_type: str) -> bool:
        return self.resource_type in (ANY_RESOURCE, resource_type)

    def allows(self, resource_type: str, interaction: Interaction) -> bool:
        return self.covers_resource(resource_type) and interaction in self.interactions

    @property
    def v2(self) -> str:
        letters = "".join(letter for letter in V2_ORDER if Interaction(letter) in self.interactions)
        return f"{self.context}/{self.resource_type}.{letters}"


def parse_scopes(text: str, *, strict: bool) -> tuple[Scope, ...]:
    """The resource scopes in a space-separated scope string.

    Non-resource scopes are skipped. Anything else that does not parse raises InvalidScope
    when `strict` (a token request), and is skipped otherwise (a token from another issuer,
    whose unknown scopes grant nothing here)."""
    scopes: list[Scope] = []
    for item in text.split():
        if is_non_resource_scope(item):
            continue
        try:
            scopes.append(Scope.parse(item))
        except InvalidScope:
            if strict:
                raise
    return tuple(dict.fromkeys(scopes))


def is_covered(requested: Scope, allowed: Iterable[Scope]) -> bool:
    """Whether the union of the `allowed` scopes grants everything `requested` asks for.

    Only scopes of the same context count: `system/` never stands in for `patient/`. A `*`
    request is covered only by `*` grants, never by the sum of per-type grants."""
    granted: set[Interaction] = set()
    for scope in allowed:
        if scope.context is requested.context and scope.covers_resource(requested.resource_type):
            granted |= scope.interactions
    return requested.interactions <= granted


def scope_string(scopes: Iterable[Scope]) -> str:
    return " ".join(scope.text for scope in scopes)
