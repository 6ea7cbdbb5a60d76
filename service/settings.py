"""Configuration: environment variables (prefix `CASEBRIDGE_`) plus an optional `.env` file.

Secrets have no default. Each secret (and the database URL, which holds a password) can also
come from a file named by `CASEBRIDGE_<NAME>_FILE`, as Docker and Kubernetes mount secrets. In
dev mode (`CASEBRIDGE_DEV_MODE=true`) a missing encryption key is generated once into a local
file (`CASEBRIDGE_DEV_ENCRYPTION_KEY_PATH`) and reused on every restart.
"""

from __future__ import annotations

import logging
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./casebridge.db"
ENV_PREFIX = "CASEBRIDGE_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    database_pgbouncer_transaction_pooling: bool = Field(
        False,
        description="The PostgreSQL URL points at PgBouncer in transaction pooling mode: "
        "turn off prepared-statement caches and the in-process pool.",
    )
    database_pool_size: Annotated[int, Field(ge=1)] = Field(
        16,
        description="Database connections each process keeps open. Size it to the requests "
        "in flight at once: a connection opened beyond it is closed again after one use.",
    )
    database_max_overflow: Annotated[int, Field(ge=0)] = Field(
        4, description="Connections opened beyond the pool at peaks, closed after use."
    )
    auto_migrate: bool = Field(
        False, description="Upgrade the schema at start-up instead of refusing an old one."
    )
    dev_mode: bool = Field(
        False,
        description="Generate a missing encryption key into `dev_encryption_key_path` (and "
        "reuse it on restart). Never in production.",
    )
    dev_encryption_key_path: Path = Field(
        Path(".casebridge-dev-key"),
        description="Dev mode only: the file (mode 0600) that keeps the generated encryption "
        "key across restarts.",
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
    fhir_bundle_max_entries: Annotated[int, Field(gt=0)] = Field(
        500, description="Most entries a /fhir batch or transaction Bundle may hold."
    )
    fhir_include_max: Annotated[int, Field(gt=0)] = Field(
        500,
        description="Most _include/_revinclude resources on one /fhir search page; the "
        "rest are left out with an OperationOutcome warning in the Bundle.",
    )

    rate_limits_enabled: bool = Field(
        True, description="Rate-limit /auth/token and /fhir (buckets shared through the database)."
    )
    rate_limit_token_client_per_second: Annotated[float, Field(gt=0)] = Field(
        1.0, description="/auth/token requests per second per client_id (sustained)."
    )
    rate_limit_token_client_burst: Annotated[int, Field(gt=0)] = Field(
        20, description="/auth/token requests per client_id allowed at once."
    )
    rate_limit_token_address_per_second: Annotated[float, Field(gt=0)] = Field(
        5.0, description="/auth/token requests per second per source address."
    )
    rate_limit_token_address_burst: Annotated[int, Field(gt=0)] = Field(
        50, description="/auth/token requests per source address allowed at once."
    )
    rate_limit_fhir_client_per_second: Annotated[float, Field(gt=0)] = Field(
        100.0, description="/fhir requests per second per authenticated client."
    )
    rate_limit_fhir_client_burst: Annotated[int, Field(gt=0)] = Field(
        500, description="/fhir requests per authenticated client allowed at once."
    )
    rate_limit_fhir_address_per_second: Annotated[float, Field(gt=0)] = Field(
        20.0, description="/fhir requests per second per source address, without a verified token."
    )
    rate_limit_fhir_address_burst: Annotated[int, Field(gt=0)] = Field(
        100, description="/fhir requests per source address, without a verified token, at once."
    )
    max_in_flight: Annotated[int, Field(ge=0)] = Field(
        32,
        description="Most requests one process handles at once: the ceiling of the adaptive "
        "limit, or the fixed bound (0: no bound); health exempt.",
    )
    min_in_flight: Annotated[int, Field(ge=1)] = Field(
        1, description="Floor of the adaptive limit on requests handled at once."
    )
    in_flight_adaptive: bool = Field(
        True,
        description="Adapt the limit to the latency (false: a fixed bound of MAX_IN_FLIGHT).",
    )
    in_flight_latency_tolerance: Annotated[float, Field(ge=1)] = Field(
        3.0,
        description="The adaptive limit shrinks while requests take longer than this many "
        "times their no-load latency, and may grow while they do not.",
    )
    in_flight_queue: Annotated[int, Field(ge=0)] = Field(
        16, description="Requests that may wait for a slot; beyond that, 503 at once."
    )
    in_flight_max_wait_seconds: Annotated[float, Field(ge=0)] = Field(
        0.1,
        description="Longest wait for a slot before 503, in seconds (adaptive: a ceiling on "
        "the wait derived from the no-load latency).",
    )
    jwks_refetch_interval_seconds: Annotated[float, Field(ge=0)] = Field(
        10.0,
        description="Least time between two fetches of one JWKS URL caused by an unknown `kid`.",
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
    smart_key_overlap_seconds: Annotated[int, Field(ge=0)] = Field(
        900,
        description="After a key rotation, how long the new key is published before it signs "
        "(longer than the JWKS caches of EHRs, commonly 5 minutes).",
    )
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
        ("vital-signs", "laboratory", "social-history", "survey", "functional-status"),
        description="Observation categories a pull reads (empty: every Observation), for "
        "connections without a pull scope of their own.",
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
    fhir_idempotency_key_seconds: Annotated[int, Field(gt=0)] = Field(
        86400,
        description="How long the answer to a /fhir POST sent with an Idempotency-Key is kept "
        "for replays of that key, in seconds.",
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

    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP endpoint that receives traces (e.g. http://collector:4318); "
        "tracing is off unless this or the standard OTEL_EXPORTER_OTLP_ENDPOINT is set.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Level of the JSON log lines `casebridge serve` writes to stderr."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `<NAME>_FILE` and `<NAME>` refuse to be set together, so their order does not
        # matter; both come before the `.env` file, as the environment always has.
        return (
            init_settings,
            env_settings,
            SecretFilesSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    @model_validator(mode="after")
    def _require_secrets(self) -> Self:
        if self.encryption_key is None:
            if not self.dev_mode:
                raise ValueError(
                    "CASEBRIDGE_ENCRYPTION_KEY (or CASEBRIDGE_ENCRYPTION_KEY_FILE) is required "
                    "(or set CASEBRIDGE_DEV_MODE=true)"
                )
            key = load_or_create_dev_key(self.dev_encryption_key_path)
            object.__setattr__(self, "encryption_key", SecretStr(key))
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()


def file_settings(settings_cls: type[BaseSettings]) -> tuple[str, ...]:
    """The settings that `<NAME>_FILE` may supply: every secret, and the database URL (it
    carries the database password)."""
    secret_fields = (
        name
        for name, field in settings_cls.model_fields.items()
        if SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ()))
    )
    return ("database_url", *secret_fields)


class SecretFilesSource(PydanticBaseSettingsSource):
    """`CASEBRIDGE_<NAME>_FILE=/run/secrets/name`: the setting is that file's content, less
    its trailing newline (the Docker and Kubernetes way of handing secrets over, which keeps
    them out of `docker inspect`, `/proc/<pid>/environ` and crash dumps of the environment).

    Read from the process environment only. Setting both `<NAME>` and `<NAME>_FILE` is an
    error rather than a silent precedence: one of the two is stale, and guessing which could
    start the service with an old key."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in file_settings(self.settings_cls):
            variable = f"{ENV_PREFIX}{name.upper()}"
            path = os.environ.get(f"{variable}_FILE")
            if path is None:
                continue
            if variable in os.environ:
                raise SettingsError(f"set {variable} or {variable}_FILE, not both")
            try:
                value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise SettingsError(
                    f"{variable}_FILE: cannot read {path}: {exc.strerror or exc}"
                ) from exc
            if not value:
                raise SettingsError(f"{variable}_FILE: {path} is empty")
            values[name] = value
        return values


def load_or_create_dev_key(path: Path) -> str:
    """Dev mode's encryption key: the one in `path`, or a new one written there (mode 0600).

    Without this, a restart generated a new key and everything encrypted under the old one,
    such as the /fhir token signing key, became unreadable for good. The key is written to a
    temporary file and hard-linked into place, so two workers starting at once agree on one
    key and neither reads a half-written file."""
    path = path.expanduser().absolute()
    created = False
    if not path.exists():
        key = Fernet.generate_key().decode()
        temporary = path.with_name(f"{path.name}.{secrets.token_hex(6)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
        try:
            os.link(temporary, path)
            created = True
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            temporary.unlink()
    key = path.read_text(encoding="utf-8").strip()
    try:
        Fernet(key)
    except ValueError as exc:
        raise ValueError(f"dev mode: {path} does not hold an encryption key") from exc
    log.warning(
        "dev mode: %s the encryption key in %s; keep that file to read encrypted data after "
        "a restart (never use dev mode in production)",
        "generated" if created else "using",
        path,
    )
    return key
