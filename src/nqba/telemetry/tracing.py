"""OpenTelemetry traces over OTLP/HTTP, on when ``NQBA_OTEL_ENDPOINT`` is set.

Without an endpoint nothing is imported and :func:`span` costs one context manager. With one,
the ``otel`` extra must be installed (``pip install nqba[otel]``); a missing package is a
clear error at start-up, not a silent no-op.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nqba import __version__

_tracer: Any = None
_provider: Any = None


class TracingUnavailableError(RuntimeError):
    """An OTLP endpoint is configured but the OpenTelemetry packages are not installed."""


def configure_tracing(endpoint: str | None, service_name: str = "nqba") -> bool:
    """Export spans to ``endpoint`` (e.g. http://collector:4318/v1/traces); False if unset."""
    global _tracer, _provider
    if not endpoint:
        return False
    try:
        sdk_trace = importlib.import_module("opentelemetry.sdk.trace")
        export = importlib.import_module("opentelemetry.sdk.trace.export")
        resources = importlib.import_module("opentelemetry.sdk.resources")
        otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    except ImportError as e:
        raise TracingUnavailableError(
            f"NQBA_OTEL_ENDPOINT is set but OpenTelemetry is not installed ({e.name}); "
            "install the extra: pip install 'nqba[otel]'"
        ) from None
    resource = resources.Resource.create(
        {"service.name": service_name, "service.version": __version__}
    )
    provider = sdk_trace.TracerProvider(resource=resource)
    provider.add_span_processor(export.BatchSpanProcessor(otlp.OTLPSpanExporter(endpoint=endpoint)))
    _provider = provider
    _tracer = provider.get_tracer("nqba", __version__)
    return True


def shutdown_tracing() -> None:
    """Flush and stop the exporter (spans still buffered are sent)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


@contextmanager
def span(name: str, **attributes: str | int | float | bool | None) -> Iterator[Any]:
    """A span named ``name`` when tracing is on (yielded, to add attributes); else None."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name) as current:
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(key, value)
        yield current
