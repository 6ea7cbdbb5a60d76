"""Dev mode keeps its generated encryption key in a file, so a restart can still read what
the first run encrypted (the /fhir token signing key above all)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.settings import Settings, load_or_create_dev_key
from tests.api.case_factory import ok
from tests.conftest import BOOTSTRAP_KEY
from tests.fhir_auth.support import ES384_KEY, TOKEN_PATH, App, register

APP = App("restart-app", ES384_KEY, "ES384")


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASEBRIDGE_ENCRYPTION_KEY", raising=False)
    monkeypatch.delenv("CASEBRIDGE_ENCRYPTION_KEY_FILE", raising=False)


def dev_settings(database_url: str, key_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        dev_mode=True,
        dev_encryption_key_path=key_path,
        auto_migrate=True,
        bootstrap_api_key=BOOTSTRAP_KEY,
        public_base_url="http://testserver",
    )


async def run_once(settings: Settings, *, register_client: bool) -> httpx.Response:
    """Start the app, optionally register the client, ask for a token, stop the app."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        if register_client:
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://testserver",
                headers={"X-API-Key": BOOTSTRAP_KEY},
            ) as admin:
                await register(admin, APP.client_id)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.post(TOKEN_PATH, data=APP.form())


async def test_a_restart_in_dev_mode_keeps_auth_token_working(
    empty_database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_path = tmp_path / "dev-key"
    with caplog.at_level(logging.WARNING, logger="service.settings"):
        first = dev_settings(empty_database_url, key_path)
    assert str(key_path) in caplog.text  # it says where the key is
    assert ok(await run_once(first, register_client=True))["access_token"]

    second = dev_settings(empty_database_url, key_path)
    assert second.encryption_key == first.encryption_key
    restarted = await run_once(second, register_client=False)
    assert ok(restarted)["access_token"]


def test_the_key_file_is_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "dev-key"
    key = load_or_create_dev_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_dev_key(path) == key
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_a_key_file_without_a_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dev-key"
    path.write_text("not a key\n")
    with pytest.raises(ValueError, match="does not hold an encryption key"):
        load_or_create_dev_key(path)
