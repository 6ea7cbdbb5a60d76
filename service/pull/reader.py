"""Read one patient's record from an EHR: the Patient, then each type of the record by a
`patient=` search, following `next` links. Pure reading: nothing here touches the database.

A first pull of a patient from an EHR that offers `Patient/$everything` reads the whole
record in one paged operation instead (`read_everything`); later pulls are incremental, type by
type with `_lastUpdated`, which `$everything` cannot be relied on for (its `_since` is optional
and some servers leave `meta.lastUpdated` out). `_include`/`_revinclude` are not used: they add
nothing to a full read by `$everything`, and their included resources do not follow
`_lastUpdated`, so they cannot be incremental.

Each type is read on its own, so that a type the EHR refuses (403, 404, a search it does not
offer) or a page it garbles is reported with its reason while the other types go on. A
resource that is not valid FHIR is reported and skipped; the rest of its page is kept.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from mappings.fhir import resource_model
from service.ehr.client import FhirClient, JsonObject, SearchParams
from service.ehr.discovery import Capabilities
from service.ehr.errors import EhrError, EhrProtocolError, EhrTransientError

# What a case manager needs from the record, in the order it is read.
RECORD_TYPES: tuple[str, ...] = (
    "Condition",
    "Encounter",
    "Observation",
    "AllergyIntolerance",
    "MedicationRequest",
    "CarePlan",
    "Goal",
    "ServiceRequest",
    "CareTeam",
    "Procedure",
)
# What a connection's pull scope may name (service/pull/scope.py): US Core types searched by
# patient. The Patient itself is always read.
PULLABLE_TYPES: tuple[str, ...] = (
    *RECORD_TYPES,
    "MedicationStatement",
    "Immunization",
    "DiagnosticReport",
    "DocumentReference",
    "QuestionnaireResponse",
    "Device",
)
# A page the EHR garbled once is usually fine the second time; a paging loop is not.
TYPE_READ_ATTEMPTS = 2


@dataclass(frozen=True)
class PullTarget:
    """A remote patient named by its id on the EHR, or by an identifier to search for."""

    remote_id: str | None = None
    identifier: str | None = None  # system|value

    def label(self) -> str:
        return f"Patient/{self.remote_id}" if self.remote_id else f"identifier {self.identifier}"


@dataclass(frozen=True)
class Failure:
    resource_type: str
    reason: str
    remote_id: str | None = None


@dataclass
class TypeRead:
    """What one type's search returned: resources by id (a resource repeated across pages is
    kept once), the server's clock at the search, and why the read stopped early if it did."""

    resource_type: str
    resources: dict[str, JsonObject] = field(default_factory=dict)
    server_time: dt.datetime | None = None
    failure: str | None = None
    invalid: list[Failure] = field(default_factory=list)
    # True when the EHR offers no patient search on the type (its resources may still be
    # reachable by reference).
    not_searchable: bool = False

    @property
    def complete(self) -> bool:
        return self.failure is None


async def read_remote_patient(client: FhirClient, target: PullTarget) -> JsonObject:
    """The EHR's Patient for the target; EhrError when it cannot be read or is not unique.
    A garbled answer or a transient failure gets one more attempt, like a type's search."""
    for attempt in range(1, TYPE_READ_ATTEMPTS + 1):
        try:
            return await _read_remote_patient(client, target)
        except (EhrProtocolError, EhrTransientError):
            if attempt == TYPE_READ_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def _read_remote_patient(client: FhirClient, target: PullTarget) -> JsonObject:
    if target.remote_id is not None:
        patient = await client.read("Patient", target.remote_id)
    else:
        assert target.identifier is not None
        found = [p async for p in client.search("Patient", {"identifier": target.identifier})]
        if len(found) != 1:
            raise EhrProtocolError(
                f"identifier {target.identifier} matches {len(found)} patients on the EHR",
                url=client.base_url,
            )
        patient = found[0]
    invalid = validation_error(patient)
    if invalid is not None:
        raise EhrProtocolError(f"the Patient is not valid FHIR: {invalid}", url=client.base_url)
    return patient


# The patient search of each type on one EHR, as learned beyond its CapabilityStatement (an
# admin's override, or a probe: service/pull/searches.py): "patient" or "subject", or None where
# it offers neither. A type left out goes by the CapabilityStatement.
PatientParams = Mapping[str, str | None]


def declared_patient_param(capabilities: Capabilities | None, resource_type: str) -> str | None:
    """The patient search the CapabilityStatement declares on the type (any, without one)."""
    if capabilities is None or capabilities.supports_search_param(resource_type, "patient"):
        return "patient"
    if capabilities.supports_search_param(resource_type, "subject"):
        return "subject"
    return None


