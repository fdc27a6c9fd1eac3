"""Request ids, access logs and request metrics, as one pure ASGI middleware."""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nqba.telemetry.logging import request_id_var
from nqba.telemetry.metrics import REQUEST_LATENCY, REQUESTS_IN_FLIGHT
from nqba.telemetry.tracing import span

log = logging.getLogger("nqba.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Gives each request an id (``X-Request-ID``, kept if the client sent a sane one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        REQUESTS_IN_FLIGHT.inc()
        try:
            with span(
                f"{scope['method']} {scope['path']}",
                **{"http.method": scope["method"], "nqba.request_id": request_id},
            ) as current:
                await self.app(scope, receive, send_with_id)
                if current is not None:
                    current.set_attribute("http.route", _route_template(scope))
                    current.set_attribute("http.status_code", status)
        finally:
            REQUESTS_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            REQUEST_LATENCY.labels(scope["method"], route, str(status)).observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
            request_id_var.reset(token)


def _route_template(scope: Scope) -> str:
    """The matched route's template (bounded label values), or 'unmatched'."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def install_middleware(app: FastAPI) -> None:
    """Add NQBA's middleware to ``app``."""
    app.add_middleware(RequestContextMiddleware)
