"""Access logs are JSON lines carrying the request id the response also carries."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from nqba.telemetry.logging import LOGGERS, JsonFormatter, configure_logging


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def access_lines() -> Iterator[_Lines]:
    handler = _Lines()
    logger = logging.getLogger("nqba.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


def test_each_request_logs_one_json_line_with_its_request_id(
    client: TestClient, access_lines: _Lines
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "req-77"})
    assert response.headers["x-request-id"] == "req-77"
    entries = [json.loads(line) for line in access_lines.lines]
    entry = next(e for e in entries if e.get("path") == "/healthz")
    assert entry["request_id"] == "req-77"
    assert entry["status"] == 200
    assert entry["route"] == "/healthz"
    assert entry["level"] == "info"
    assert entry["duration_ms"] >= 0


def test_a_request_id_that_could_forge_log_lines_is_replaced(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "bad id\\n{}"})
    assert response.headers["x-request-id"] != "bad id\\n{}"
    assert len(response.headers["x-request-id"]) == 32


def test_the_servers_own_logs_are_json_lines_too(capsys: pytest.CaptureFixture[str]) -> None:
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in LOGGERS}
    try:
        configure_logging(json_lines=True)
        logging.getLogger("uvicorn.error").error("Invalid HTTP request received.")
        logging.getLogger("nqba.jobs").warning("job requeued")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        for name, (handlers, propagate) in saved.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate
    assert [(e["logger"], e["level"], e["message"]) for e in lines] == [
        ("uvicorn.error", "error", "Invalid HTTP request received."),
        ("nqba.jobs", "warning", "job requeued"),
    ]
