"""FastAPI dependencies of the SMART layer."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.security.encryption import SecretBox
from service.settings import Settings


def get_secret_box(request: Request) -> SecretBox:
    settings: Settings = request.app.state.settings
    assert settings.encryption_key is not None  # the settings validator guarantees one
    return SecretBox(settings.encryption_key.get_secret_value())


SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]
