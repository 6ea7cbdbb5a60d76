"""`CASEBRIDGE_<NAME>_FILE`: a secret read from a mounted file, as Docker and Kubernetes hand
secrets over; setting both the value and the file is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from pydantic_settings import SettingsError

from service.settings import Settings, file_settings

KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in file_settings(Settings):
        variable = f"CASEBRIDGE_{name.upper()}"
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(f"{variable}_FILE", raising=False)
    monkeypatch.setenv("CASEBRIDGE_DEV_MODE", "false")
    monkeypatch.chdir(tmp_path)  # no .env here


def secret_file(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


def test_a_secret_comes_from_its_file_without_the_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(
        "CASEBRIDGE_ENCRYPTION_KEY_FILE", str(secret_file(tmp_path, "key", KEY + "\n"))
    )
    monkeypatch.setenv(
        "CASEBRIDGE_DATABASE_URL_FILE",
        str(secret_file(tmp_path, "url", "postgresql+asyncpg://cb:pw@db/cb\n")),
    )
    settings = Settings()
    assert settings.encryption_key == SecretStr(KEY)
    assert settings.database_url == "postgresql+asyncpg://cb:pw@db/cb"


def test_every_secret_setting_can_come_from_a_file() -> None:
    secrets = {
        name
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    assert secrets >= {"encryption_key", "bootstrap_api_key"}
    assert secrets <= set(file_settings(Settings))


def test_the_file_wins_over_the_dotenv_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(f"CASEBRIDGE_ENCRYPTION_KEY={Fernet.generate_key().decode()}\n")
    monkeypatch.setenv("CASEBRIDGE_ENCRYPTION_KEY_FILE", str(secret_file(tmp_path, "key", KEY)))
    assert Settings().encryption_key == SecretStr(KEY)


def test_the_value_and_its_file_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CASEBRIDGE_ENCRYPTION_KEY", KEY)
    monkeypatch.setenv("CASEBRIDGE_ENCRYPTION_KEY_FILE", str(secret_file(tmp_path, "key", KEY)))
    with pytest.raises(SettingsError, match=r"CASEBRIDGE_ENCRYPTION_KEY or .*_FILE, not both"):
        Settings()


@pytest.mark.parametrize(
    ("content", "message"), [(None, "cannot read"), ("\n", "is empty")], ids=["missing", "empty"]
)
def test_a_missing_or_empty_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "key"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("CASEBRIDGE_BOOTSTRAP_API_KEY_FILE", str(path))
    monkeypatch.setenv("CASEBRIDGE_ENCRYPTION_KEY", KEY)
    with pytest.raises(SettingsError, match=rf"CASEBRIDGE_BOOTSTRAP_API_KEY_FILE: .*{message}"):
        Settings()
