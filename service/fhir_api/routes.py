"""`/fhir` routes: thin adapters around the FHIR engine (`service.fhir_engine`).

Each route turns the HTTP request into a `FhirRequest`, lets `FhirEngine.handle` do the
interaction with the caller's principal (`FhirPrincipal`, from the bearer token), and turns the
`FhirOutcome` back into a response, handing its audit facts to the audit middleware. The routes
stay one per interaction so that the OpenAPI document, and the CapabilityStatement built from
it, list what is implemented.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.events import AccessFacts, Disclosure
from service.audit.middleware import (
    change_audited,
    note_access,
    note_entry_access,
    record_with_change,
)
from service.db.session import DatabaseDep
from service.fhir_api.http import check_format, fhir_request, response_of
from service.fhir_api.idempotency import Idempotency, IdempotencyDep
from service.fhir_api.metadata import statement_of
from service.fhir_auth.principal import FhirPrincipal, FhirPrincipalDep
from service.fhir_engine.request import FhirOutcome, FhirRequest
from service.fhir_engine.router import FhirEngine, OutcomeKeeper, interaction_of

router = APIRouter(prefix="/fhir", tags=["fhir"], dependencies=[Depends(check_format)])

ResourceType = Annotated[str, Path(description="A supported resource type, e.g. CarePlan")]
FhirId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]


async def fhir_engine(request: Request, database: DatabaseDep) -> FhirEngine:
    app = request.app
    return FhirEngine(database, capability_statement=lambda: statement_of(app))


EngineDep = Annotated[FhirEngine, Depends(fhir_engine)]


async def _served(
    request: Request,
    engine: FhirEngine,
    principal: FhirPrincipal,
    fhir: FhirRequest,
    idempotency: Idempotency | None = None,
) -> Response:
    if idempotency is not None and idempotency.replay is not None:
        # The first answer again: a disclosure like the first, audited as the first was (its
        # GET entries each as its own read).
        disclosed = idempotency.replay_disclosed or Disclosure(
            AccessFacts(interaction_of(fhir), fhir.resource_type, agent=principal.subject)
        )
        for facts, status in disclosed.entries:
            facts.replay = True
            note_entry_access(request, facts, status)
        disclosed.facts.replay = True
        note_access(request, disclosed.facts)
        return idempotency.replay
    kept: list[FhirOutcome] = []
    result = await engine.handle(
        fhir,
        principal,
        keep=_kept_with_change(request, idempotency, kept),
        # A batch entry's change and its record commit together; its answer is the batch's.
        keep_entry=_kept_with_change(request, None, []),
    )
    if kept and result is kept[-1]:
        # The change committed, and its audit record (and stored answer) with it.
        change_audited(request, result.status)
    for facts, status in result.entry_facts:
        note_entry_access(request, facts, status)
    if result.facts is not None:
        note_access(request, result.facts)
    response = response_of(result)
    if idempotency is not None and not idempotency.answered and result.status < 300:
        # A batch: its entries committed one by one, so its answer is stored after them.
        response = await idempotency.remember(response, _disclosed(result))
    return response


def _kept_with_change(
    request: Request, idempotency: Idempotency | None, kept: list[FhirOutcome]
) -> OutcomeKeeper:
    """What a write adds to its own transaction: its audit record, and the answer of an
    `Idempotency-Key` request; `kept` collects the outcome that they were written for."""
    held = idempotency if idempotency is not None and idempotency.token is not None else None

    async def keep(session: AsyncSession, outcome: FhirOutcome) -> None:
        if held is not None:
            await held.remember(response_of(outcome), _disclosed(outcome), session)
        assert outcome.facts is not None  # the engine hands them with the outcome
        await record_with_change(request, session, outcome.facts, outcome.status)
        kept.append(outcome)

    return keep


def _disclosed(outcome: FhirOutcome) -> Disclosure | None:
    """What `outcome` discloses, as it was audited (the interaction, and each of its entries:
    a transaction's GET entries, a batch's entries), kept with an Idempotency-Key's answer."""
    if outcome.facts is None:
        return None
    return Disclosure(outcome.facts, [*outcome.entry_facts, *outcome.kept_entry_facts])


@router.post("/{resource_type}/$validate")
async def validate_resource(
    request: Request,
    resource_type: ResourceType,
    engine: EngineDep,
    principal: FhirPrincipalDep,
    profile: Annotated[str | None, Query(description="Canonical URL of one profile")] = None,
) -> Response:
    """Check a resource against the profiles; nothing is stored."""
    fhir = await fhir_request(request, resource_type, operation="$validate")
    return await _served(request, engine, principal, fhir)


@router.put("/{resource_type}/{resource_id}")
async def update(
    request: Request,
    resource_type: ResourceType,
    resource_id: FhirId,
    engine: EngineDep,
    principal: FhirPrincipalDep,
) -> Response:
    """A new version of a case's CarePlan, Goal or ServiceRequest (see `fhir_engine.updates`)."""
    fhir = await fhir_request(request, resource_type, resource_id)
    return await _served(request, engine, principal, fhir)


