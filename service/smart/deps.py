"""FastAPI dependencies of the SMART layer."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.connections.fhir_clients import connection_tokens
from service.db.session import Database
from service.ehr.deps import UrlPolicyDep
from service.security.encryption import SecretBox
from service.settings import Settings
from service.smart.backend_services import BackendServicesTokens


async def get_secret_box(request: Request) -> SecretBox:
    settings: Settings = request.app.state.settings
    assert settings.encryption_key is not None  # the settings validator guarantees one
    return SecretBox(settings.encryption_key.get_secret_value())


SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]


async def get_backend_tokens(request: Request, policy: UrlPolicyDep) -> BackendServicesTokens:
    """The application's one token cache, made on first use; its tokens are shared with the
    other processes through the database."""
    tokens: BackendServicesTokens | None = getattr(request.app.state, "backend_tokens", None)
    if tokens is None:
        database: Database = request.app.state.database
        settings: Settings = request.app.state.settings
        assert settings.encryption_key is not None  # the settings validator guarantees one
        box = SecretBox(settings.encryption_key.get_secret_value())
        tokens = connection_tokens(database, box, policy)
        request.app.state.backend_tokens = tokens
    return tokens


BackendTokensDep = Annotated[BackendServicesTokens, Depends(get_backend_tokens)]
