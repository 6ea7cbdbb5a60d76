"""`casebridge serve` starts uvicorn with JSON logs and without its own access log (which
carries query strings); the JSON lines carry the request id of the context they were logged in."""

from __future__ import annotations

import base64
import io
import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from pythonjsonlogger.json import JsonFormatter
from typer.testing import CliRunner

from service.cli import app
from service.observability import logs
from service.observability.request_ids import request_id_var
from service.settings import get_settings


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CASEBRIDGE_ENCRYPTION_KEY", base64.urlsafe_b64encode(b"k" * 32).decode())
    monkeypatch.setenv("CASEBRIDGE_LOG_LEVEL", "DEBUG")
    # uvicorn.run is replaced below: no database is served, so the schema check is skipped.
    monkeypatch.setenv("CASEBRIDGE_AUTO_MIGRATE", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_serve_configures_json_logs_and_no_uvicorn_access_log(
    environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: dict[str, Any] = {}
    configured: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **options: started.update(options))
    monkeypatch.setattr(logs, "configure_logging", configured.append)
    result = CliRunner().invoke(app, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert configured == ["DEBUG"]
    assert started["access_log"] is False
    config = started["log_config"]
    assert config["root"]["level"] == "DEBUG"
    assert config["handlers"]["stderr"]["formatter"] == "json"
    for library in logs.QUIET_LIBRARIES:
        assert config["loggers"][library]["level"] == "WARNING"


def test_a_line_is_one_json_object_with_the_request_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.json_formatter())
    handler.addFilter(logs.RequestIdFilter())
    logger = logging.getLogger("casebridge.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = request_id_var.set("req-7")
    try:
        logger.info("pulled %d patients", 3, extra={"job": "j1"})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "pulled 3 patients"
    assert line["level"] == "INFO"
    assert line["logger"] == "casebridge.test"
    assert line["request_id"] == "req-7"
    assert line["job"] == "j1"
    assert line["time"]


def test_the_configuration_is_plain_data_that_dict_config_accepts() -> None:
    config = json.loads(json.dumps(logs.logging_config("INFO")))
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET_LIBRARIES}
    try:
        logging.config.dictConfig(config)
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert any(isinstance(f, logs.RequestIdFilter) for f in handler.filters)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
