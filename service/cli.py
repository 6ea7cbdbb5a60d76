"""The `casebridge` command: serve, migrate, and manage API keys."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Coroutine
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import DBAPIError

from service.auth.models import Role
from service.errors import CaseBridgeError
from service.settings import Settings, get_settings

T = TypeVar("T")

app = typer.Typer(help="CaseBridge: FHIR integration service for case management.")
db_app = typer.Typer(help="Database schema.")
keys_app = typer.Typer(help="API keys for service accounts.")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="api-keys")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="One per core is the sweet spot.")] = 1,
    migrate: Annotated[bool, typer.Option(help="Upgrade the schema first.")] = False,
) -> None:
    """Run the HTTP service."""
    import uvicorn

    from service.observability.logs import configure_logging, logging_config

    level = _settings().log_level
    if migrate:
        _run_on_database(_upgrade())
    elif not _settings().auto_migrate:
        _run_on_database(_require_current_schema())
    # After the schema check, whose failure is one plain line on stderr, not JSON among
    # Alembic's start-up lines.
    configure_logging(level)
    # JSON lines; uvicorn's access log (path with query string) gives way to the app's own,
    # which names the route template only (docs/observability.md).
    uvicorn.run(
        "service.main:app",
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        log_config=logging_config(level),
        access_log=False,
    )


async def _upgrade() -> None:
    from service.db.schema import upgrade_to_head
    from service.db.session import create_engine

    engine = create_engine(_settings())
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Upgrade the database schema to the newest revision."""
    _run_on_database(_upgrade())
    typer.echo("schema is current")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the one the code expects."""
    from service.db.schema import current_revisions, head_revisions
    from service.db.session import create_engine

    async def show() -> None:
        engine = create_engine(_settings())
        try:
            current = await current_revisions(engine)
        finally:
            await engine.dispose()
        typer.echo(f"database: {sorted(current) or 'empty'}; code: {sorted(head_revisions())}")

    _run_on_database(show())


@keys_app.command("create")
def create_key(name: str, role: Role = Role.case_manager) -> None:
    """Issue an API key and print it once."""
    from service.auth.service import issue_api_key
    from service.db.session import Database

    async def issue() -> str:
        database = Database(_settings())
        try:
            async with database.transaction() as session:
                _row, key = await issue_api_key(session, name, role)
        finally:
            await database.dispose()
        return key

    try:
        typer.echo(_run_on_database(issue()))
    except CaseBridgeError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc


@app.command("push-worker")
def push_worker(
    once: Annotated[bool, typer.Option(help="Push what is due, then exit.")] = False,
) -> None:
    """Push committed case changes to linked EHRs (run beside the API for scale-out)."""
    from service.push.worker import run_worker

    settings = _worker_settings()
    asyncio.run(run_worker(settings, once=once))


@app.command("pull-runner")
def pull_runner() -> None:
    """Run pull jobs and the scheduled refresh (beside the API, for scale-out; any number)."""
    from service.pull.worker import run_pull_runner

    asyncio.run(run_pull_runner(_worker_settings()))


def _worker_settings() -> Settings:
    """A worker's settings, once its schema is known current, with the JSON logs `serve` has."""
    from service.observability.logs import configure_logging

    settings = _settings()
    if not settings.auto_migrate:
        _run_on_database(_require_current_schema())
    configure_logging(settings.log_level)
    return settings


@app.command("generate-encryption-key")
def generate_encryption_key() -> None:
    """Print a fresh value for CASEBRIDGE_ENCRYPTION_KEY."""
    typer.echo(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())


# Errors an operator can fix (settings, an unreachable or old database) end in one line on
# stderr and a non-zero exit, not a traceback that buries the one line that matters.


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        _fail(str(exc))
    except ValidationError as exc:
        problems = (
            f"{'CASEBRIDGE_' + str(error['loc'][0]).upper() + ': ' if error['loc'] else ''}"
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        _fail("invalid settings: " + "; ".join(problems))


def _run_on_database(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except DBAPIError as exc:
        _fail(f"database: {str(exc.orig).splitlines()[0]}")
    except OSError as exc:
        _fail(f"cannot reach the database: {exc}")


async def _require_current_schema() -> None:
    from service.db.schema import is_current
    from service.db.session import create_engine

    engine = create_engine(_settings())
    try:
        current = await is_current(engine)
    finally:
        await engine.dispose()
    if not current:
        _fail(
            "the database schema is not current: run `casebridge db upgrade` first, or serve "
            "with `--migrate` (or CASEBRIDGE_AUTO_MIGRATE=true)"
        )
