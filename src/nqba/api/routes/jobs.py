"""Jobs: read one, cancel one, and follow one as server-sent events.

A job is seen with the read permission of its decision's unit and cancelled with the decide
permission; a job of another organisation answers 404.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from nqba.api.deps import ServicesDep
from nqba.api.errors import ERROR_RESPONSES, ConflictError, ForbiddenError, NotFoundError
from nqba.api.security import CurrentPrincipal
from nqba.authz import Permission, Principal
from nqba.authz.permissions import decide_permission, read_permission
from nqba.jobs.repository import (
    FINISHED,
    JobAlreadyFinished,
    get_job,
    get_job_of_organisation,
    request_cancel,
)
from nqba.store.models import Decision, Job
from nqba.store.session import read_session, write_transaction

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

POLL_INTERVAL_S = 0.2
"""How often the event stream reads the job row."""
HEARTBEAT_INTERVAL_S = 15.0
"""How often the event stream sends a comment line when nothing changed (keeps proxies open)."""


class JobOut(BaseModel):
    """A job's state: where it is, how far it got, and when things happened."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    decision_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: float = Field(ge=0.0, le=1.0, description="Fraction done, 0 to 1.")
    message: str
    attempts: int = Field(description="Times a runner has started it (more than 1: retried).")
    cancel_requested: bool
    runner: str = Field(examples=["inprocess", "celery"])
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


def _authorised_job(
    session: Session,
    job_id: str,
    principal: Principal,
    permission_of: Callable[[str], Permission],
) -> Job:
    """The job if it is the caller's organisation's (else 404) and the caller holds the
    permission ``permission_of`` gives for its decision's unit (else 403)."""
    found = get_job_of_organisation(session, job_id, principal.organisation_id)
    if found is None:
        raise NotFoundError(f"no job {job_id!r}")
    job, decision = found
    _check(principal, decision, permission_of)
    return job


def _check(
    principal: Principal, decision: Decision, permission_of: Callable[[str], Permission]
) -> None:
    try:
        permission = permission_of(decision.unit)
    except ValueError:
        raise ForbiddenError(f"unknown unit {decision.unit!r}") from None
    if not principal.can(permission):
        raise ForbiddenError(
            f"role {principal.role.value!r} lacks the permission {permission.value!r}"
        )


@router.get("/{job_id}", response_model=JobOut, responses=ERROR_RESPONSES)
def read_job(job_id: str, services: ServicesDep, principal: CurrentPrincipal) -> JobOut:
    """The job's status, progress, message, attempts and timestamps."""
    with read_session(services.session_factory) as session:
        job = _authorised_job(session, job_id, principal, read_permission)
        return JobOut.model_validate(job)


@router.post("/{job_id}/cancel", response_model=JobOut, status_code=202, responses=ERROR_RESPONSES)
def cancel_job(job_id: str, services: ServicesDep, principal: CurrentPrincipal) -> JobOut:
    """Cancel the job: a queued one at once, a running one at its next progress report.

    Answers 202 with the job's state (``cancelled``, or ``cancel_requested`` true), and 409 if
    the job has already finished.
    """
    with write_transaction(services.session_factory) as session:
        job = _authorised_job(session, job_id, principal, decide_permission)
        try:
            job = request_cancel(session, job, audit=services.audit)
        except JobAlreadyFinished as e:
            raise ConflictError(
                str(e), code="job_finished", details={"status": e.job.status}
            ) from None
        return JobOut.model_validate(job)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": (
                "Server-sent events: `event: job` with a JobOut as data each time the status, "
                "progress or message changes, ending after a final status; a comment line as "
                "heartbeat every 15 s."
            ),
        },
        **ERROR_RESPONSES,
    },
)
def job_events(
    job_id: str, request: Request, services: ServicesDep, principal: CurrentPrincipal
) -> StreamingResponse:
    """Follow the job as server-sent events until it finishes (or the client leaves)."""
    with read_session(services.session_factory) as session:
        _authorised_job(session, job_id, principal, read_permission)
    return StreamingResponse(
        job_event_stream(services.session_factory, job_id, request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def job_event_stream(
    factory: sessionmaker[Session],
    job_id: str,
    is_disconnected: Callable[[], Awaitable[bool]],
    *,
    poll_interval_s: float = POLL_INTERVAL_S,
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
) -> AsyncIterator[str]:
    """Server-sent events of one job: an event per change, a heartbeat comment when quiet.

    Reads the row in a short session of its own every ``poll_interval_s`` (in a worker
    thread, so the event loop never waits on the database); ends after sending a final
    status, when the job disappears, or when the client has disconnected.
    """
    last: tuple[str, float, str] | None = None
    last_sent = time.monotonic()
    while True:
        if await is_disconnected():
            return
        state = await anyio.to_thread.run_sync(_read_state, factory, job_id)
        if state is None:
            yield _event("gone", {"id": job_id, "reason": "the job no longer exists"})
            return
        key = (state.status, state.progress, state.message)
        if key != last:
            last = key
            last_sent = time.monotonic()
            yield _event("job", state.model_dump(mode="json"))
            if state.status in FINISHED:
                return
        elif time.monotonic() - last_sent >= heartbeat_interval_s:
            last_sent = time.monotonic()
            yield ": heartbeat\n\n"
        await anyio.sleep(poll_interval_s)


def _read_state(factory: sessionmaker[Session], job_id: str) -> JobOut | None:
    with read_session(factory) as session:
        job = get_job(session, job_id)
        return None if job is None else JobOut.model_validate(job)


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
