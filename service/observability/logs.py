"""Structured logs: one JSON object per line (`time`, `level`, `logger`, `message`,
`request_id`, and the extras a call passes), configured by `casebridge serve`.

What must never reach a log line: tokens, keys, patient data. Our own messages name ids only;
the libraries that log request URLs or SQL parameters (httpx, httpcore, aiosqlite, asyncpg,
SQLAlchemy's engine echo) are held at WARNING, since a URL may carry a search by name or MRN and
a parameter may be a name. The uvicorn access log, which prints the path with its query
string, is replaced by ours (`casebridge.access`): the route template, never the raw path."""

from __future__ import annotations

import logging
import logging.config
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from service.observability.request_ids import current_request_id

ACCESS_LOGGER = "casebridge.access"
# Loggers that print URLs with their query strings, or SQL with its parameters, at INFO/DEBUG.
QUIET_LIBRARIES = ("httpx", "httpcore", "aiosqlite", "asyncpg", "sqlalchemy.engine", "hpack")


class RequestIdFilter(logging.Filter):
    """Stamps every record with the request id of the context it was logged in."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class UvicornAccessSuppressed(logging.Filter):
    """Drops uvicorn's own access lines (path with query string) where ours are written."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


_SUPPRESS_UVICORN_ACCESS = UvicornAccessSuppressed()


def suppress_uvicorn_access_log() -> None:
    """Called at app start-up, so that however uvicorn is started its access log (which
    carries query strings: names, birth dates, MRNs) stays silent. Idempotent."""
    logging.getLogger("uvicorn.access").addFilter(_SUPPRESS_UVICORN_ACCESS)


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        json_ensure_ascii=False,
    )


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for the service and uvicorn: JSON lines on stderr. Plain
    data, so `json.dumps` of it is a file for `uvicorn --log-config` too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"json": {"()": f"{__name__}.json_formatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
            **{name: {"level": "WARNING"} for name in QUIET_LIBRARIES},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(level))
