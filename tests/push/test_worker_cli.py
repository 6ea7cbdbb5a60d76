"""`casebridge push-worker --once` runs against a migrated database and exits when nothing is
due (the delivering worker runs as a real process in test_worker_processes.py)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.settings import get_settings

runner = CliRunner()


@pytest.fixture
def environment(empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CASEBRIDGE_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("CASEBRIDGE_ENCRYPTION_KEY", base64.urlsafe_b64encode(b"k" * 32).decode())
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_push_worker_once_exits_when_nothing_is_due(environment: None) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["push-worker", "--once"])
    assert result.exit_code == 0, result.output


def test_push_worker_is_listed_in_the_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert "push-worker" in result.stdout
