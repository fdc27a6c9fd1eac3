"""Job rows: create, claim, report progress, finish and cancel, each a guarded UPDATE.

What is guaranteed, and what the work function must do:

* Delivery is at least once. A job id reaches a runner only after the transaction that
  created the job commits (:func:`nqba.jobs.runners.enqueue_after_commit`). With Celery the
  message is acknowledged after the work returns (acks late), so a worker that dies mid-job
  leaves the message to be delivered again; the work function may therefore run more than
  once for one job and must be idempotent: it claims the job first and writes its results in
  one transaction that also finishes the job (:func:`finish` refuses if another attempt has
  taken the job over, so only one attempt's results are committed).
* Claim rules (:func:`claim`). A ``queued`` job is claimed by exactly one caller: the UPDATE
  is conditional on the status and on the attempt count read just before, so of two racing
  claimers only one changes the row. A ``running`` job is claimed again only by a caller that
  is allowed to re-claim (:func:`reclaim_allowed`): the Celery task allows it for a message
  that was delivered again (its worker died or lost the message: ``redelivered``) or that is
  its own retry after a transient error. A fresh delivery of a running job (a duplicate
  enqueue) is skipped. A finished or cancelled job is never claimed again.
* The one case of two attempts running at once: a job that runs longer than the broker's
  visibility timeout is delivered again while its first worker still works on it. Keep
  ``NQBA_CELERY_VISIBILITY_TIMEOUT_S`` above ``NQBA_JOB_TIME_LIMIT_S``; even then only one
  attempt can finish the job, because :func:`finish` checks the attempt number.

Functions that take a session never commit (the caller's transaction boundary does); the two
that take a session factory (:func:`report_progress`, :func:`abandon`) run their own short
transaction.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from nqba.audit.log import AuditLog
from nqba.decisions.records import append_decision_leaf
from nqba.store.base import utcnow
from nqba.store.models import Decision, Job
from nqba.store.session import write_transaction

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FinalStatus = Literal["succeeded", "failed", "cancelled"]

UNFINISHED: tuple[JobStatus, ...] = ("queued", "running")
FINISHED: tuple[FinalStatus, ...] = ("succeeded", "failed", "cancelled")


class JobCancelled(Exception):  # noqa: N818 (the name the work functions catch)
    """Cancellation was requested: the work function stops and finishes the job cancelled."""


class JobSuperseded(Exception):  # noqa: N818
    """The job is no longer held by this attempt (finished elsewhere, or claimed again)."""


class JobAlreadyFinished(Exception):  # noqa: N818
    """The job has a final status; it can no longer be cancelled."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} is already {job.status}")
        self.job = job


_reclaim: ContextVar[bool] = ContextVar("nqba_job_reclaim", default=False)


@contextmanager
def reclaim_allowed(allowed: bool = True) -> Iterator[None]:
    """Within this block, :func:`claim` may take over a ``running`` job (redelivery, retry)."""
    token = _reclaim.set(allowed)
    try:
        yield
    finally:
        _reclaim.reset(token)


def create_job(session: Session, *, organisation_id: str, decision_id: str, runner: str) -> Job:
    """A new ``queued`` job for ``decision_id`` (flushed, not committed)."""
    now = utcnow()
    job = Job(
        organisation_id=organisation_id,
        decision_id=decision_id,
        status="queued",
        progress=0.0,
        message="queued",
        attempts=0,
        cancel_requested=False,
        runner=runner,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: str) -> Job | None:
    """The job ``job_id``, read fresh from the database."""
    return session.get(Job, job_id, populate_existing=True)


def get_job_of_organisation(
    session: Session, job_id: str, organisation_id: str
) -> tuple[Job, Decision] | None:
    """The job and its decision, if the job exists and belongs to ``organisation_id``."""
    row = session.execute(
        select(Job, Decision)
        .join(Decision, Decision.id == Job.decision_id)
        .where(Job.id == job_id, Job.organisation_id == organisation_id)
        .execution_options(populate_existing=True)
    ).first()
    return None if row is None else (row[0], row[1])


def claim(session: Session, job_id: str, *, reclaim: bool | None = None) -> Job | None:
    """Take the job for this attempt: status ``running``, ``attempts + 1``, progress 0 (the
    progress is the current attempt's), ``started_at`` now; a queued decision becomes running.

    Returns ``None`` when there is nothing to run: no such job, a final status, a running job
    this caller may not re-claim (``reclaim`` defaults to :func:`reclaim_allowed`'s value),
    or another claimer won the race. The claimed job may carry ``cancel_requested`` (asked for
    while an earlier attempt ran): check it before starting (:func:`report_progress` raises
    :class:`JobCancelled` on it). Call it first in a write transaction
    (:func:`nqba.store.session.write_transaction`) and commit before the long work starts.
    """
    may_reclaim = _reclaim.get() if reclaim is None else reclaim
    current = session.execute(
        select(Job.status, Job.attempts, Job.decision_id).where(Job.id == job_id)
    ).first()
    if current is None:
        return None
    status, attempts, decision_id = current
    if status == "running" and not may_reclaim:
        return None
    if status not in UNFINISHED:
        return None
    now = utcnow()
    changed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == status, Job.attempts == attempts)
        .values(
            status="running",
            attempts=attempts + 1,
            progress=0.0,
            started_at=now,
            updated_at=now,
            message=f"running (attempt {attempts + 1})",
        )
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.execute(
        update(Decision)
        .where(Decision.id == decision_id, Decision.status == "queued")
        .values(status="running")
        .execution_options(synchronize_session=False)
    )
    return session.get_one(Job, job_id, populate_existing=True)


