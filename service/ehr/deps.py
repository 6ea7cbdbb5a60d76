"""FastAPI dependencies of the EHR layer. Tests override `get_url_policy` to fake DNS."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.ehr.url_policy import UrlPolicy


async def get_url_policy(request: Request) -> UrlPolicy:
    return UrlPolicy.from_settings(request.app.state.settings)


UrlPolicyDep = Annotated[UrlPolicy, Depends(get_url_policy)]
