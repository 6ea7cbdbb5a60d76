"""`/fhir/metadata`: the CapabilityStatement, built once per app from its own routes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from service.fhir_api.capabilities import capability_statement
from service.fhir_api.http import FHIR_JSON_UTF8, check_format

router = APIRouter(prefix="/fhir", tags=["fhir"], dependencies=[Depends(check_format)])


def statement_of(app: FastAPI) -> bytes:
    state = app.state
    if getattr(state, "capability_statement", None) is None:
        paths = app.openapi()["paths"]
        state.capability_statement = capability_statement(state.settings, paths)
    statement: bytes = state.capability_statement
    return statement


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    """What this server implements. Public, as SMART clients read it before authorizing."""
    return Response(statement_of(request.app), media_type=FHIR_JSON_UTF8)
