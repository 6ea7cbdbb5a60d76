"""API shapes of the SMART authorization server: client registration, token, introspection,
and the SMART configuration document."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

from service.api.schemas import RequestBody, ShortText, StoredRecord
from service.fhir_auth.client_keys import import_jwks
from service.fhir_auth.scopes import Context, InvalidScope, Scope

_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MAX_SCOPES = 200


def _check_scopes(values: list[str]) -> list[str]:
    for text in values:
        try:
            scope = Scope.parse(text)
        except InvalidScope as exc:
            raise ValueError(str(exc)) from exc
        if scope.context is not Context.system:
            raise ValueError(
                f"{text!r}: a backend-services client can be granted system/ scopes only"
            )
    return list(dict.fromkeys(values))


def _check_jwks(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    keys = value.get("keys")
    if isinstance(keys, list):
        for key in keys:
            if isinstance(key, dict) and _PRIVATE_JWK_MEMBERS & key.keys():
                raise ValueError("the JWKS holds private key material: register public keys")
            if isinstance(key, dict) and not key.get("kid"):
                raise ValueError("every key in the JWKS needs a kid")
    import_jwks(value)  # raises ValueError when unusable
    return value


ClientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")]
AllowedScopes = Annotated[
    list[str], Field(min_length=1, max_length=MAX_SCOPES), AfterValidator(_check_scopes)
]
JwksUrl = Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)]
InlineJwks = Annotated[dict[str, Any] | None, AfterValidator(_check_jwks)]


class FhirClientCreate(RequestBody):
    """Register an app. Give exactly one of `jwks_url` and `jwks`."""

    client_id: ClientId | None = Field(
        None, description="Chosen by the admin; a random UUID when left out."
    )
    name: ShortText
    scopes: AllowedScopes = Field(
        description="The most this client may be granted, e.g. system/CarePlan.rs"
    )
    jwks_url: JwksUrl | None = None
    jwks: InlineJwks = None
    enabled: bool = True

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if (self.jwks_url is None) == (self.jwks is None):
            raise ValueError("give exactly one of jwks_url and jwks")
        return self


class FhirClientUpdate(RequestBody):
    """Change a client. Setting `jwks_url` drops the inline `jwks`, and the reverse."""

    name: ShortText | None = None
    scopes: AllowedScopes | None = None
    jwks_url: JwksUrl | None = None
    jwks: InlineJwks = None
    enabled: bool | None = None

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if self.jwks_url is not None and self.jwks is not None:
            raise ValueError("give at most one of jwks_url and jwks")
        return self


class FhirClientOut(StoredRecord):
    client_id: str
    name: str
    scopes: list[str]
    jwks_url: str | None
    jwks: dict[str, Any] | None
    enabled: bool


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    scope: str


class IntrospectionResponse(BaseModel):
    """RFC 7662. An inactive token shows `active: false` and nothing else."""

    active: bool
    scope: str | None = None
    client_id: str | None = None
    sub: str | None = None
    patient: str | None = None
    exp: int | None = None
    iat: int | None = None
    iss: str | None = None
    aud: str | None = None
    jti: str | None = None
    token_type: str | None = None


class SmartConfiguration(BaseModel):
    token_endpoint: str
    introspection_endpoint: str
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    token_endpoint_auth_signing_alg_values_supported: list[str]
    scopes_supported: list[str]
    capabilities: list[str]
