"""Async FHIR R4 client for one EHR connection.

One `FhirClient` per connection: it owns a pooled `httpx.AsyncClient`, a semaphore that bounds
the requests in flight to that EHR, the retry policy and the (optional) token provider.

Decimals: bodies are read and written with `mappings.fhir_json`, so an EHR's `1.50` stays
`1.50` (FHIR R4 §2.24.0.1) and compares equal wherever pulled and pushed content meet; the
standard library's parser this takes costs more than orjson, but a number is never rewritten.
fhir.resources validation (about 300 µs per
resource, see PERFORMANCE-NOTES) only runs when the caller asks for a typed resource by passing
a model class, as in `read(Goal, "123") -> Goal`.

Retries: timeouts, connection failures, 429 and 500/502/503/504 are retried with exponential
backoff and full jitter, honouring `Retry-After`. A POST is only retried when the server cannot
have acted on it (connect failure, 429, 503) or when it is a conditional create, so a retry
never creates a duplicate. A 429 without `Retry-After` (RFC 6585 §4 makes the header
optional) gets the same exponential backoff as a 5xx; with one, its delay (RFC 9110 §10.2.3:
seconds or an HTTP date) is honoured.

Circuit breaker: a client made for a connection shares that connection's breaker
(service.ehr.circuit). Every attempt asks it first, and reports to it how the attempt went, so
a failing EHR stops receiving retries from every push and pull at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar, overload

import httpx
from pydantic import ValidationError

from mappings import fhir_json
from mappings.fhir import FHIRResourceModel
from service.ehr.circuit import CircuitBreaker
from service.ehr.errors import (
    EhrConnectionError,
    EhrError,
    EhrForbidden,
    EhrNotFound,
    EhrPreconditionFailed,
    EhrProtocolError,
    EhrRateLimited,
    EhrRejected,
    EhrServerError,
    EhrTimeout,
    EhrTransientError,
    EhrUnauthorized,
    EhrUrlRefused,
)
from service.ehr.pinned_transport import vetted_transport
from service.ehr.url_policy import UrlPolicy, same_origin
from service.observability.metrics import ehr_call_observed
from service.settings import Settings

R = TypeVar("R", bound=FHIRResourceModel)
JsonObject = dict[str, Any]
SearchParams = Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]]
QueryPairs = list[tuple[str, str | int | float | bool | None]]

FHIR_JSON = "application/fhir+json"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses after which the server cannot have processed the request: safe to resend a POST.
NOT_PROCESSED_STATUSES = frozenset({429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_SAME_ORIGIN_REDIRECTS = 3
RESOURCE_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
VERSION_IN_ETAG = re.compile(r'^(?:W/)?"([^"]+)"$')
VERSION_IN_LOCATION = re.compile(r"/_history/([^/?#]+)")


class TokenProvider(Protocol):
    """Supplies bearer tokens; the client calls `reauthenticate` once when the EHR answers 401."""

    async def access_token(self) -> str: ...

    async def reauthenticate(self, rejected_token: str) -> str: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    # A Retry-After longer than this is not slept through: the error goes to the caller, whose
    # job scheduler is a better place to wait an hour than a coroutine.
    max_retry_after: float = 120.0

    def backoff(self, retry_number: int, jitter: Callable[[], float]) -> float:
        """Exponential backoff with full jitter (AWS architecture blog, 'Exponential Backoff')."""
        return jitter() * min(self.max_delay, self.base_delay * 2.0**retry_number)


@dataclass(frozen=True)
class WriteResult:
    """What a create or update returned. `resource` is None when the server sent no body."""

    status: int
    resource: JsonObject | None
    etag: str | None
    version_id: str | None
    location: str | None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def as_etag(version: str) -> str:
    """Accept a bare versionId or a full ETag and return the ETag form FHIR servers expect."""
    return version if version.startswith(('W/"', '"')) else f'W/"{version}"'


class FhirClient:
    def __init__(
        self,
        base_url: str,
        *,
        policy: UrlPolicy,
        token_provider: TokenProvider | None = None,
        timeout_seconds: float = 30.0,
        max_concurrency: int = 4,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        http: httpx.AsyncClient | None = None,
        metrics_label: str = "unregistered",
        breaker: CircuitBreaker | None = None,
        limiter: asyncio.Semaphore | None = None,
    ) -> None:
        """`limiter`: a semaphore shared with the process's other clients of the same EHR
        (service.ehr.request_limits); without one, this client bounds its own requests."""
        self.base_url = base_url.rstrip("/")
        # The connection id, naming this EHR in the request metrics.
        self._metrics_label = metrics_label
        self.breaker = breaker
        self._policy = policy
        self._token_provider = token_provider
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._jitter = jitter
        self._semaphore = limiter or asyncio.Semaphore(max_concurrency)
        self._checked_origins: set[tuple[str, str, int | None]] = set()
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            transport=vetted_transport(
                policy,
                # Keep every connection alive: a pull or push at full concurrency reuses them.
                limits=httpx.Limits(
                    max_connections=max_concurrency, max_keepalive_connections=max_concurrency
                ),
            ),
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
            headers={"Accept": FHIR_JSON},
        )

    @classmethod
    def from_settings(
        cls,
        base_url: str,
        settings: Settings,
        *,
        token_provider: TokenProvider | None = None,
        policy: UrlPolicy | None = None,
        metrics_label: str = "unregistered",
        breaker: CircuitBreaker | None = None,
        limiter: asyncio.Semaphore | None = None,
    ) -> FhirClient:
        return cls(
            base_url,
            metrics_label=metrics_label,
            policy=policy or UrlPolicy.from_settings(settings),
            token_provider=token_provider,
            timeout_seconds=settings.ehr_timeout_seconds,
            max_concurrency=settings.ehr_max_concurrency,
            retry=RetryPolicy(max_retries=settings.ehr_max_retries),
            breaker=breaker,
            limiter=limiter,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # ---- reads -------------------------------------------------------------------------------

    @overload
    async def read(self, resource_type: type[R], resource_id: str) -> R: ...

    @overload
    async def read(self, resource_type: str, resource_id: str) -> JsonObject: ...

    async def read(self, resource_type: type[R] | str, resource_id: str) -> R | JsonObject:
        type_name = _type_name(resource_type)
        if not RESOURCE_ID.fullmatch(resource_id):
            raise ValueError(f"not a FHIR resource id: {resource_id!r}")
        response = await self.send("GET", f"{type_name}/{resource_id}")
        data = json_object(response)
        if data.get("resourceType") != type_name:
            raise EhrProtocolError(
                f"asked for {type_name}, got {data.get('resourceType')!r}", url=str(response.url)
            )
        if isinstance(resource_type, str):
            return data
        return _validated(resource_type, data, str(response.url))

    async def fetch_json(self, url_or_path: str, *, accept: str = FHIR_JSON) -> JsonObject:
        """GET any JSON document under this EHR (discovery documents, `next` links)."""
        response = await self.send("GET", url_or_path, headers={"Accept": accept})
        return json_object(response)

    @overload
    def search(
        self, resource_type: type[R], params: SearchParams | None = None
    ) -> AsyncIterator[R]: ...

    @overload
    def search(
        self, resource_type: str, params: SearchParams | None = None
    ) -> AsyncIterator[JsonObject]: ...

    async def search(
        self, resource_type: type[R] | str, params: SearchParams | None = None
    ) -> AsyncIterator[R] | AsyncIterator[JsonObject]:
        """Every matching resource, across all pages (`include` entries are skipped)."""
        async for page in self.search_pages(_type_name(resource_type), params):
            for entry in page.get("entry") or []:
                resource = entry.get("resource")
                if not isinstance(resource, dict):
                    continue
                if (entry.get("search") or {}).get("mode", "match") != "match":
                    continue
                if isinstance(resource_type, str):
                    yield resource
                else:
                    yield _validated(resource_type, resource, page.get("id") or self.base_url)

    async def search_pages(
        self, resource_type: str, params: SearchParams | None = None
    ) -> AsyncIterator[JsonObject]:
        """Each searchset Bundle, following `next` links (absolute or relative) until none is left.

        A `next` link that was already fetched means the server is looping: EhrProtocolError.
        A `next` link to another origin is refused, like a redirect would be.
        """
        if not RESOURCE_TYPE.fullmatch(resource_type):
            raise ValueError(f"not a FHIR resource type: {resource_type!r}")
        response = await self.send("GET", resource_type, params=_query(params))
        async for page, _ in self._pages(response):
            yield page

    async def everything_pages(
        self, patient_id: str, params: SearchParams | None = None
    ) -> AsyncIterator[tuple[JsonObject, dt.datetime | None]]:
        """Each Bundle of `Patient/{id}/$everything`, paged like a search, with a lower bound of
        the server's clock when it ran the request: its `Date` header (whole seconds, stamped
        after the work) less the time the exchange took. For servers that leave the Bundle's
        `meta.lastUpdated` out; None without a usable Date."""
        if not RESOURCE_ID.fullmatch(patient_id):
            raise ValueError(f"not a FHIR id: {patient_id!r}")
        path = f"Patient/{patient_id}/$everything"
        response = await self.send("GET", path, params=_query(params))
        async for page, answered in self._pages(response):
            yield page, _served_at(answered)

    async def _pages(
        self, response: httpx.Response
    ) -> AsyncIterator[tuple[JsonObject, httpx.Response]]:
        seen = {str(response.url)}
        while True:
            page = json_object(response)
            if page.get("resourceType") != "Bundle":
                raise EhrProtocolError(
                    f"search answered with {page.get('resourceType')!r}, not a Bundle",
                    url=str(response.url),
                )
            yield page, response
            next_url = _next_link(page)
            if next_url is None:
                return
            absolute = str(response.url.join(next_url))
            if absolute in seen:
                raise EhrProtocolError(
                    "paging loop: the next link was already fetched", url=absolute
                )
            if not same_origin(absolute, self.base_url):
                raise EhrUrlRefused("a next link points to another origin", url=absolute)
            seen.add(absolute)
            response = await self.send("GET", absolute)

    # ---- writes ------------------------------------------------------------------------------

    async def create(
        self,
        resource: FHIRResourceModel | JsonObject,
        *,
        if_none_exist: str | SearchParams | None = None,
    ) -> WriteResult:
        """POST the resource; `if_none_exist` (query string or params) makes it conditional."""
        body, type_name, _ = _serialise(resource)
        headers = {"Content-Type": FHIR_JSON, "Prefer": "return=representation"}
        if if_none_exist is not None:
            headers["If-None-Exist"] = (
                if_none_exist
                if isinstance(if_none_exist, str)
                else str(httpx.QueryParams(_query(if_none_exist)))
            )
        response = await self.send("POST", type_name, content=body, headers=headers)
        return _write_result(response)

    async def update(
        self, resource: FHIRResourceModel | JsonObject, *, if_match: str | None = None
    ) -> WriteResult:
        """PUT the resource by id; `if_match` (versionId or ETag) guards against lost updates."""
        body, type_name, resource_id = _serialise(resource)
        if resource_id is None or not RESOURCE_ID.fullmatch(resource_id):
            raise ValueError("update needs a resource with a valid id")
        headers = {"Content-Type": FHIR_JSON, "Prefer": "return=representation"}
        if if_match is not None:
            headers["If-Match"] = as_etag(if_match)
        response = await self.send(
            "PUT", f"{type_name}/{resource_id}", content=body, headers=headers
        )
        return _write_result(response)

    # ---- transport ---------------------------------------------------------------------------

    async def send(
        self,
        method: str,
        url_or_path: str,
        *,
        params: QueryPairs | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One logical request: SSRF check, auth, retries, same-origin redirects, status mapping.

        Returns only 2xx (and 304) responses; everything else raises an EhrError subclass.
        """
        url = httpx.URL(self._absolute(url_or_path))
        await self._check(url)
        request_headers = dict(headers or {})
        retry_safe = method in IDEMPOTENT_METHODS or "If-None-Exist" in request_headers
        reauthenticated = False
        retries = 0
        redirects = 0
        while True:
            token = await self._token_provider.access_token() if self._token_provider else None
            if token is not None:
                request_headers["Authorization"] = f"Bearer {token}"
            failure: EhrTransientError
            retry_after: float | None = None
            sent_may_have_been_processed = True
            if self.breaker is not None:
                self.breaker.before_request(str(url))  # raises EhrCircuitOpen while open
            try:
                async with self._semaphore:
                    with ehr_call_observed(self._metrics_label, method) as call:
                        response = await self._http.request(
                            method, url, params=params, content=content, headers=request_headers
                        )
                        call.status = response.status_code
            except httpx.TimeoutException as exc:
                failure = EhrTimeout(f"{method} timed out: {exc!r}", url=str(url))
                never_sent = isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
                sent_may_have_been_processed = not never_sent
            except httpx.TransportError as exc:
                failure = EhrConnectionError(f"{method} failed: {exc!r}", url=str(url))
                sent_may_have_been_processed = not isinstance(exc, httpx.ConnectError)
            else:
                status = response.status_code
                if self.breaker is not None and status not in RETRYABLE_STATUSES:
                    self.breaker.record_success()  # the EHR answered: it is up
                if status == 401 and token is not None and not reauthenticated:
                    # The token may have been revoked or expired early: get a fresh one, once.
                    assert self._token_provider is not None
                    reauthenticated = True
                    await self._token_provider.reauthenticate(token)
                    continue
                if status in REDIRECT_STATUSES and method in ("GET", "HEAD"):
                    url = await self._redirect_target(url, response, redirects)
                    params = None  # the Location carries its own query
                    redirects += 1
                    continue
                if status not in RETRYABLE_STATUSES:
                    return _raise_for_status(response)
                sent_may_have_been_processed = status not in NOT_PROCESSED_STATUSES
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if status == 429:
                    failure = EhrRateLimited(
                        "too many requests", url=str(url), retry_after=retry_after
                    )
                else:
                    failure = EhrServerError(
                        f"{method} answered {status}", url=str(url), remote_status=status
                    )
            if self.breaker is not None:
                self.breaker.record_failure()
            if retries >= self._retry.max_retries or (
                sent_may_have_been_processed and not retry_safe
            ):
                raise failure
            if retry_after is not None and retry_after > self._retry.max_retry_after:
                raise failure
            delay = (
                retry_after
                if retry_after is not None
                else self._retry.backoff(retries, self._jitter)
            )
            retries += 1
            await self._sleep(delay)

    def _absolute(self, url_or_path: str) -> str:
        if url_or_path.startswith(("https://", "http://")):
            return url_or_path
        return f"{self.base_url}/{url_or_path.lstrip('/')}"

    async def _check(self, url: httpx.URL) -> None:
        # Resolving DNS on every request would be wasteful; each origin is checked once per client.
        origin = (url.scheme, url.host, url.port)
        if origin not in self._checked_origins:
            await self._policy.check(url)
            self._checked_origins.add(origin)

    async def _redirect_target(
        self, url: httpx.URL, response: httpx.Response, redirects: int
    ) -> httpx.URL:
        location = response.headers.get("Location")
        if not location:
            raise EhrProtocolError(f"{response.status_code} without a Location", url=str(url))
        target = url.join(location)
        if not same_origin(target, url):
            raise EhrUrlRefused(f"redirect to another origin refused: {target}", url=str(url))
        if redirects >= MAX_SAME_ORIGIN_REDIRECTS:
            raise EhrProtocolError("too many redirects", url=str(url))
        return target


