"""Traces reach a real OTLP/HTTP receiver when an endpoint is configured."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from nqba.api.app import create_app
from nqba.telemetry import tracing
from tests.support.platform import platform_settings


class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Receiver.bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def otlp_endpoint() -> Iterator[str]:
    _Receiver.bodies = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    finally:
        server.shutdown()


def _span_names() -> set[str]:
    names: set[str] = set()
    for body in _Receiver.bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                names.update(s.name for s in scope.spans)
    return names


def test_requests_are_traced_to_the_configured_otlp_endpoint(
    otlp_endpoint: str, tmp_path: Path
) -> None:
    settings = platform_settings(f"sqlite:///{tmp_path / 'nqba.db'}", otel_endpoint=otlp_endpoint)
    with TestClient(create_app(settings=settings)) as client:
        assert client.get("/healthz").status_code == 200
    assert "GET /healthz" in _span_names()


def test_without_an_endpoint_nothing_is_traced() -> None:
    assert tracing.configure_tracing(None) is False
    with tracing.span("anything") as current:
        assert current is None
