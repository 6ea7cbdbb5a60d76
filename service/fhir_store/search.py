"""FHIR search over the store: parameters become EXISTS conditions on the search index.

Supported: token (`code`, `system|code`, `|code`, `system|`, with `:not`), reference (`id`,
`Type/id`, absolute URLs ending in `Type/id`), date (prefixes eq ne lt le gt ge sa eb),
string (prefix match, `:exact`, `:contains`), comma-separated OR values, repeated parameters
as AND, `_id`, `_lastUpdated`, `_count`, `_sort`, `_summary=count`, `_total`, `_include` and
`_revinclude`. Unknown parameters are ignored and left out of the `self` link, unless the
client sends `Prefer: handling=strict`, which makes them a 400.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, and_, exists, false, not_, or_, select

from service.errors import BadRequest
from service.fhir_store.models import SearchEntry, StoredResource
from service.fhir_store.search_params import SEARCH_PARAMS, ParamType, SearchParam, date_range

DEFAULT_COUNT = 50
# Parameters whose matches are few: resources named by id, or one patient's.
NARROWING = frozenset({"_id", "patient", "subject"})
MAX_COUNT = 500
MAX_SEARCH_VALUES = 200
RESULT_PARAMS = frozenset(
    {"_count", "_sort", "_summary", "_total", "_include", "_revinclude", "_format", "_elements"}
)
SORTS = {
    "_id": (StoredResource.id,),
    "_lastUpdated": (StoredResource.last_updated, StoredResource.id),
    "-_lastUpdated": (StoredResource.last_updated.desc(), StoredResource.id.desc()),
}
_DATE_PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb")


@dataclass(frozen=True)
class Include:
    """`_include=Source:param[:Target]` or `_revinclude=Source:param[:Target]`."""

    source: str
    param: SearchParam
    target: str | None


@dataclass
class SearchRequest:
    resource_type: str
    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    used: list[tuple[str, str]] = field(default_factory=list)  # for the self/next links
    count: int = DEFAULT_COUNT
    sort: str | None = None
    summary_count: bool = False
    want_total: bool = True  # `_total=none` spares the count query of a many-page result
    # The matches are one patient's resources or named by `_id`: a first page seldom has a
    # next one, so its rows are counted, not every match (`repository.search_page`).
    narrow: bool = False
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    cursor: str | None = None


def _entry_exists(
    resource_type: str, name: str, *conditions: ColumnElement[bool]
) -> ColumnElement[bool]:
    return exists(
        select(SearchEntry.id).where(
            SearchEntry.resource_type == resource_type,
            SearchEntry.resource_id == StoredResource.id,
            SearchEntry.param == name,
            *conditions,
        )
    )


def _token(value: str) -> ColumnElement[bool]:
    if "|" not in value:
        return SearchEntry.value == value
    system, code = value.split("|", 1)
    if not system:
        return and_(SearchEntry.system.is_(None), SearchEntry.value == code)
    if not code:
        return SearchEntry.system == system
    return and_(SearchEntry.system == system, SearchEntry.value == code)


def _reference(param: SearchParam, value: str) -> ColumnElement[bool]:
    parts = value.rstrip("/").split("/")
    if len(parts) >= 2:  # Type/id, or an absolute URL ending in Type/id
        return SearchEntry.value == f"{parts[-2]}/{parts[-1]}"
    if param.target is not None:
        return SearchEntry.value == f"{param.target}/{value}"
    return SearchEntry.value.like(f"%/{value}")


def _date_bounds(value: str) -> tuple[str, dt.datetime, dt.datetime]:
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in _DATE_PREFIXES else value
    try:
        low, high = date_range(text)
    except ValueError as exc:
        raise BadRequest(f"{value!r} is not a FHIR date", extra={"expression": [text]}) from exc
    return prefix, low, high


def _date(value: str) -> ColumnElement[bool]:
    """Date ranges per FHIR search: the indexed range [L, H) against the value's [lo, hi)."""
    prefix, lo, hi = _date_bounds(value)
    lower, upper = SearchEntry.low, SearchEntry.high
    open_low, open_high = lower.is_(None), upper.is_(None)
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": and_(lower >= lo, upper <= hi),
        "ne": not_(and_(lower >= lo, upper <= hi)),
        "lt": or_(open_low, lower < lo),
        "le": or_(open_low, lower < hi),
        "gt": or_(open_high, upper > hi),
        "ge": or_(open_high, upper > lo),
        "sa": lower >= hi,
        "eb": upper <= lo,
    }
    return conditions[prefix]


