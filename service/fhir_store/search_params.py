"""The search parameters `/fhir` supports, and the values each resource is indexed under.

Paths are simple dotted element paths (FHIR search expressions without functions), walked
over the resource dict: lists fan out, choice types are named explicitly. This runs on every
stored version, so it is plain dict walking rather than a FHIRPath engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

JsonDict = dict[str, Any]


class ParamType(StrEnum):
    token = "token"
    reference = "reference"
    date = "date"
    string = "string"


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: ParamType
    paths: tuple[str, ...]
    # For reference parameters: the resource type a bare id refers to (patient=123).
    target: str | None = None

    def expression(self, resource_type: str) -> str:
        return " | ".join(f"{resource_type}.{path}" for path in self.paths)


def _param(name: str, type_: ParamType, *paths: str, target: str | None = None) -> SearchParam:
    return SearchParam(name, type_, paths, target)


_T, _R, _D, _S = ParamType.token, ParamType.reference, ParamType.date, ParamType.string

SEARCH_PARAMS: dict[str, dict[str, SearchParam]] = {
    resource_type: {p.name: p for p in params}
    for resource_type, params in {
        "CarePlan": (
            _param("patient", _R, "subject", target="Patient"),
            _param("subject", _R, "subject", target="Patient"),
            _param("category", _T, "category"),
            _param("status", _T, "status"),
            _param("intent", _T, "intent"),
            _param("date", _D, "period"),
            _param("identifier", _T, "identifier"),
            _param("goal", _R, "goal", target="Goal"),
            _param("care-team", _R, "careTeam", target="CareTeam"),
            _param("activity-reference", _R, "activity.reference"),
            _param("condition", _R, "addresses", target="Condition"),
        ),
        "Goal": (
            _param("patient", _R, "subject", target="Patient"),
            _param("subject", _R, "subject", target="Patient"),
            _param("lifecycle-status", _T, "lifecycleStatus"),
            _param("achievement-status", _T, "achievementStatus"),
            _param("category", _T, "category"),
            _param("target-date", _D, "target.dueDate"),
            _param("start-date", _D, "startDate"),
            _param("identifier", _T, "identifier"),
        ),
        "ServiceRequest": (
            _param("patient", _R, "subject", target="Patient"),
            _param("subject", _R, "subject", target="Patient"),
            _param("status", _T, "status"),
            _param("intent", _T, "intent"),
            _param("category", _T, "category"),
            _param("code", _T, "code"),
            _param("authored", _D, "authoredOn"),
            _param("occurrence", _D, "occurrenceDateTime", "occurrencePeriod"),
            _param("identifier", _T, "identifier"),
            _param("based-on", _R, "basedOn", target="CarePlan"),
            _param("requester", _R, "requester"),
            _param("performer", _R, "performer"),
        ),
        "Condition": (
            _param("patient", _R, "subject", target="Patient"),
            _param("subject", _R, "subject", target="Patient"),
            _param("category", _T, "category"),
            _param("clinical-status", _T, "clinicalStatus"),
            _param("verification-status", _T, "verificationStatus"),
            _param("code", _T, "code"),
            _param("onset-date", _D, "onsetDateTime", "onsetPeriod"),
            _param("abatement-date", _D, "abatementDateTime", "abatementPeriod"),
            _param("recorded-date", _D, "recordedDate"),
            _param("identifier", _T, "identifier"),
        ),
        "CareTeam": (
            _param("patient", _R, "subject", target="Patient"),
            _param("subject", _R, "subject", target="Patient"),
            _param("status", _T, "status"),
            _param("category", _T, "category"),
            _param("date", _D, "period"),
            _param("identifier", _T, "identifier"),
            _param("role", _T, "participant.role"),
        ),
        "Patient": (
            _param("identifier", _T, "identifier"),
            _param("family", _S, "name.family"),
            _param("given", _S, "name.given"),
            _param("name", _S, "name.family", "name.given", "name.text"),
            _param("birthdate", _D, "birthDate"),
            _param("gender", _T, "gender"),
        ),
        # The people a case names (mappings.to_fhir.people): read-only here. US Core
        # Practitioner and Organization name `identifier` and `name` as their searches.
        "Practitioner": (
            _param("identifier", _T, "identifier"),
            _param("family", _S, "name.family"),
            _param("given", _S, "name.given"),
            _param("name", _S, "name.family", "name.given", "name.text"),
        ),
        "Organization": (
            _param("identifier", _T, "identifier"),
            _param("name", _S, "name", "alias"),
        ),
        "Provenance": (
            _param("target", _R, "target"),
            _param("patient", _R, "target", target="Patient"),
            _param("recorded", _D, "recorded"),
            _param("agent", _R, "agent.who"),
        ),
    }.items()
}

# Parameters every type supports; they are columns of the resource row, not index entries.
COMMON_PARAMS = ("_id", "_lastUpdated")


@dataclass(frozen=True)
class IndexValue:
    param: str
    system: str | None = None
    value: str | None = None
    low: dt.datetime | None = None
    high: dt.datetime | None = None


def _walk(node: Any, parts: list[str]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, parts)
        return
    if not parts:
        yield node
        return
    if isinstance(node, dict) and parts[0] in node:
        yield from _walk(node[parts[0]], parts[1:])


def values_at(resource: JsonDict, path: str) -> Iterator[Any]:
    yield from _walk(resource, path.split("."))


def _tokens(value: Any) -> Iterator[tuple[str | None, str]]:
    if isinstance(value, str):
        yield None, value
    elif isinstance(value, bool):
        yield None, "true" if value else "false"
    elif isinstance(value, dict):
        if "coding" in value or "text" in value:  # CodeableConcept
            for coding in value.get("coding", []):
                yield from _tokens(coding)
        elif "code" in value:  # Coding
            yield value.get("system"), value["code"]
        elif "value" in value:  # Identifier
            yield value.get("system"), str(value["value"])


_DATE_FORMATS = {4: "%Y", 7: "%Y-%m", 10: "%Y-%m-%d"}


def date_range(text: str) -> tuple[dt.datetime, dt.datetime]:
    """[low, high) in UTC of a FHIR date, dateTime or instant (a partial date is a range)."""
    if len(text) in _DATE_FORMATS:
        low = dt.datetime.strptime(text, _DATE_FORMATS[len(text)]).replace(tzinfo=dt.UTC)
        if len(text) == 4:
            high = low.replace(year=low.year + 1)
        elif len(text) == 7:
            high = (low.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        else:
            high = low + dt.timedelta(days=1)
        return low, high
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    return moment, moment + dt.timedelta(seconds=1)


def _dates(value: Any) -> Iterator[tuple[dt.datetime | None, dt.datetime | None]]:
    if isinstance(value, str):
        yield date_range(value)
    elif isinstance(value, dict) and ("start" in value or "end" in value):  # Period
        start = date_range(value["start"])[0] if "start" in value else None
        end = date_range(value["end"])[1] if "end" in value else None
        yield start, end


def index_values(resource_type: str, resource: JsonDict) -> list[IndexValue]:
    """Every index entry of a resource, for the parameters its type supports."""
    entries: list[IndexValue] = []
    for param in SEARCH_PARAMS.get(resource_type, {}).values():
        for path in param.paths:
            for value in values_at(resource, path):
                if param.type is ParamType.token:
                    entries += [IndexValue(param.name, s, v) for s, v in _tokens(value)]
                elif param.type is ParamType.reference:
                    if isinstance(value, dict) and isinstance(value.get("reference"), str):
                        # A versioned reference (Type/id/_history/v) is indexed as Type/id.
                        target = value["reference"].split("/_history/")[0]
                        entries.append(IndexValue(param.name, value=target))
                elif param.type is ParamType.date:
                    entries += [IndexValue(param.name, low=lo, high=hi) for lo, hi in _dates(value)]
                elif isinstance(value, str):
                    entries.append(IndexValue(param.name, value=value.lower()))
    return entries
