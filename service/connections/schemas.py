"""API shapes of the connection registry. Private keys never appear in any of them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from service.api.schemas import RequestBody, ShortText, StoredRecord
from service.connections.models import AuthMode
from service.ehr.discovery import Capabilities
from service.pull.scope import PullScope
from service.smart.keys import SigningAlgorithm

BaseUrl = Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Scope = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^\S+$")]
DOCUMENT_FALLBACK = (
    "Where this EHR cannot write CarePlan but can write DocumentReference, push the rendered "
    "plan as a DocumentReference instead; null follows CASEBRIDGE_PUSH_DOCUMENT_FALLBACK."
)
PULL_SCOPE = (
    "What a pull of this connection reads, per patient and by Bulk Data alike: resource types "
    "and Observation categories. null: the default types (vital signs, labs and procedures "
    "included) and CASEBRIDGE_PULL_OBSERVATION_CATEGORIES."
)
SEARCH_OVERRIDES = (
    "The patient search of a type on this EHR, overriding its CapabilityStatement and the "
    'probes: {"Condition": ["patient"]}, {"Goal": []} for none.'
)
SearchType = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z]{1,63}$")]
SearchOverrides = dict[SearchType, list[Literal["patient", "subject"]]]


class ConnectionCreate(RequestBody):
    name: ShortText
    base_url: BaseUrl = Field(description="The EHR's FHIR base URL, e.g. https://ehr.example/fhir")
    auth_mode: AuthMode
    client_id: ClientId | None = Field(
        None, description="The client id the EHR issued; required unless auth_mode is `none`."
    )
    scopes: list[Scope] = Field(default_factory=list, max_length=100)
    signing_alg: SigningAlgorithm = Field(
        "RS384", description="Algorithm of the key pair that signs our client assertions."
    )
    document_fallback: bool | None = Field(None, description=DOCUMENT_FALLBACK)
    pull_scope: PullScope | None = Field(None, description=PULL_SCOPE)
    search_overrides: SearchOverrides = Field(
        default_factory=dict, max_length=50, description=SEARCH_OVERRIDES
    )

    @model_validator(mode="after")
    def _client_id_unless_open(self) -> Self:
        if self.auth_mode is not AuthMode.none and self.client_id is None:
            raise ValueError(f"client_id is required for auth_mode {self.auth_mode.value}")
        return self


class ConnectionUpdate(RequestBody):
    """Changing `base_url` re-runs discovery before anything is stored."""

    name: ShortText | None = None
    base_url: BaseUrl | None = None
    client_id: ClientId | None = None
    scopes: list[Scope] | None = Field(None, max_length=100)
    # Unlike the fields above, an explicit null is a change: back to the global default.
    document_fallback: bool | None = Field(None, description=DOCUMENT_FALLBACK)
    pull_scope: PullScope | None = Field(None, description=PULL_SCOPE)
    search_overrides: SearchOverrides | None = Field(
        None, max_length=50, description=SEARCH_OVERRIDES
    )


class KeyRotation(RequestBody):
    signing_alg: SigningAlgorithm | None = Field(
        None, description="Algorithm of the new key; the current one's when omitted."
    )


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kid: str
    alg: str
    created_at: dt.datetime
    retire_after: dt.datetime | None = Field(
        description="Set once the key was rotated out; it leaves the JWKS after this moment."
    )
    signs_from: dt.datetime | None = Field(
        description="When a rotated-in key starts signing (null: since it was made); it is "
        "published before."
    )


class ConnectionOut(StoredRecord):
    name: str
    base_url: str
    auth_mode: AuthMode
    client_id: str | None
    scopes: list[str]
    signing_alg: str
    capabilities: Capabilities | None
    discovered_at: dt.datetime | None
    document_fallback: bool | None = Field(description=DOCUMENT_FALLBACK)
    pull_scope: PullScope | None = Field(description=PULL_SCOPE)
    effective_pull_scope: PullScope = Field(description="What a pull reads now.")
    search_overrides: SearchOverrides = Field(description=SEARCH_OVERRIDES)
    probed_searches: dict[str, str | None] = Field(
        description="The patient search of each type the CapabilityStatement is silent on, as "
        "the EHR answered a probe (null: neither patient nor subject)."
    )
    keys: list[KeyOut]
    jwks_url: str = Field(description="Register this URL with the EHR (Epic, Oracle Health).")


class TokenCheckOut(BaseModel):
    """The outcome of a successful Backend Services token request. The token itself is never
    returned."""

    token_endpoint: str
    kid: str = Field(description="The key that signed the assertion.")
    alg: str
    granted_scope: str = Field(description="What the EHR granted, which may be less than asked.")
    expires_at: dt.datetime
