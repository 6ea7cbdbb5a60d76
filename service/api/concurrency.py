"""Optimistic concurrency on the internal API: weak ETags carry the row version."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header, Response

from service.errors import BadRequest, PreconditionFailed, PreconditionRequired

_ETAG = re.compile(r'^\s*(?:W/)?"(\d+)"\s*$')


def etag(version: int) -> str:
    return f'W/"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def required_version(if_match: str | None) -> int | None:
    """The version named by If-Match; None for `*`. A missing header is refused (428)."""
    if if_match is None:
        raise PreconditionRequired("send If-Match with the ETag you last read")
    return optional_version(if_match)


def optional_version(if_match: str | None) -> int | None:
    """The version named by If-Match, if the header is there; None for `*` or no header."""
    if if_match is None or if_match.strip() == "*":
        return None
    found = _ETAG.match(if_match)
    if found is None:
        raise BadRequest(f'If-Match must be an ETag such as W/"3", got {if_match!r}')
    return int(found.group(1))


def check_version(current: int, expected: int | None) -> None:
    if expected is not None and current != expected:
        raise PreconditionFailed(f"current version is {current}, If-Match named {expected}")


IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", description='ETag of the version being changed, e.g. W/"3"'),
]
