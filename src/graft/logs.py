"""Log lines as JSON objects, and the request id every line of a request carries.

``graft serve --log-format json`` (or ``[telemetry] log_format = "json"``) makes each log
line one JSON object: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
``request_id`` (inside an HTTP request), ``trace_id``/``span_id`` (while tracing is on) and
``exception`` (a traceback). The request id comes from ``graft.server.requestid``, which
takes it from the ``X-Request-ID`` header or makes one, and returns it in the response.

Secrets stay out: the server puts ``graft.secrets.SecretMasker`` on every handler, which masks
the message and the traceback before this formatter sees them; the formatter masks its
output once more, for records that reach a handler without the masker.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from graft import telemetry
from graft.secrets import mask_secrets

__all__ = ["REQUEST_ID", "JsonFormatter", "configure_logging", "uvicorn_log_config"]

LogFormat = Literal["text", "json"]

REQUEST_ID: ContextVar[str | None] = ContextVar("graft_request_id", default=None)
"""The id of the HTTP request being handled, set by ``graft.server.requestid``."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the request id and trace ids when there are any."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a single line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        ids = telemetry.current_ids()
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return mask_secrets(json.dumps(line, ensure_ascii=False))


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn in ``log_format`` (text: uvicorn's own).

    Given to ``uvicorn.run(log_config=...)``, which applies it in every worker process too.
    """
    if log_format == "text":
        from uvicorn.config import LOGGING_CONFIG

        return LOGGING_CONFIG
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "graft.logs.JsonFormatter"}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            # uvicorn's loggers keep no handler of their own: they propagate to the root.
            "uvicorn": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.error": {"handlers": [], "level": "INFO", "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "INFO", "propagate": True},
        },
    }


def configure_logging(log_format: LogFormat, level: int = logging.INFO) -> None:
    """Send the root logger's records to stderr in ``log_format`` (outside uvicorn)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
