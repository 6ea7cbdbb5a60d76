"""Who calls /fhir and what their SMART scopes let them do.

`authenticate_fhir` turns the bearer token into a `FhirPrincipal`: our own access tokens, and
those of the configured external issuer, under the same scope rules. The /fhir layer then asks
the principal before every interaction (and every Bundle entry):

    principal.require("CarePlan", Interaction.read, patient_id=plan_patient)
    confined_to = principal.compartment("CarePlan", Interaction.search)

`system/` and `user/` scopes allow an interaction on any record. `patient/` scopes allow it only
inside the compartment of the token's context patient (`patient` claim): `require` refuses a
record of another patient, or one whose patient is unknown (`patient_id=None`), and
`compartment` returns the patient id a search must be confined to.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.db.session import Database, DatabaseDep
from service.errors import Forbidden, Unauthenticated
from service.fhir_auth.access_tokens import verify_access_token
from service.fhir_auth.runtime import FhirAuthRuntime, RuntimeDep, issuer
from service.fhir_auth.scopes import Context, Interaction, Scope, parse_scopes
from service.fhir_auth.unverified import peek

__all__ = [
    "FhirPrincipal",
    "FhirPrincipalDep",
    "Interaction",
    "InvalidToken",
    "ScopeForbidden",
    "authenticate_fhir",
    "principal_from_claims",
]

_bearer = HTTPBearer(auto_error=False, description="A SMART access token")


class InvalidToken(Unauthenticated):
    """A bearer token was sent but is not valid: the 401 says `error="invalid_token"`
    (RFC 6750 §3.1), so a client knows to get a new one rather than to send one at all."""

    kind = "invalid-token"


class ScopeForbidden(Forbidden):
    kind = "insufficient-scope"
    title = "The token's scopes do not allow this interaction"


@dataclass(frozen=True)
class FhirPrincipal:
    subject: str
    scopes: tuple[Scope, ...]
    patient: str | None = None

    def _unconfined(self, resource_type: str, interaction: Interaction) -> bool:
        return any(
            scope.context is not Context.patient and scope.allows(resource_type, interaction)
            for scope in self.scopes
        )

    def _in_compartment(self, resource_type: str, interaction: Interaction) -> bool:
        return self.patient is not None and any(
            scope.context is Context.patient and scope.allows(resource_type, interaction)
            for scope in self.scopes
        )

    def allows(self, resource_type: str, interaction: Interaction) -> bool:
        """Whether some scope allows this interaction on this type (perhaps only within the
        context patient's compartment: see `require` and `compartment`)."""
        return self._unconfined(resource_type, interaction) or self._in_compartment(
            resource_type, interaction
        )

    def require(
        self, resource_type: str, interaction: Interaction, patient_id: str | None = None
    ) -> None:
        """Raise ScopeForbidden unless the interaction is allowed on a record of `patient_id`."""
        if self._unconfined(resource_type, interaction):
            return
        if self._in_compartment(resource_type, interaction):
            if patient_id is not None and patient_id == self.patient:
                return
            raise ScopeForbidden(
                f"{self._describe(resource_type, interaction)} is allowed only in the "
                f"compartment of patient {self.patient}",
                extra={"resource_type": resource_type, "interaction": interaction.name},
            )
        raise ScopeForbidden(
            f"no scope allows {self._describe(resource_type, interaction)}",
            extra={"resource_type": resource_type, "interaction": interaction.name},
        )

    def compartment(self, resource_type: str, interaction: Interaction) -> str | None:
        """The patient id a search must be confined to; None when unconfined. Raises
        ScopeForbidden when no scope allows the interaction at all."""
        if self._unconfined(resource_type, interaction):
            return None
        if self._in_compartment(resource_type, interaction):
            return self.patient
        raise ScopeForbidden(
            f"no scope allows {self._describe(resource_type, interaction)}",
            extra={"resource_type": resource_type, "interaction": interaction.name},
        )

    @staticmethod
    def _describe(resource_type: str, interaction: Interaction) -> str:
        return f"{interaction.name} of {resource_type}"


@functools.lru_cache(maxsize=1024)
def _granted(scope: str) -> tuple[Scope, ...]:
    """A token's scope string, parsed once: every token of a client repeats it (a tuple of
    frozen scopes, so sharing it is safe)."""
    return parse_scopes(scope, strict=False)


def principal_from_claims(claims: dict[str, Any]) -> FhirPrincipal:
    """A principal from verified token claims: `scope` (a string, or a list of strings),
    `patient`, and `sub` (or `client_id`). Scopes this server does not know grant nothing."""
    raw = claims.get("scope")
    if isinstance(raw, list):
        raw = " ".join(item for item in raw if isinstance(item, str))
    scopes = _granted(raw) if isinstance(raw, str) else ()
    subject = claims.get("sub") or claims.get("client_id")
    if not isinstance(subject, str) or not subject:
        raise Unauthenticated("bearer token rejected: it names no subject")
    patient = claims.get("patient")
    return FhirPrincipal(
        subject=subject,
        scopes=scopes,
        patient=patient if isinstance(patient, str) and patient else None,
    )


def _unverified_issuer(token: str) -> object:
    try:
        _header, claims = peek(token)
    except ValueError as exc:
        raise Unauthenticated(f"bearer token rejected: {exc}") from exc
    return claims.get("iss")


async def authenticate_fhir(
    request: Request,
    database: DatabaseDep,
    runtime: RuntimeDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> FhirPrincipal:
    """The caller of /fhir, from `Authorization: Bearer`; Unauthenticated otherwise."""
    if bearer is None:
        raise Unauthenticated("send a SMART access token (Authorization: Bearer)")
    try:
        return await _principal_of(database, runtime, bearer.credentials)
    except Unauthenticated as exc:
        raise InvalidToken(exc.detail, extra=exc.extra) from exc


async def _principal_of(database: Database, runtime: FhirAuthRuntime, token: str) -> FhirPrincipal:
    settings = database.settings
    if token in runtime.verified_tokens:  # one of ours, its signature checked before
        return principal_from_claims(await verify_access_token(database, runtime, settings, token))
    token_issuer = _unverified_issuer(token)
    if token_issuer == issuer(settings):
        claims = await verify_access_token(database, runtime, settings, token)
    elif runtime.external is not None and token_issuer == settings.fhir_external_issuer:
        claims = await runtime.external.verify(token)
    else:
        raise Unauthenticated(f"bearer token rejected: issuer {token_issuer!r} is not trusted")
    return principal_from_claims(claims)


FhirPrincipalDep = Annotated[FhirPrincipal, Depends(authenticate_fhir)]
