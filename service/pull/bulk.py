"""FHIR Bulk Data export (Bulk Data Access IG v2) for population pulls.

Kick-off: `GET [base]/Group/[id]/$export?_type=...&_since=...` with `Prefer: respond-async`; the
EHR answers 202 and a status URL (Content-Location). Polling: 202 with `X-Progress` and
`Retry-After` until 200 and the manifest. Output: NDJSON files, streamed line by line with
httpx (`aiter_lines`) so memory stays flat whatever the file size; each line is parsed and
handed on before the next one is read.

Kick-off and polling go through the connection's `FhirClient` (SSRF policy, auth, retries on
429/5xx). The files are downloaded with a streaming client of this module: a file may live on
another host (a storage bucket), which gets the access token only when the manifest says
`requiresAccessToken`, and passes the same SSRF policy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from mappings import fhir_json
from service.ehr.client import FhirClient, JsonObject, TokenProvider, json_object, parse_retry_after
from service.ehr.errors import EhrProtocolError, EhrTimeout
from service.ehr.pinned_transport import vetted_transport
from service.ehr.url_policy import UrlPolicy, same_origin
from service.pull.reader import format_instant, parse_instant

DEFAULT_POLL_SECONDS = 2.0
MAX_POLL_SECONDS = 120.0

Progress = Callable[[str | None], Awaitable[None]]


@dataclass(frozen=True)
class OutputFile:
    type: str
    url: str
    count: int | None


@dataclass(frozen=True)
class Manifest:
    transaction_time: dt.datetime | None
    requires_access_token: bool
    output: list[OutputFile]
    errors: list[OutputFile]


@dataclass(frozen=True)
class BadLine:
    line_number: int
    reason: str


class BulkExport:
    def __init__(
        self,
        client: FhirClient,
        policy: UrlPolicy,
        *,
        token_provider: TokenProvider | None = None,
        timeout_seconds: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._policy = policy
        self._tokens = token_provider
        self._timeout = timeout_seconds
        self._sleep = sleep
        self._clock = clock

    async def kick_off(
        self,
        group_id: str,
        types: Sequence[str],
        since: dt.datetime | None,
        type_filters: Sequence[str] = (),
    ) -> str:
        """Start an export of the group; returns the status URL to poll. `type_filters` are
        FHIR search queries (`Observation?category=laboratory`), sent as `_typeFilter`."""
        params: list[tuple[str, str | int | float | bool | None]] = []
        if types:
            params.append(("_type", ",".join(types)))
        if type_filters:
            params.append(("_typeFilter", ",".join(type_filters)))
        if since is not None:
            params.append(("_since", format_instant(since)))
        response = await self._client.send(
            "GET",
            f"Group/{group_id}/$export",
            params=params,
            headers={"Accept": "application/fhir+json", "Prefer": "respond-async"},
        )
        location = response.headers.get("Content-Location")
        if response.status_code != 202 or not location:
            raise EhrProtocolError(
                f"the $export kick-off answered {response.status_code} without a status URL",
                url=str(response.url),
            )
        status_url = str(response.url.join(location))
        if not same_origin(status_url, self._client.base_url):
            # Polling sends our access token: only to the FHIR server that issued the export.
            raise EhrProtocolError(
                "the $export status URL is on another origin than the FHIR server",
                url=status_url,
            )
        return status_url

    async def wait(
        self, status_url: str, progress: Progress, *, deadline_seconds: float = 3600.0
    ) -> Manifest:
        """Poll until the manifest is ready, sleeping as long as Retry-After asks (bounded)."""
        give_up = self._clock() + deadline_seconds
        while True:
            response = await self._client.send("GET", status_url)
            if response.status_code == 200:
                return _manifest(response)
            await progress(response.headers.get("X-Progress"))
            delay = parse_retry_after(response.headers.get("Retry-After"))
            delay = min(MAX_POLL_SECONDS, DEFAULT_POLL_SECONDS if delay is None else delay)
            if self._clock() + delay > give_up:
                raise EhrTimeout("the export did not finish in time", url=status_url)
            await self._sleep(delay)

    async def resources(
        self, file: OutputFile, requires_access_token: bool, bad_lines: list[BadLine]
    ) -> AsyncIterator[JsonObject]:
        """The file's resources, one line at a time. A line that is not a JSON object of the
        file's type is recorded in `bad_lines` and skipped."""
        url = await self._policy.check(file.url)
        headers = {"Accept": "application/fhir+ndjson"}
        if requires_access_token and self._tokens is not None:
            if not same_origin(file.url, self._client.base_url):
                # The token is the FHIR server's: never hand it to another host.
                raise EhrProtocolError(
                    "the output file wants the access token but is on another origin",
                    url=file.url,
                )
            headers["Authorization"] = f"Bearer {await self._tokens.access_token()}"
        async with (
            httpx.AsyncClient(
                transport=vetted_transport(self._policy),
                timeout=self._timeout,
                follow_redirects=False,
            ) as http,
            http.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise EhrProtocolError(
                    f"the output file answered {response.status_code}", url=file.url
                )
            number = 0
            async for line in response.aiter_lines():
                number += 1
                if not line.strip():
                    continue
                try:
                    resource = fhir_json.loads(line)
                except ValueError as exc:
                    bad_lines.append(BadLine(number, f"not JSON: {exc}"))
                    continue
                if not isinstance(resource, dict) or not isinstance(resource.get("id"), str):
                    bad_lines.append(BadLine(number, "not a resource with an id"))
                    continue
                if resource.get("resourceType") != file.type:
                    bad_lines.append(
                        BadLine(number, f"a {resource.get('resourceType')!r} in a {file.type} file")
                    )
                    continue
                yield resource


def _manifest(response: httpx.Response) -> Manifest:
    data = json_object(response)

    def files(key: str) -> list[OutputFile]:
        return [
            OutputFile(
                str(item["type"]), str(response.url.join(str(item["url"]))), item.get("count")
            )
            for item in data.get(key) or []
            if isinstance(item, dict) and item.get("type") and item.get("url")
        ]

    return Manifest(
        transaction_time=parse_instant(data.get("transactionTime")),
        requires_access_token=bool(data.get("requiresAccessToken", False)),
        output=files("output"),
        errors=files("error"),
    )