# ---- response handling -------------------------------------------------------------------------


def _type_name(resource_type: type[FHIRResourceModel] | str) -> str:
    if isinstance(resource_type, str):
        return resource_type
    return str(resource_type.get_resource_type())


def _query(params: SearchParams | None) -> QueryPairs:
    pairs: QueryPairs = []
    if params is None:
        return pairs
    if isinstance(params, Mapping):
        for name, value in params.items():
            if isinstance(value, str):
                pairs.append((name, value))
            else:
                pairs.extend((name, item) for item in value)
        return pairs
    pairs.extend(params)
    return pairs


def _served_at(response: httpx.Response) -> dt.datetime | None:
    try:
        stamped = email.utils.parsedate_to_datetime(response.headers["Date"])
    except (KeyError, TypeError, ValueError):
        return None
    if stamped.tzinfo is None:
        return None
    return stamped - response.elapsed


def json_object(response: httpx.Response) -> JsonObject:
    """The response body as a JSON object; EhrProtocolError when it is anything else."""
    try:
        data = fhir_json.loads(response.content)
    except ValueError as exc:
        raise EhrProtocolError(f"the response is not JSON: {exc}", url=str(response.url)) from exc
    if not isinstance(data, dict):
        raise EhrProtocolError("the response is not a JSON object", url=str(response.url))
    return data