def search_params(
    resource_type: str,
    remote_patient_id: str,
    capabilities: Capabilities | None,
    since: dt.datetime | None,
    observation_categories: Sequence[str],
    patient_params: PatientParams | None = None,
) -> SearchParams | str:
    """The search for one type, or why the EHR offers none (as a string)."""
    if patient_params is not None and resource_type in patient_params:
        param = patient_params[resource_type]
    else:
        offered = capabilities is None or capabilities.supports(resource_type, "search-type")
        if not offered:
            return f"the EHR does not offer a search on {resource_type}"
        param = declared_patient_param(capabilities, resource_type)
    if param is None:
        return f"the EHR offers no patient or subject search on {resource_type}"
    params: list[tuple[str, str]] = [
        (param, remote_patient_id if param == "patient" else f"Patient/{remote_patient_id}")
    ]
    if resource_type == "Observation" and observation_categories:
        params.append(("category", ",".join(observation_categories)))
    if since is not None and (
        capabilities is None or capabilities.supports_search_param(resource_type, "_lastUpdated")
    ):
        params.append(("_lastUpdated", "gt" + format_instant(since)))
    return params


async def read_type(client: FhirClient, resource_type: str, params: SearchParams | str) -> TypeRead:
    read = TypeRead(resource_type)
    if isinstance(params, str):
        read.failure = params
        read.not_searchable = True
        return read
    for attempt in range(TYPE_READ_ATTEMPTS):
        read.failure = None
        try:
            await _read_pages(client, resource_type, params, read)
        except EhrProtocolError as exc:
            read.failure = exc.detail
            if "paging loop" in exc.detail or attempt + 1 == TYPE_READ_ATTEMPTS:
                break
        except EhrTransientError as exc:
            # The client already retried with backoff; one more full pass, then report it.
            read.failure = exc.detail
            if attempt + 1 == TYPE_READ_ATTEMPTS:
                break
        except EhrError as exc:
            read.failure = exc.detail
            break
        else:
            break
    return read


async def _read_pages(
    client: FhirClient, resource_type: str, params: SearchParams, read: TypeRead
) -> None:
    server_time: dt.datetime | None = None
    first = True
    async for page in client.search_pages(resource_type, params):
        if first:
            # The server's clock when it ran the search: the next pull asks for what changed
            # after it. The local clock would skew against the EHR's.
            server_time = parse_instant((page.get("meta") or {}).get("lastUpdated"))
            first = False
        for entry in page.get("entry") or []:
            if not isinstance(entry, dict):
                continue
            if (entry.get("search") or {}).get("mode", "match") != "match":
                continue
            resource = entry.get("resource")
            _keep(read, resource_type, resource)
    read.server_time = server_time


def _keep(read: TypeRead, resource_type: str, resource: object) -> None:
    if not isinstance(resource, dict):
        read.invalid.append(Failure(resource_type, "a search entry without a resource"))
        return
    remote_id = resource.get("id")
    if resource.get("resourceType") != resource_type or not isinstance(remote_id, str):
        read.invalid.append(
            Failure(
                resource_type,
                f"a {resource.get('resourceType')!r} entry without a usable id",
                remote_id if isinstance(remote_id, str) else None,
            )
        )
        return
    problem = validation_error(resource)
    if problem is not None:
        read.invalid.append(Failure(resource_type, problem, remote_id))
        return
    read.resources[remote_id] = resource


def validation_error(resource: JsonObject) -> str | None:
    """Why the resource is not valid FHIR R4, or None. Validated once, on ingest."""
    try:
        resource_model(str(resource.get("resourceType"))).model_validate(resource)
    except ValidationError as exc:
        return f"not valid FHIR: {exc.error_count()} errors, first: {exc.errors()[0]['msg']}"
    except (ValueError, KeyError) as exc:
        return f"not a FHIR resource: {exc}"
    return None


async def read_record_types(
    client: FhirClient,
    remote_patient_id: str,
    capabilities: Capabilities | None,
    cursors: dict[str, dt.datetime],
    observation_categories: Sequence[str],
    types: Sequence[str] = RECORD_TYPES,
    patient_params: PatientParams | None = None,
) -> list[TypeRead]:
    """Every type of the record, read side by side (the client bounds the requests in flight)."""
    return list(
        await asyncio.gather(
            *(
                read_type(
                    client,
                    resource_type,
                    search_params(
                        resource_type,
                        remote_patient_id,
                        capabilities,
                        cursors.get(resource_type),
                        observation_categories,
                        patient_params,
                    ),
                )
                for resource_type in types
            )
        )
    )