def report_progress(
    factory: sessionmaker[Session], job_id: str, fraction: float, message: str
) -> None:
    """Record progress (``fraction`` in [0, 1]) in a short transaction of its own.

    Raises :class:`JobCancelled` when cancellation was requested, and :class:`JobSuperseded`
    when the job is no longer running (finished by another attempt, or gone). Do not call it
    while this thread holds another write transaction on SQLite (it would wait for itself).
    """
    if math.isnan(fraction):
        raise ValueError("progress fraction is NaN")
    fraction = min(1.0, max(0.0, fraction))
    with write_transaction(factory) as session:
        row = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running")
            .values(progress=fraction, message=message, updated_at=utcnow())
            .returning(Job.cancel_requested)
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            status = session.execute(select(Job.status).where(Job.id == job_id)).scalar()
            if status == "cancelled":
                raise JobCancelled(job_id)
            raise JobSuperseded(f"job {job_id} is {status or 'gone'}, not running")
        if row[0]:
            raise JobCancelled(job_id)


def finish(session: Session, job: Job, status: FinalStatus, message: str) -> Job:
    """Give ``job`` its final ``status`` (and ``progress`` 1 when it succeeded); return the row.

    Conditional on the job being unfinished and still at the attempt ``job`` was claimed
    with (``job`` may be the detached object :func:`claim` returned); otherwise raises
    :class:`JobSuperseded` and the caller must roll back its results. The decision row is
    the caller's to complete (with its audit leaf) in the same transaction.
    """
    if status not in FINISHED:
        raise ValueError(f"not a final job status: {status!r}")
    now = utcnow()
    values: dict[str, object] = {
        "status": status,
        "message": message,
        "finished_at": now,
        "updated_at": now,
    }
    if status == "succeeded":
        values["progress"] = 1.0
    changed = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status.in_(UNFINISHED), Job.attempts == job.attempts)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise JobSuperseded(f"job {job.id} is no longer held by attempt {job.attempts}")
    return session.get_one(Job, job.id, populate_existing=True)


def request_cancel(session: Session, job: Job, *, audit: AuditLog) -> Job:
    """Cancel ``job``: a queued one at once (with its decision), a running one on request.

    A queued job's decision is finished ``cancelled`` with its audit leaf, in ``session``'s
    transaction (a write transaction: the leaf takes the audit head's lock). A running job
    gets ``cancel_requested``; its work function sees it at the next :func:`report_progress`
    and stops. Raises :class:`JobAlreadyFinished` for a final status.
    """
    now = utcnow()
    cancelled = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == "queued")
        .values(
            status="cancelled",
            cancel_requested=True,
            message="cancelled before it started",
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if cancelled.rowcount == 1:  # type: ignore[attr-defined]
        _finish_decision(session, job.decision_id, "cancelled", None, audit)
    else:
        session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == "running")
            .values(cancel_requested=True, message="cancellation requested", updated_at=now)
            .execution_options(synchronize_session=False)
        )
    session.refresh(job)
    if job.status in FINISHED and cancelled.rowcount != 1:  # type: ignore[attr-defined]
        raise JobAlreadyFinished(job)
    return job


def abandon(
    factory: sessionmaker[Session],
    job_id: str,
    status: FinalStatus,
    message: str,
    *,
    audit: AuditLog,
) -> bool:
    """Last resort of a runner when the work function did not finish the job itself.

    Gives the job (if still unfinished, whatever attempt holds it) and its decision (if still
    queued or running) the final ``status`` with its audit leaf, in a write transaction of its
    own. Returns whether the job row changed.
    """
    now = utcnow()
    with write_transaction(factory) as session:
        changed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(UNFINISHED))
            .values(status=status, message=message, finished_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            return False
        decision_id = session.execute(select(Job.decision_id).where(Job.id == job_id)).scalar()
        if decision_id is not None:
            error = None if status == "cancelled" else {"code": "job_failed", "reason": message}
            _finish_decision(session, decision_id, status, error, audit)
        return True


def _finish_decision(
    session: Session,
    decision_id: str,
    status: FinalStatus,
    error: dict[str, str] | None,
    audit: AuditLog,
) -> None:
    """Give an unfinished decision a final status without outputs, and append its audit leaf.

    Every finished decision has a leaf, cancelled and failed ones too (as ``run_job``'s do).
    """
    decision = session.get(Decision, decision_id, populate_existing=True, with_for_update=True)
    if decision is None or decision.status not in UNFINISHED:
        return
    decision.status = status
    decision.completed_at = utcnow()
    if error is not None:
        decision.error = error
    append_decision_leaf(audit, session, decision)