def _validated(model: type[R], data: JsonObject, url: str) -> R:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise EhrProtocolError(
            f"the {model.get_resource_type()} is not valid FHIR: {exc.error_count()} errors, "
            f"first: {exc.errors()[0]['msg']}",
            url=url,
        ) from exc


def _next_link(bundle: JsonObject) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


def _serialise(resource: FHIRResourceModel | JsonObject) -> tuple[bytes, str, str | None]:
    if isinstance(resource, dict):
        type_name = resource.get("resourceType")
        if not isinstance(type_name, str) or not RESOURCE_TYPE.fullmatch(type_name):
            raise ValueError("the resource has no valid resourceType")
        resource_id = resource.get("id")
        return (
            fhir_json.dumps(resource),
            type_name,
            resource_id if isinstance(resource_id, str) else None,
        )
    body = resource.model_dump_json(exclude_none=True).encode()
    return body, str(resource.get_resource_type()), resource.id


def _outcome(response: httpx.Response) -> JsonObject | None:
    try:
        data = fhir_json.loads(response.content)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("resourceType") == "OperationOutcome":
        return data
    return None


def _outcome_text(outcome: JsonObject | None) -> str | None:
    for issue in (outcome or {}).get("issue") or []:
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            if text:
                return str(text)
    return None


