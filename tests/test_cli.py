"""The `casebridge` command, run as a user would: migrate, inspect, issue a key."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

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


def test_generate_encryption_key_prints_a_32_byte_key() -> None:
    result = runner.invoke(app, ["generate-encryption-key"])
    assert result.exit_code == 0
    assert len(base64.urlsafe_b64decode(result.stdout.strip())) == 32


def test_db_upgrade_then_current(environment: None) -> None:
    before = runner.invoke(app, ["db", "current"])
    assert before.exit_code == 0
    assert "database: empty" in before.stdout
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    after = runner.invoke(app, ["db", "current"])
    assert "database: empty" not in after.stdout
    database, code = after.stdout.split(";")
    assert database.split(":")[1].strip() == code.split(":")[1].strip()


def test_api_keys_create_prints_the_key_once(environment: None) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["api-keys", "create", "etl", "--role", "admin"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith("cbk_")
    again = runner.invoke(app, ["api-keys", "create", "etl"])
    assert again.exit_code == 1
    assert "an API key named 'etl' exists" in again.stderr


def test_missing_secrets_are_refused_outside_dev_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CASEBRIDGE_ENCRYPTION_KEY", raising=False)
    monkeypatch.setenv("CASEBRIDGE_DEV_MODE", "false")
    monkeypatch.chdir(tmp_path)  # no .env here
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["db", "current"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "CASEBRIDGE_ENCRYPTION_KEY (or CASEBRIDGE_ENCRYPTION_KEY_FILE) is required" in (
        result.stderr
    )
