"""The README stays true: its two first commands, CI running the same test command, and
every setting documented."""

from __future__ import annotations

from pathlib import Path

from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def first_commands() -> list[str]:
    lines = README.splitlines()
    assert lines[0] == "```sh", "the README opens with the two commands"
    end = lines.index("```", 1)
    return lines[1:end]


def test_the_readme_opens_with_a_serve_and_a_test_command() -> None:
    serve, test = first_commands()
    assert "pip install -c constraints.txt -e ." in serve
    assert serve.endswith("casebridge serve --migrate")
    assert "'.[test]'" in test
    assert test.endswith(".venv/bin/pytest")


def test_ci_runs_the_readme_test_command() -> None:
    _serve, test = first_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        variable = f"CASEBRIDGE_{name.upper()}"
        assert f"`{variable}`" in README, f"{variable} is not in the README's configuration table"