def parse_instant(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def format_instant(moment: dt.datetime) -> str:
    # Milliseconds (what FHIR servers keep), rounded down: at worst one resource is read again.
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Types some EHRs hold but do not let a client search by patient (sekmet: Goal, CareTeam), and
# the CarePlan element that references them.
CARE_PLAN_REFERENCES: dict[str, str] = {"Goal": "goal", "CareTeam": "careTeam"}


def referenced_ids(care_plans: Sequence[JsonObject], resource_type: str) -> list[str]:
    """Ids of `resource_type` that the CarePlans reference (relative references only)."""
    element = CARE_PLAN_REFERENCES[resource_type]
    ids: dict[str, None] = {}
    for plan in care_plans:
        for reference in plan.get(element) or []:
            value = reference.get("reference") if isinstance(reference, dict) else None
            if isinstance(value, str):
                kind, _, remote_id = value.partition("/")
                if kind == resource_type and remote_id and "/" not in remote_id:
                    ids[remote_id] = None
    return list(ids)


async def read_by_reference(
    client: FhirClient, resource_type: str, remote_ids: Sequence[str]
) -> TypeRead:
    """Read each referenced resource by id: the way to a type the EHR does not search."""
    read = TypeRead(resource_type)

    async def read_one(remote_id: str) -> None:
        try:
            resource = await client.read(resource_type, remote_id)
        except (EhrError, ValueError) as exc:
            reason = exc.detail if isinstance(exc, EhrError) else str(exc)
            read.invalid.append(Failure(resource_type, reason, remote_id))
            return
        _keep(read, resource_type, resource)

    await asyncio.gather(*(read_one(remote_id) for remote_id in remote_ids))
    return read


# Where each record type names its patient (FHIR R4).
PATIENT_ELEMENT: dict[str, str] = {
    "AllergyIntolerance": "patient",
    "Immunization": "patient",
    "Device": "patient",
}


def keep_the_patients_own(reads: Sequence[TypeRead], remote_patient_id: str) -> None:
    """Move out of each read the resources about another patient, as invalid: an EHR that
    ignores the patient parameter, or a plan that references another patient's goal, must not
    file that patient's data under this one."""
    own = f"Patient/{remote_patient_id}"
    for read in reads:
        element = PATIENT_ELEMENT.get(read.resource_type, "subject")
        for remote_id, resource in list(read.resources.items()):
            reference = (resource.get(element) or {}).get("reference")
            if isinstance(reference, str) and not (
                reference == own or reference.endswith("/" + own)
            ):
                del read.resources[remote_id]
                read.invalid.append(
                    Failure(
                        read.resource_type,
                        f"about {reference}, not the patient pulled ({own}): left out",
                        remote_id,
                    )
                )


def in_categories(resource: JsonObject, categories: Sequence[str]) -> bool:
    """Whether an Observation has one of the categories (any, when none is given): applied to
    what a server sends, which may ignore `category` or a Bulk `_typeFilter`."""
    if not categories:
        return True
    codes = {
        coding.get("code")
        for concept in resource.get("category") or []
        if isinstance(concept, dict)
        for coding in concept.get("coding") or []
        if isinstance(coding, dict)
    }
    return bool(codes & set(categories))


def _server_time(page: JsonObject, served_at: dt.datetime | None) -> dt.datetime | None:
    """The Bundle's own stamp, else the client's lower bound of the server's clock."""
    return parse_instant((page.get("meta") or {}).get("lastUpdated")) or served_at


async def read_everything(
    client: FhirClient,
    remote_patient_id: str,
    capabilities: Capabilities,
    observation_categories: Sequence[str],
    types: Sequence[str] = RECORD_TYPES,
    patient_params: PatientParams | None = None,
) -> list[TypeRead] | None:
    """The record by `Patient/{id}/$everything`, split by type; None if the EHR failed it (the
    caller then searches type by type). Types the EHR offers no patient search on are left to
    the by-reference reads, as in a type-by-type pull (a server may leave them out of the
    patient's compartment)."""
    reads: dict[str, TypeRead] = {}
    wanted: list[str] = []
    for resource_type in types:
        params = search_params(
            resource_type, remote_patient_id, capabilities, None, (), patient_params
        )
        if isinstance(params, str):
            reads[resource_type] = TypeRead(resource_type, failure=params, not_searchable=True)
        else:
            reads[resource_type] = TypeRead(resource_type)
            wanted.append(resource_type)
    server_time: dt.datetime | None = None
    first = True
    try:
        async for page, served_at in client.everything_pages(
            remote_patient_id, [("_type", ",".join(wanted))]
        ):
            if first:
                server_time, first = _server_time(page, served_at), False
            for entry in page.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                kind = resource.get("resourceType") if isinstance(resource, dict) else None
                if kind not in wanted or not isinstance(resource, dict):
                    continue  # the Patient itself, other types, other patients named
                if kind == "Observation" and not in_categories(resource, observation_categories):
                    continue
                _keep(reads[kind], kind, resource)
    except EhrError:
        return None
    for resource_type in wanted:
        reads[resource_type].server_time = server_time
    return list(reads.values())
