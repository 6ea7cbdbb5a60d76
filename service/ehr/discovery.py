"""Discover what an EHR offers: its SMART endpoints and its FHIR capabilities.

SMART endpoints come from `{base}/.well-known/smart-configuration`; when an EHR has none (older
servers), the CapabilityStatement's `oauth-uris` extension is the fallback. `/metadata` gives the
FHIR version and, per resource type, the interactions and search parameters. The result is a
JSON-serialisable `Capabilities`, stored on the connection so that pull and push can choose a
strategy (`capabilities.supports("Goal", "update")`) without asking the EHR again.

Every endpoint the EHR names passes the SSRF policy before it is stored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.ehr.client import FhirClient, JsonObject
from service.ehr.errors import EhrDiscoveryError, EhrNotFound, EhrRejected, EhrUrlRefused
from service.ehr.url_policy import UrlPolicy

OAUTH_URIS_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
EndpointSource = Literal["smart-configuration", "capability-statement"]


class SmartEndpoints(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: EndpointSource
    token_endpoint: str
    authorization_endpoint: str | None = None
    issuer: str | None = None
    jwks_uri: str | None = None
    revocation_endpoint: str | None = None
    introspection_endpoint: str | None = None
    management_endpoint: str | None = None
    registration_endpoint: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    scopes_supported: list[str] = Field(default_factory=list)
    grant_types_supported: list[str] = Field(default_factory=list)
    code_challenge_methods_supported: list[str] = Field(default_factory=list)
    token_endpoint_auth_methods_supported: list[str] = Field(default_factory=list)
    token_endpoint_auth_signing_alg_values_supported: list[str] = Field(default_factory=list)


class ResourceCapability(BaseModel):
    model_config = ConfigDict(frozen=True)

    interactions: list[str] = Field(default_factory=list)
    search_params: list[str] = Field(default_factory=list)
    conditional_create: bool = False
    conditional_update: bool = False
    # `updateCreate`: a PUT to an id the server does not have creates it under that id.
    update_create: bool = False
    versioning: str | None = None
    # Operation names without the `$`, e.g. "everything" on Patient.
    operations: list[str] = Field(default_factory=list)


class Capabilities(BaseModel):
    """What one EHR supports. Store `model_dump(mode="json")`; load with `model_validate`."""

    model_config = ConfigDict(frozen=True)

    fhir_version: str | None = None
    smart: SmartEndpoints | None = None
    resources: dict[str, ResourceCapability] = Field(default_factory=dict)
    system_interactions: list[str] = Field(default_factory=list)

    def supports(self, resource_type: str, interaction: str) -> bool:
        """e.g. `supports("Goal", "update")`, `supports("Patient", "search-type")`."""
        resource = self.resources.get(resource_type)
        return resource is not None and interaction in resource.interactions

    def supports_search_param(self, resource_type: str, name: str) -> bool:
        resource = self.resources.get(resource_type)
        return resource is not None and name in resource.search_params

    def supports_operation(self, resource_type: str, name: str) -> bool:
        """e.g. `supports_operation("Patient", "everything")`."""
        resource = self.resources.get(resource_type)
        return resource is not None and name.lstrip("$") in resource.operations

    def supports_conditional_create(self, resource_type: str) -> bool:
        resource = self.resources.get(resource_type)
        return resource is not None and resource.conditional_create

    def supports_conditional_update(self, resource_type: str) -> bool:
        resource = self.resources.get(resource_type)
        return resource is not None and resource.conditional_update

    def supports_update_create(self, resource_type: str) -> bool:
        """Whether `PUT Type/<new id>` creates the resource under the client's id."""
        resource = self.resources.get(resource_type)
        return resource is not None and "update" in resource.interactions and resource.update_create

    @property
    def supports_transaction(self) -> bool:
        return "transaction" in self.system_interactions

    @property
    def supports_batch(self) -> bool:
        return "batch" in self.system_interactions


async def discover(
    client: FhirClient, policy: UrlPolicy, *, require_oauth: bool = True
) -> Capabilities:
    """Read smart-configuration and /metadata. `require_oauth=False` for auth mode `none`."""
    metadata = await _capability_statement(client)
    smart = await _smart_configuration(client, policy)
    if smart is None and metadata is not None:
        smart = await _oauth_uris(metadata, policy)
    if smart is None and require_oauth:
        raise EhrDiscoveryError(
            "the EHR publishes neither .well-known/smart-configuration nor an oauth-uris "
            "extension in its CapabilityStatement",
            url=client.base_url,
        )
    if metadata is None:
        return Capabilities(smart=smart)
    return _capabilities_from(metadata, smart)


