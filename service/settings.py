"""Configuration: environment variables (prefix `CASEBRIDGE_`) plus an optional `.env` file.

Secrets have no default. In dev mode (`CASEBRIDGE_DEV_MODE=true`) the service generates the
missing ones for this process only and says so in the log; they do not survive a restart.
"""

from __future__ import annotations

import base64
import logging
import secrets
from functools import lru_cache
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./casebridge.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CASEBRIDGE_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    auto_migrate: bool = Field(
        False, description="Upgrade the schema at start-up instead of refusing an old one."
    )
    dev_mode: bool = Field(
        False,
        description="Generate missing secrets for this process and accept the dev API key.",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8000", description="The URL clients reach this service at."
    )

    encryption_key: SecretStr | None = Field(
        None,
        description="Fernet key (urlsafe base64, 32 bytes) that encrypts private keys and "
        "tokens at rest. Required unless dev mode.",
    )
    bootstrap_api_key: SecretStr | None = Field(
        None,
        description="An API key accepted as the 'bootstrap' admin service account, for "
        "creating the first real keys. Optional.",
    )

    oidc_issuer: str | None = Field(
        None, description="Issuer of bearer JWTs accepted on /api (the `iss` claim)."
    )
    oidc_jwks_url: str | None = Field(None, description="JWKS URL of that issuer.")
    oidc_audience: str = Field("casebridge", description="Required `aud` of those JWTs.")
    oidc_algorithms: tuple[str, ...] = Field(
        ("RS256", "RS384", "ES256", "ES384"), description="Accepted JWT algorithms."
    )

    max_body_bytes: Annotated[int, Field(gt=0)] = Field(
        1_048_576, description="Largest request body accepted, in bytes."
    )

    allow_insecure_http: bool = Field(
        False, description="Allow http:// EHR URLs (dev and loopback tests only)."
    )
    allow_private_networks: bool = Field(
        False,
        description="Allow EHR URLs that resolve to private, loopback or link-local addresses.",
    )
    ehr_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    ehr_max_concurrency: Annotated[int, Field(gt=0)] = Field(
        4,
        description="Requests in flight to one EHR, across `ehr_processes` processes.",
    )
    ehr_processes: Annotated[int, Field(gt=0)] = Field(
        1,
        description="Processes that make EHR requests (API workers, push workers and pull "
        "runners across replicas): each holds ehr_max_concurrency / this (at least 1) "
        "requests per EHR at once, so the sum holds the limit (docs/replicas.md).",
    )
    ehr_max_retries: Annotated[int, Field(ge=0)] = 5
    ehr_breaker_failure_threshold: Annotated[int, Field(gt=0)] = Field(
        5,
        description="Transient failures in a row (5xx, 429, timeouts) that open an EHR "
        "connection's circuit breaker in a process (docs/replicas.md).",
    )
    ehr_breaker_cooldown_seconds: Annotated[float, Field(gt=0)] = Field(
        30.0, description="How long an open circuit holds requests back before one probe."
    )

    pull_patients_per_connection: Annotated[int, Field(gt=0)] = Field(
        4, description="Patients pulled at the same time from one EHR connection."
    )
    pull_observation_categories: tuple[str, ...] = Field(
        ("social-history", "survey", "functional-status"),
        description="Observation categories a pull reads (empty: every Observation).",
    )
    pull_runner_enabled: bool = Field(
        True,
        description="Run a pull runner in this process. Runners in any number of processes "
        "share the jobs through leases (docs/replicas.md).",
    )
    pull_jobs_per_runner: Annotated[int, Field(gt=0)] = Field(
        4, description="Pull jobs one runner holds at a time."
    )
    pull_lease_seconds: Annotated[float, Field(gt=0)] = Field(
        60.0,
        description="How long a claimed pull job stays with its runner unless renewed; a dead "
        "runner's job is taken over after this, in seconds.",
    )
    pull_poll_seconds: Annotated[float, Field(gt=0)] = Field(
        5.0, description="How often the pull runner looks for queued pull jobs."
    )
    pull_refresh_interval_seconds: Annotated[float, Field(ge=0)] = Field(
        0.0,
        description="Every this many seconds, pull again the linked patients of open cases "
        "(0: no scheduled refresh).",
    )

    fhir_access_token_lifetime_seconds: Annotated[int, Field(gt=0, le=3600)] = Field(
        300, description="Lifetime of the access tokens /auth/token issues for /fhir, in seconds."
    )
    fhir_token_signing_alg: Literal["RS384", "ES384"] = Field(
        "ES384",
        description="Algorithm of the key that signs our /fhir access tokens (generated on "
        "first use, stored encrypted).",
    )
    fhir_external_issuer: str | None = Field(
        None,
        description="Another authorization server whose bearer tokens /fhir also accepts "
        "(its `iss`); their `scope` and `patient` claims are enforced like ours.",
    )
    fhir_external_jwks_url: str | None = Field(
        None, description="JWKS URL of the external /fhir token issuer."
    )
    fhir_external_audience: str | None = Field(
        None,
        description="Required `aud` of external /fhir tokens; default: the /fhir base URL "
        "({public_base_url}/fhir).",
    )

    push_dispatcher_enabled: bool = Field(
        True,
        description="Run the push dispatcher inside the API process. Turn off when standalone "
        "`casebridge push-worker` processes do the pushing.",
    )
    push_concurrency: Annotated[int, Field(gt=0)] = Field(
        8,
        description="(case, connection) pairs one dispatcher pushes at once (as many more "
        "wait, claimed, behind them). Each EHR still gets at most "
        "`ehr_max_concurrency` requests at once: a push spends part of its time in this "
        "process, so more pushes than requests keep the EHR busy.",
    )
    push_poll_seconds: Annotated[float, Field(gt=0)] = Field(
        1.0, description="How often an idle dispatcher looks for due pushes, in seconds."
    )
    push_lease_seconds: Annotated[float, Field(gt=0)] = Field(
        60.0,
        description="How long a claimed push stays with its worker; a crashed worker's push "
        "is taken over after this, in seconds.",
    )
    push_max_attempts: Annotated[int, Field(gt=0)] = Field(
        8, description="Failed attempts after which a push is dead-lettered (replay to resend)."
    )
    push_retry_base_seconds: Annotated[float, Field(gt=0)] = Field(
        5.0, description="First retry delay of a failed push; doubles per attempt, in seconds."
    )
    push_retry_max_seconds: Annotated[float, Field(gt=0)] = Field(
        900.0, description="Longest delay between retries of a failed push, in seconds."
    )
    push_outbox_retention_days: Annotated[int, Field(ge=0)] = Field(
        30,
        description="Days a delivered outbox row (who changed a case, and when the EHR got "
        "it) is kept before the dispatcher deletes it; 0 keeps them all.",
    )

    push_document_fallback: bool = Field(
        False,
        description="Where an EHR cannot write CarePlan but can write DocumentReference, push "
        "the rendered plan as a DocumentReference (LOINC 18776-5) instead.",
    )

    @model_validator(mode="after")
    def _require_secrets(self) -> Self:
        if self.encryption_key is None:
            if not self.dev_mode:
                raise ValueError(
                    "CASEBRIDGE_ENCRYPTION_KEY is required (or set CASEBRIDGE_DEV_MODE=true)"
                )
            key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
            object.__setattr__(self, "encryption_key", SecretStr(key))
            log.warning(
                "dev mode: generated a throw-away CASEBRIDGE_ENCRYPTION_KEY; "
                "encrypted data will not be readable after a restart"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
