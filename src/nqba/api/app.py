"""The FastAPI application: routers, error handlers and middleware, over one ``Services``."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from nqba import __version__
from nqba.api.errors import ApiError, error_body
from nqba.config import Settings
from nqba.decisions.registry import import_solver_modules
from nqba.jobs.runners import requeue_orphans
from nqba.services import Services, build_services
from nqba.telemetry.logging import configure_logging
from nqba.telemetry.tracing import configure_tracing, shutdown_tracing

log = logging.getLogger("nqba.api")

TAGS = [
    {"name": "auth", "description": "Tokens (OAuth2 password flow), refresh, API keys, users."},
    {"name": "decisions", "description": "Every decision made, with its inputs and audit proof."},
    {"name": "nqba", "description": "NQBA core: the generic decision engine endpoint."},
    {"name": "goliath", "description": "Goliath Trade (finance): portfolio decisions."},
    {"name": "engine", "description": "Raw models (BQM JSON or G-set text) for the engine."},
    {"name": "jobs", "description": "Long decisions run as jobs: poll, cancel, follow (SSE)."},
    {"name": "audit", "description": "The Merkle audit log: checkpoints and proofs."},
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
]


def _routers() -> list[Any]:
    """Every router of the API (imported here so that ``create_app`` is the one entry)."""
    from nqba.api.routes import audit, auth, decisions, engine, health, jobs
    from nqba.finance import endpoints as finance_endpoints

    return [  # the decision routes first: a request is matched against routes in order
        finance_endpoints.router,
        engine.router,
        decisions.router,
        health.router,
        auth.router,
        jobs.router,
        audit.router,
    ]


def create_app(
    services: Services | None = None,
    settings: Settings | None = None,
    *,
    server_process: bool = False,
) -> FastAPI:
    """The API over ``services``; without them, build them from ``settings`` and migrate.

    ``server_process``: the process serves only this app (``nqba serve``); at start it imports
    every decision kind's solvers and freezes its start-up heap (:func:`freeze_startup_heap`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or build_services(
            settings, migrate=True, server=server_process
        )
        if owned:  # each server process (uvicorn worker) sets up its own log handlers
            configure_logging(json_lines=app.state.services.settings.log_json)
        if owned and app.state.services.settings.jobs == "inprocess":
            requeue_orphans(app.state.services.session_factory, app.state.services.jobs)
        tracing = configure_tracing(app.state.services.settings.otel_endpoint)
        if server_process:  # no solver import in a first request, and no full collection
            import_solver_modules()  # walking every module's objects under load
            freeze_startup_heap()
        try:
            yield
        finally:
            if tracing:
                shutdown_tracing()
            if owned:
                app.state.services.close()

    app = FastAPI(
        title="NQBA",
        version=__version__,
        description=(
            "Decision-optimization API. Every decision is solved, recorded with its inputs, "
            "solver, timings and measured baseline, and appended to a Merkle audit log."
        ),
        openapi_tags=TAGS,
        lifespan=lifespan,
        # requests are traced by RequestContextMiddleware on NQBA's own tracer; FastAPI's
        # native telemetry would trace them twice under a global provider, and looks the
        # providers up on every request even when it has none
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    if services is not None:
        app.state.services = services
    _install_error_handlers(app)
    from nqba.api.middleware import install_middleware

    install_middleware(app)
    for router in _routers():
        app.include_router(router)
    return app


def create_server_app() -> FastAPI:
    """The app of ``nqba serve`` (a uvicorn factory): settings from the environment."""
    return create_app(server_process=True)


def freeze_startup_heap() -> None:
    """Move every object made at start-up out of the collector's reach (``gc.freeze``).

    A server process holds some 300,000 objects after its imports (NumPy, SciPy, pandas,
    SQLAlchemy, FastAPI); each full collection walked all of them, 100-150 ms with the interpreter
    lock held, stalling every request of that worker. Frozen objects are still freed by
    reference counting; only the cycle collector skips them.
    """
    gc.collect()
    gc.freeze()


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.reason, exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        reason = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in details[:5])
        return JSONResponse(
            error_body("invalid_request", reason or "invalid request", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(SATimeoutError)
    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        log.error("database unavailable: %s", type(exc).__name__, extra={"request_id": request_id})
        return JSONResponse(
            error_body(
                "database_unavailable",
                "the database could not be reached or is busy; retry later (with the same "
                "Idempotency-Key, a retried decision is made at most once)",
            ),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        log.exception("unhandled error", extra={"request_id": request_id})
        return JSONResponse(
            error_body(
                "internal_error",
                f"internal error (request id {request_id}); it is logged, please report it",
            ),
            status_code=500,
        )