def _string(value: str, modifier: str | None) -> ColumnElement[bool]:
    text = value.lower()
    if modifier == "exact":
        return SearchEntry.value == text
    if modifier == "contains":
        return SearchEntry.value.contains(text, autoescape=True)
    return SearchEntry.value.startswith(text, autoescape=True)


def _value_condition(param: SearchParam, modifier: str | None, value: str) -> ColumnElement[bool]:
    if param.type is ParamType.token:
        return _token(value)
    if param.type is ParamType.reference:
        return _reference(param, value)
    if param.type is ParamType.date:
        return _date(value)
    return _string(value, modifier)


def _param_condition(
    resource_type: str, param: SearchParam, modifier: str | None, raw: str
) -> ColumnElement[bool]:
    values = [v for v in raw.split(",") if v]
    if not values:
        raise BadRequest(f"{param.name} needs a value", extra={"expression": [param.name]})
    if modifier == "missing":
        present = _entry_exists(resource_type, param.name)
        return not_(present) if raw == "true" else present
    allowed = {"not", "exact", "contains"} if param.type is ParamType.string else {"not"}
    if modifier is not None and modifier not in allowed | {"missing"}:
        raise BadRequest(f"modifier :{modifier} is not supported on {param.name}")
    if modifier == "not":
        matches = or_(*(_value_condition(param, None, v) for v in values))
        return not_(_entry_exists(resource_type, param.name, matches))
    if param.type is ParamType.date:
        # Each value is its own range test on the same entry.
        return or_(*(_entry_exists(resource_type, param.name, _date(v)) for v in values))
    matches = or_(*(_value_condition(param, modifier, v) for v in values))
    return _entry_exists(resource_type, param.name, matches)


def _last_updated(raw: str) -> ColumnElement[bool]:
    prefix, lo, hi = _date_bounds(raw)
    column = StoredResource.last_updated
    return {
        "eq": and_(column >= lo, column < hi),
        "ne": or_(column < lo, column >= hi),
        "lt": column < lo,
        "le": column < hi,
        "gt": column >= hi,
        "ge": column >= lo,
        "sa": column >= hi,
        "eb": column < lo,
    }[prefix]


def _include(spec: str, revinclude: bool, resource_type: str) -> Include:
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise BadRequest(f"{spec!r} is not Type:param[:Target]")
    source, name = parts[0], parts[1]
    param = SEARCH_PARAMS.get(source, {}).get(name)
    if param is None or param.type is not ParamType.reference:
        raise BadRequest(f"{source}:{name} is not a reference search parameter")
    if not revinclude and source != resource_type:
        raise BadRequest(f"_include={spec} does not start with {resource_type}")
    return Include(source, param, parts[2] if len(parts) == 3 else None)


def _count(raw: str) -> int:
    if not raw.isdigit():
        raise BadRequest("_count must be a non-negative integer", extra={"expression": ["_count"]})
    return min(int(raw), MAX_COUNT)


