"""The work every write transaction does just before it commits, in this order: re-project the
cases it changed (`fhir_store.projector`), then queue their pushes (`push.outbox`, which reads
what the projection versioned). Every process that writes installs them: the API, the push
workers, and tests that run a dispatcher."""

from __future__ import annotations

from service.db.session import Database
from service.fhir_store.projector import project_changes
from service.push.outbox import enqueue_pushes


def install_commit_hooks(database: Database) -> Database:
    database.before_commit[:] = [project_changes, enqueue_pushes]
    return database
