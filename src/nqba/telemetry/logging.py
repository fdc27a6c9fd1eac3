"""JSON log lines with the request id of the request being served (a context variable)."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import pydantic_core

request_id_var: ContextVar[str | None] = ContextVar("nqba_request_id", default=None)

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, process id, request id and
    extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # which worker of a multi-process server
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            out["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        try:  # pydantic-core's writer: a fifth of the standard library's time per line
            return pydantic_core.to_json(out).decode()
        except ValueError:  # e.g. a lone surrogate in a message
            return json.dumps(out, ensure_ascii=False)


def configure_logging(json_lines: bool = True, level: int = logging.INFO) -> None:
    """Send ``nqba`` logs, and the server's own (``uvicorn``: start-up, shutdown, errors it
    catches), to stderr, as JSON lines or as plain text, so one parser reads every line."""
    # Nothing in a line needs where it was logged from or which thread logged it, and the
    # logging module finds both on every call unless told not to (its documented switches):
    # about a third of the per-request access line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


LOGGERS = ("nqba", "uvicorn")
"""The loggers :func:`configure_logging` sets up (uvicorn.error propagates to uvicorn; its
access log stays off: ``nqba.access`` writes one line per request)."""