def parse_search(
    resource_type: str, query: list[tuple[str, str]], *, strict: bool
) -> SearchRequest:
    request = SearchRequest(resource_type)
    params = SEARCH_PARAMS[resource_type]
    values = sum(len(raw.split(",")) for _, raw in query)
    if values > MAX_SEARCH_VALUES:
        # Each value is a bound parameter of one statement: a cap keeps any search inside the
        # databases' limits (SQLite's is the smallest) and its cost bounded.
        raise BadRequest(
            f"a search may carry at most {MAX_SEARCH_VALUES} parameter values; this one has "
            f"{values}: split it into several searches",
            extra={"expression": [key for key, _ in query[:1]]},
        )
    for key, raw in query:
        name, _, modifier = key.partition(":")
        if key == "_cursor":
            request.cursor = raw
            continue
        if name == "_id":
            ids = raw.split(",")
            if modifier not in ("", "not"):
                raise BadRequest(
                    f"_id:{modifier} is not supported (only _id and _id:not)",
                    extra={"expression": [key]},
                )
            matched = StoredResource.id.in_(ids)
            request.conditions.append(~matched if modifier == "not" else matched)
        elif name == "_lastUpdated":
            request.conditions.append(_last_updated(raw))
        elif name == "_count":
            request.count = _count(raw)
        elif name == "_sort":
            if raw not in SORTS:
                raise BadRequest(f"_sort={raw} is not supported (use {', '.join(SORTS)})")
            request.sort = raw
        elif name == "_summary":
            if raw != "count":
                raise BadRequest("only _summary=count is supported")
            request.summary_count = True
        elif name == "_total":
            if raw not in ("none", "estimate", "accurate"):
                raise BadRequest("_total must be none, estimate or accurate")
            request.want_total = raw != "none"
        elif name in ("_include", "_revinclude"):
            target = request.includes if name == "_include" else request.revincludes
            target.append(_include(raw, name == "_revinclude", resource_type))
        elif name in RESULT_PARAMS:
            pass  # _format is content negotiation; _elements is not needed here
        elif name in params:
            request.conditions.append(
                _param_condition(resource_type, params[name], modifier or None, raw)
            )
        elif strict:
            raise BadRequest(
                f"unknown search parameter {key!r} for {resource_type}",
                extra={"expression": [key]},
            )
        else:
            continue
        if name not in ("_cursor", "_format"):
            request.used.append((key, raw))
        if name in NARROWING and modifier not in ("not", "missing"):
            request.narrow = True  # a parameter this search applies (unknown ones are not)
    return request


@dataclass(frozen=True, slots=True)
class Match:
    """What a search serves of a current resource (plain columns: no ORM object per row)."""

    resource_type: str
    id: str
    content: bytes
    patient_id: str | None
    created_at: dt.datetime
    last_updated: dt.datetime


MATCH_COLUMNS = (
    StoredResource.resource_type,
    StoredResource.id,
    StoredResource.content,
    StoredResource.patient_id,
    StoredResource.created_at,
    StoredResource.last_updated,
)
MatchSelect = Select[str, str, bytes, str | None, dt.datetime, dt.datetime]


def base_statement(request: SearchRequest, compartment: str | None) -> MatchSelect:
    statement = select(*MATCH_COLUMNS).where(
        StoredResource.resource_type == request.resource_type,
        StoredResource.deleted.is_(False),
        *request.conditions,
    )
    if compartment is not None:
        statement = statement.where(StoredResource.patient_id == compartment)
    return statement


# Paging: the default order is (created_at, id), which never changes for a resource, so a
# `next` link walks the same order however the data changes meanwhile (new resources appear
# at the end; none is skipped or repeated). With `_sort`, pages follow the sort keys.


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values, default=str)).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise BadRequest("_cursor is not one this server issued") from exc
    if not isinstance(decoded, list):
        raise BadRequest("_cursor is not one this server issued")
    return decoded


def paged(statement: MatchSelect, request: SearchRequest) -> MatchSelect:
    """Order, apply the cursor, and fetch one row more than a page (to know if there is a next)."""
    after = decode_cursor(request.cursor) if request.cursor else None
    if request.sort == "_id":
        if after:
            statement = statement.where(StoredResource.id > after[0])
        statement = statement.order_by(StoredResource.id)
    elif request.sort in ("_lastUpdated", "-_lastUpdated"):
        descending = request.sort.startswith("-")
        if after:
            moment = dt.datetime.fromisoformat(after[0])
            column, key = StoredResource.last_updated, StoredResource.id
            statement = statement.where(
                or_(column < moment, and_(column == moment, key < after[1]))
                if descending
                else or_(column > moment, and_(column == moment, key > after[1]))
            )
        statement = statement.order_by(*SORTS[request.sort])
    else:
        if after:
            moment = dt.datetime.fromisoformat(after[0])
            column, key = StoredResource.created_at, StoredResource.id
            statement = statement.where(
                or_(column > moment, and_(column == moment, key > after[1]))
            )
        statement = statement.order_by(StoredResource.created_at, StoredResource.id)
    return statement.limit(request.count + 1) if request.count else statement.where(false())


def cursor_after(row: Match, request: SearchRequest) -> str:
    if request.sort == "_id":
        return encode_cursor([row.id])
    if request.sort in ("_lastUpdated", "-_lastUpdated"):
        return encode_cursor([row.last_updated.isoformat(), row.id])
    return encode_cursor([row.created_at.isoformat(), row.id])