async def _capability_statement(client: FhirClient) -> JsonObject | None:
    try:
        statement = await client.fetch_json("metadata")
    except EhrRejected:
        return None
    if statement.get("resourceType") != "CapabilityStatement":
        raise EhrDiscoveryError(
            f"/metadata answered with {statement.get('resourceType')!r}, not a CapabilityStatement",
            url=f"{client.base_url}/metadata",
        )
    return statement


async def _smart_configuration(client: FhirClient, policy: UrlPolicy) -> SmartEndpoints | None:
    try:
        document = await client.fetch_json(
            ".well-known/smart-configuration", accept="application/json"
        )
    except EhrNotFound:
        return None
    except EhrRejected:
        # Some servers answer 401/403 on unknown paths; treat it as "not offered".
        return None
    if "token_endpoint" not in document:
        return None
    endpoints = SmartEndpoints.model_validate(
        {**_known_fields(document), "source": "smart-configuration"}
    )
    await _check_endpoints(endpoints, policy)
    return endpoints


async def _oauth_uris(statement: JsonObject, policy: UrlPolicy) -> SmartEndpoints | None:
    for rest in statement.get("rest") or []:
        security = (rest or {}).get("security") or {}
        for extension in security.get("extension") or []:
            if extension.get("url") != OAUTH_URIS_EXTENSION:
                continue
            uris = {
                inner.get("url"): inner.get("valueUri") or inner.get("valueUrl")
                for inner in extension.get("extension") or []
            }
            if not uris.get("token"):
                continue
            endpoints = SmartEndpoints(
                source="capability-statement",
                token_endpoint=uris["token"],
                authorization_endpoint=uris.get("authorize"),
                revocation_endpoint=uris.get("revoke"),
                introspection_endpoint=uris.get("introspect"),
                management_endpoint=uris.get("manage"),
                registration_endpoint=uris.get("register"),
            )
            await _check_endpoints(endpoints, policy)
            return endpoints
    return None


_URL_FIELDS = (
    "token_endpoint",
    "authorization_endpoint",
    "jwks_uri",
    "revocation_endpoint",
    "introspection_endpoint",
    "management_endpoint",
    "registration_endpoint",
)


async def _check_endpoints(endpoints: SmartEndpoints, policy: UrlPolicy) -> None:
    for name in _URL_FIELDS:
        url = getattr(endpoints, name)
        if url is not None:
            try:
                await policy.check(url)
            except EhrUrlRefused as exc:
                raise EhrUrlRefused(f"discovered {name}: {exc.detail}", url=url) from exc


def _known_fields(document: JsonObject) -> dict[str, Any]:
    # Keep the fields we model, with the types we model: a bad extra field must not fail discovery.
    known: dict[str, Any] = {}
    for key, value in document.items():
        if key not in SmartEndpoints.model_fields:
            continue
        if isinstance(value, str):
            known[key] = value
        elif isinstance(value, list):
            known[key] = [item for item in value if isinstance(item, str)]
    return known


def _capabilities_from(statement: JsonObject, smart: SmartEndpoints | None) -> Capabilities:
    resources: dict[str, ResourceCapability] = {}
    system_interactions: list[str] = []
    for rest in statement.get("rest") or []:
        if (rest or {}).get("mode", "server") != "server":
            continue
        system_interactions.extend(
            str(item["code"]) for item in rest.get("interaction") or [] if item.get("code")
        )
        for resource in rest.get("resource") or []:
            type_name = resource.get("type")
            if not isinstance(type_name, str):
                continue
            resources[type_name] = ResourceCapability(
                interactions=[
                    str(item["code"])
                    for item in resource.get("interaction") or []
                    if item.get("code")
                ],
                search_params=[
                    str(item["name"])
                    for item in resource.get("searchParam") or []
                    if item.get("name")
                ],
                conditional_create=bool(resource.get("conditionalCreate", False)),
                # conditionalUpdate is a boolean in R4; some servers send a string anyway.
                conditional_update=resource.get("conditionalUpdate") in (True, "true"),
                update_create=resource.get("updateCreate") in (True, "true"),
                versioning=resource.get("versioning"),
                operations=[
                    str(item["name"]).lstrip("$")
                    for item in resource.get("operation") or []
                    if isinstance(item, dict) and item.get("name")
                ],
            )
    return Capabilities(
        fhir_version=statement.get("fhirVersion"),
        smart=smart,
        resources=resources,
        system_interactions=system_interactions,
    )
