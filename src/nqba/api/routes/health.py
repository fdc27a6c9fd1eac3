"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import func, select, text

from nqba.api.deps import ServicesDep
from nqba.store.cache import RedisCache
from nqba.store.migrate import current_revision, head_revision
from nqba.store.models import AuditLeaf, Job
from nqba.telemetry.metrics import AUDIT_TREE_SIZE, JOB_QUEUE_DEPTH, REGISTRY

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Liveness: the process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Readiness: every dependency answers and the schema is current."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive (answered on the event loop: no worker thread for a constant)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency is not ready"}},
)
def readyz(services: ServicesDep, response: Response) -> Readiness:
    """The database answers at the latest schema revision, and Redis answers when configured."""
    checks: dict[str, str] = {}
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = current_revision(services.engine)
        head = head_revision()
        checks["database"] = "ok" if revision == head else f"schema at {revision}, needs {head}"
    except Exception as e:
        checks["database"] = f"unreachable: {type(e).__name__}"
    if isinstance(services.cache, RedisCache):
        try:
            checks["redis"] = "ok" if services.cache.ping() else "no answer"
        except Exception as e:
            checks["redis"] = f"unreachable: {type(e).__name__}"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        response.status_code = 503
    return Readiness(status="ready" if ready else "not_ready", checks=checks)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics; queue depth and audit size are read from the database now."""
    with services.session_factory() as session:
        counts = dict(
            session.execute(
                select(Job.status, func.count())
                .where(Job.status.in_(("queued", "running")))
                .group_by(Job.status)
            ).all()
        )
        size = session.execute(select(func.count()).select_from(AuditLeaf)).scalar_one()
    for status in ("queued", "running"):
        JOB_QUEUE_DEPTH.labels(status).set(counts.get(status, 0))
    AUDIT_TREE_SIZE.set(size)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