@router.patch("/{resource_type}/{resource_id}")
async def patch(
    request: Request,
    resource_type: ResourceType,
    resource_id: FhirId,
    engine: EngineDep,
    principal: FhirPrincipalDep,
) -> Response:
    """A JSON Patch (`application/json-patch+json`) of what `PUT` may update, applied to the
    current version and then updated like a PUT (see `fhir_engine.patches`)."""
    fhir = await fhir_request(request, resource_type, resource_id)
    return await _served(request, engine, principal, fhir)


@router.put("/{resource_type}")
async def conditional_update(
    request: Request, resource_type: ResourceType, engine: EngineDep, principal: FhirPrincipalDep
) -> Response:
    """`PUT Type?identifier=system|value`: the update of the one resource that matches."""
    fhir = await fhir_request(request, resource_type)
    return await _served(request, engine, principal, fhir)


@router.post("/{resource_type}")
async def create(
    request: Request,
    resource_type: ResourceType,
    idempotency: IdempotencyDep,
    engine: EngineDep,
    principal: FhirPrincipalDep,
) -> Response:
    """Create (a CarePlan opens a case; see `fhir_engine.creates`), conditional with
    `If-None-Exist`; an `Idempotency-Key` replay gets the first answer (`idempotency`)."""
    fhir = await fhir_request(request, resource_type)
    return await _served(request, engine, principal, fhir, idempotency)


@router.delete("/{resource_type}/{resource_id}")
async def delete(
    request: Request,
    resource_type: ResourceType,
    resource_id: FhirId,
    engine: EngineDep,
    principal: FhirPrincipalDep,
) -> Response:
    """Delete what the case model lets go: a proposed goal, a draft referral, a loose need, a
    case opened in error (its CarePlan), a patient nothing names (see `fhir_engine.deletes`)."""
    fhir = await fhir_request(request, resource_type, resource_id)
    return await _served(request, engine, principal, fhir)


@router.delete("/{resource_type}")
async def conditional_delete(
    request: Request, resource_type: ResourceType, engine: EngineDep, principal: FhirPrincipalDep
) -> Response:
    """`DELETE Type?params`: the delete of the one resource that matches (none: no change;
    several: 412)."""
    fhir = await fhir_request(request, resource_type)
    return await _served(request, engine, principal, fhir)


@router.get("/{resource_type}/_history")
async def type_history(
    request: Request,
    resource_type: ResourceType,
    engine: EngineDep,
    principal: FhirPrincipalDep,
    since: Annotated[str | None, Query(alias="_since")] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(alias="_cursor")] = None,
) -> Response:
    fhir = await fhir_request(request, resource_type, operation="_history")
    return await _served(request, engine, principal, fhir)


@router.get("/{resource_type}/{resource_id}")
async def read(
    request: Request,
    resource_type: ResourceType,
    resource_id: FhirId,
    engine: EngineDep,
    principal: FhirPrincipalDep,
) -> Response:
    fhir = await fhir_request(request, resource_type, resource_id)
    return await _served(request, engine, principal, fhir)


@router.get("/{resource_type}/{resource_id}/_history/{version_id}")
async def vread(
    request: Request,
    resource_type: ResourceType,
    resource_id: FhirId,
    version_id: str,
    engine: EngineDep,
    principal: FhirPrincipalDep,
) -> Response:
    fhir = await fhir_request(
        request, resource_type, resource_id, version=version_id, operation="_history"
    )
    return await _served(request, engine, principal, fhir)


@router.get("/{resource_type}/{resource_id}/_history")
async def instance_history(
    request: Request,
    resource_type: ResourceType,
    resource_id: FhirId,
    engine: EngineDep,
    principal: FhirPrincipalDep,
    since: Annotated[str | None, Query(alias="_since")] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(alias="_cursor")] = None,
) -> Response:
    fhir = await fhir_request(request, resource_type, resource_id, operation="_history")
    return await _served(request, engine, principal, fhir)


@router.get("/{resource_type}")
async def search(
    request: Request, resource_type: ResourceType, engine: EngineDep, principal: FhirPrincipalDep
) -> Response:
    fhir = await fhir_request(request, resource_type)
    return await _served(request, engine, principal, fhir)


@router.post("/{resource_type}/_search")
async def search_by_post(
    request: Request, resource_type: ResourceType, engine: EngineDep, principal: FhirPrincipalDep
) -> Response:
    fhir = await fhir_request(request, resource_type, operation="_search")
    return await _served(request, engine, principal, fhir)


@router.post("")
async def transaction_or_batch(
    request: Request, engine: EngineDep, principal: FhirPrincipalDep, idempotency: IdempotencyDep
) -> Response:
    """A transaction Bundle that carries one case (see `fhir_engine.transactions`), or a batch
    of independent interactions (see `fhir_engine.batches`); `Idempotency-Key` as on create."""
    fhir = await fhir_request(request)
    return await _served(request, engine, principal, fhir, idempotency)
