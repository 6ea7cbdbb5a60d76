"""The `casebridge` command: serve, migrate, and manage API keys."""

from __future__ import annotations

import asyncio
import base64
import secrets
from typing import Annotated

import typer

from service.auth.models import Role
from service.errors import CaseBridgeError
from service.settings import get_settings

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

    if migrate:
        asyncio.run(_upgrade())
    uvicorn.run("service.main:app", host=host, port=port, workers=workers, proxy_headers=True)


async def _upgrade() -> None:
    from service.db.schema import upgrade_to_head
    from service.db.session import create_engine

    engine = create_engine(get_settings())
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Upgrade the database schema to the newest revision."""
    asyncio.run(_upgrade())
    typer.echo("schema is current")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the one the code expects."""
    from service.db.schema import current_revisions, head_revisions
    from service.db.session import create_engine

    async def show() -> None:
        engine = create_engine(get_settings())
        try:
            current = await current_revisions(engine)
        finally:
            await engine.dispose()
        typer.echo(f"database: {sorted(current) or 'empty'}; code: {sorted(head_revisions())}")

    asyncio.run(show())


@keys_app.command("create")
def create_key(name: str, role: Role = Role.case_manager) -> None:
    """Issue an API key and print it once."""
    from service.auth.service import issue_api_key
    from service.db.session import Database

    async def issue() -> str:
        database = Database(get_settings())
        try:
            async with database.transaction() as session:
                _row, key = await issue_api_key(session, name, role)
        finally:
            await database.dispose()
        return key

    try:
        typer.echo(asyncio.run(issue()))
    except CaseBridgeError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc


@app.command("push-worker")
def push_worker(
    once: Annotated[bool, typer.Option(help="Push what is due, then exit.")] = False,
) -> None:
    """Push committed case changes to linked EHRs (run beside the API for scale-out)."""
    from service.push.worker import run_worker

    asyncio.run(run_worker(get_settings(), once=once))


@app.command("pull-runner")
def pull_runner() -> None:
    """Run pull jobs and the scheduled refresh (beside the API, for scale-out; any number)."""
    from service.pull.worker import run_pull_runner

    asyncio.run(run_pull_runner(get_settings()))


@app.command("generate-encryption-key")
def generate_encryption_key() -> None:
    """Print a fresh value for CASEBRIDGE_ENCRYPTION_KEY."""
    typer.echo(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
