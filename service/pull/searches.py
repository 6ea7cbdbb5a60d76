"""Which patient search each type offers on one EHR, from its behaviour where its
CapabilityStatement is silent.

Many servers publish a minimal CapabilityStatement (resources, no `searchParam`) and still answer
`Condition?patient=`. The answer for a type comes from, in order: the connection's
`search_overrides` (an admin's word), the CapabilityStatement, a probe remembered for the
connection (`ehr_search_probes`), and else a probe made now and remembered:
`GET [type]?patient=<id>&_count=1`, then `subject=Patient/<id>`, with `Prefer: handling=strict`
(FHIR R4 §3.1.1.4 "Handling Errors": a server that honours it refuses a parameter it does not
know, instead of ignoring it and returning every patient's resources). A searchset Bundle answers
"supported"; 400, 404, 405 or 501, an OperationOutcome, or a Bundle whose outcome entry says the
parameter was not supported answer "not supported". Anything else (a 403, a timeout) proves
nothing: the pull searches by `patient` this time, reports what the EHR answers, and the probe is
made again next time. Whatever a search returns, the pull keeps only the pulled patient's own
resources (`reader.keep_the_patients_own`).

A type the CapabilityStatement does not list at all is not probed: the EHR says it lacks it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

import orjson

from service.ehr.client import FHIR_JSON, FhirClient, JsonObject
from service.ehr.discovery import Capabilities
from service.ehr.errors import EhrError, EhrRejected, EhrServerError
from service.pull.reader import declared_patient_param

PATIENT_PARAMS: Final = ("patient", "subject")
UNSUPPORTED_STATUSES: Final = frozenset({400, 404, 405, 501})
Remember = Callable[[str, str | None], Awaitable[None]]


class _Unknown:
    """A probe that proved nothing."""


UNKNOWN: Final = _Unknown()


async def probe_patient_param(
    client: FhirClient, resource_type: str, remote_patient_id: str
) -> str | _Unknown | None:
    """The first of `patient`, `subject` the EHR answers; None if it answers neither; or
    UNKNOWN."""
    for param in PATIENT_PARAMS:
        value = remote_patient_id if param == "patient" else f"Patient/{remote_patient_id}"
        try:
            response = await client.send(
                "GET",
                resource_type,
                params=[(param, value), ("_count", "1")],
                headers={"Accept": FHIR_JSON, "Prefer": "handling=strict"},
            )
        except (EhrRejected, EhrServerError) as exc:
            if exc.remote_status in UNSUPPORTED_STATUSES:
                continue
            return UNKNOWN
        except EhrError:
            return UNKNOWN
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return UNKNOWN
        if not isinstance(body, dict):
            return UNKNOWN
        if body.get("resourceType") == "OperationOutcome" or _outcome_not_supported(body):
            continue
        if body.get("resourceType") == "Bundle":
            return param
        return UNKNOWN
    return None


def _outcome_not_supported(bundle: JsonObject) -> bool:
    """A searchset whose outcome entry says a parameter was not supported (ignored)."""
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
            for issue in resource.get("issue") or []:
                if isinstance(issue, dict) and issue.get("code") == "not-supported":
                    return True
    return False


class PatientSearches:
    """The patient search of each type for one connection, probed at most once per type (a
    pull job's patients share one instance; the answer is remembered for later jobs)."""

    def __init__(
        self,
        capabilities: Capabilities | None,
        overrides: Mapping[str, Sequence[str]] | None = None,
        remembered: Mapping[str, str | None] | None = None,
        remember: Remember | None = None,
    ) -> None:
        self._capabilities = capabilities
        self._overrides = dict(overrides or {})
        self._known: dict[str, str | None] = dict(remembered or {})
        self._remember = remember
        self._locks: dict[str, asyncio.Lock] = {}

    async def patient_params(
        self, client: FhirClient, types: Sequence[str], remote_patient_id: str
    ) -> dict[str, str | None]:
        """The decided types: "patient", "subject" or None. A type left out goes by the
        CapabilityStatement (`reader.search_params`)."""
        decided = await asyncio.gather(
            *(self._patient_param(client, t, remote_patient_id) for t in types)
        )
        params: dict[str, str | None] = {}
        for resource_type, param in zip(types, decided, strict=True):
            if not isinstance(param, _Unknown):
                params[resource_type] = param
        return params

    async def _patient_param(
        self, client: FhirClient, resource_type: str, remote_patient_id: str
    ) -> str | _Unknown | None:
        override = self._overrides.get(resource_type)
        if override is not None:
            return next((p for p in PATIENT_PARAMS if p in override), None)
        capabilities = self._capabilities
        if capabilities is None or resource_type not in capabilities.resources:
            return UNKNOWN  # no statement to be silent, or a type it does not list
        declared = declared_patient_param(capabilities, resource_type)
        if declared is not None and capabilities.supports(resource_type, "search-type"):
            return declared
        lock = self._locks.setdefault(resource_type, asyncio.Lock())
        async with lock:  # the patients of a job wait for one probe
            if resource_type in self._known:
                return self._known[resource_type]
            found = await probe_patient_param(client, resource_type, remote_patient_id)
            if isinstance(found, _Unknown):
                return "patient"  # try it; the search reports what the EHR answers
            self._known[resource_type] = found
            if self._remember is not None:
                await self._remember(resource_type, found)
            return found
