"""SMART Backend Services authorization for /fhir: we are the authorization server.

Admins register client apps (`/api/admin/fhir-clients`); apps get access tokens at
`/auth/token` with `client_credentials` + `private_key_jwt`; `/fhir` turns a bearer token
into a `FhirPrincipal` (`FhirPrincipalDep`) and asks it before every interaction.
"""

from service.fhir_auth.principal import (
    FhirPrincipal,
    FhirPrincipalDep,
    Interaction,
    ScopeForbidden,
    authenticate_fhir,
)
from service.fhir_auth.scopes import Scope

__all__ = [
    "FhirPrincipal",
    "FhirPrincipalDep",
    "Interaction",
    "Scope",
    "ScopeForbidden",
    "authenticate_fhir",
]