def _raise_for_status(response: httpx.Response) -> httpx.Response:
    status = response.status_code
    if status < 300 or status == 304:
        return response
    url = str(response.url)
    outcome = _outcome(response)
    detail = f"{response.request.method} answered {status}"
    reason = _outcome_text(outcome)
    if reason:
        detail = f"{detail}: {reason}"
    error_class: type[EhrRejected]
    if status == 401:
        error_class = EhrUnauthorized
    elif status == 403:
        error_class = EhrForbidden
    elif status in (404, 410):
        error_class = EhrNotFound
    elif status == 412:
        error_class = EhrPreconditionFailed
    elif 400 <= status < 500:
        error_class = EhrRejected
    elif status >= 500:
        raise EhrServerError(detail, url=url, remote_status=status)
    else:
        raise EhrProtocolError(f"unexpected status {status}", url=url)
    raise error_class(detail, url=url, remote_status=status, outcome=outcome)


def _write_result(response: httpx.Response) -> WriteResult:
    resource = json_object(response) if response.content.strip() else None
    etag = response.headers.get("ETag")
    location = response.headers.get("Location") or response.headers.get("Content-Location")
    return WriteResult(
        status=response.status_code,
        resource=resource,
        etag=etag,
        version_id=_version_id(resource, etag, location),
        location=location,
    )


def _version_id(resource: JsonObject | None, etag: str | None, location: str | None) -> str | None:
    """The new versionId: from meta, else from the ETag, else from a `_history/N` Location."""
    meta = (resource or {}).get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("versionId"), str):
        return str(meta["versionId"])
    etag_match = VERSION_IN_ETAG.match(etag) if etag else None
    if etag_match:
        return etag_match.group(1)
    location_match = VERSION_IN_LOCATION.search(location) if location else None
    return location_match.group(1) if location_match else None


__all__ = [
    "EhrError",
    "FhirClient",
    "RetryPolicy",
    "TokenProvider",
    "WriteResult",
    "as_etag",
    "parse_retry_after",
]
