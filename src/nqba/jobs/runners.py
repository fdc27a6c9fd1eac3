"""The job runner interface and its two implementations: in-process threads and Celery.

A runner is handed job ids *after* the transaction that created the job has committed
(:func:`enqueue_after_commit`); the work function opens its own sessions. Delivery is at
least once under Celery, and at most once in-process; see :mod:`nqba.jobs.repository` for the
claim rules that make a second delivery harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from nqba.audit.log import AuditLog
from nqba.config import Settings
from nqba.jobs.repository import FINISHED, JobCancelled, JobSuperseded, abandon
from nqba.store.base import utcnow
from nqba.store.models import Job
from nqba.store.session import write_transaction
from nqba.telemetry.metrics import JOB_OUTCOMES

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("nqba.jobs")

Work = Callable[[str], None]
"""Runs one job by id (opens its own sessions, claims the job, finishes it)."""


class JobsConfigError(ValueError):
    """The job settings are incomplete (e.g. Celery without a broker URL)."""


class JobRunner(Protocol):
    """Runs jobs by id, somewhere."""

    name: str

    def enqueue(self, job_id: str) -> None:
        """Schedule ``job_id``; call only after the job's row is committed."""
        ...

    def close(self) -> None: ...


def execute(
    run: Callable[[], None],
    factory: sessionmaker[Session],
    job_id: str,
    runner: str,
    *,
    audit: AuditLog,
    retryable: tuple[type[BaseException], ...] = (),
) -> str | None:
    """Run one attempt of a job and make sure it does not stay unfinished by accident.

    A :class:`JobCancelled` that escapes the work function finishes the job (and decision)
    cancelled; a :class:`JobSuperseded` means another attempt owns the job and is left alone;
    any other exception, unless ``retryable``, fails the job and is re-raised (decisions
    finished here get their audit leaf from ``audit``). Returns the job's status afterwards
    (``None`` when superseded or gone) and counts a final one in ``nqba_jobs_total``.
    """
    try:
        run()
    except JobCancelled:
        abandon(factory, job_id, "cancelled", "cancelled on request", audit=audit)
    except JobSuperseded as e:
        log.info("job attempt superseded: %s", e, extra={"job": job_id})
        return None
    except retryable:
        raise
    except Exception as e:
        abandon(factory, job_id, "failed", f"{type(e).__name__}: {e}", audit=audit)
        _count_final(factory, job_id, runner)
        raise
    return _count_final(factory, job_id, runner)


def _count_final(factory: sessionmaker[Session], job_id: str, runner: str) -> str | None:
    """The job's status now; a final one is counted in ``nqba_jobs_total``."""
    with factory() as session:
        status = session.execute(select(Job.status).where(Job.id == job_id)).scalar()
    if status in FINISHED:
        JOB_OUTCOMES.labels(runner, status).inc()
    return status


class InProcessRunner:
    """A thread pool in the API process: the embedded default.

    Jobs run at most once: a job whose process stops before it finishes stays ``queued`` or
    ``running`` in the database (nothing delivers it again). Use Celery where that matters.
    """

    name = "inprocess"

    def __init__(
        self,
        work: Work,
        factory: sessionmaker[Session],
        audit: AuditLog,
        max_workers: int = 2,
    ) -> None:
        self._work = work
        self._factory = factory
        self._audit = audit
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="nqba-job")

    def enqueue(self, job_id: str) -> None:
        self._pool.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        try:
            execute(lambda: self._work(job_id), self._factory, job_id, self.name, audit=self._audit)
        except Exception:
            log.exception("job failed outside its own error handling", extra={"job": job_id})

    def close(self) -> None:
        """Wait for the jobs already submitted, then stop the threads."""
        self._pool.shutdown(wait=True, cancel_futures=False)


class CeleryRunner:
    """Sends each job id as a ``nqba.jobs.run`` task to the Celery broker (Redis).

    The Celery app is built on the first enqueue, so a process that never enqueues (a worker's
    own services) opens no broker connection.
    """

    name = "celery"

    def __init__(self, settings: Settings) -> None:
        if not settings.broker_url:
            raise JobsConfigError(
                "NQBA_JOBS=celery needs a broker: set NQBA_CELERY_BROKER_URL or NQBA_REDIS_URL"
            )
        self._settings = settings
        self._app: Celery | None = None

    @property
    def app(self) -> Celery:
        """The Celery app that sends the tasks (built on first use)."""
        if self._app is None:
            from nqba.jobs.celery_app import make_celery

            self._app = make_celery(self._settings)
        return self._app

    def enqueue(self, job_id: str) -> None:
        from nqba.jobs.celery_app import TASK_NAME

        self.app.send_task(TASK_NAME, args=[job_id])

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def enqueue_after_commit(session: Session, runner: JobRunner, job_id: str) -> None:
    """Hand ``job_id`` to ``runner`` once ``session``'s transaction commits; never on rollback.

    A rolled-back transaction drops the pending ids. A runner that fails to accept an id
    after the commit is logged and the job stays ``queued`` (the commit is not undone).
    """
    pending: list[tuple[JobRunner, str]] | None = session.info.get(_PENDING)
    if pending is None:
        pending = []
        session.info[_PENDING] = pending
        event.listen(session, "after_commit", _enqueue_pending)
        event.listen(session, "after_rollback", _drop_pending)
    pending.append((runner, job_id))


_PENDING = "nqba_jobs_pending_enqueue"


def _enqueue_pending(session: Session) -> None:
    pending: list[tuple[JobRunner, str]] = session.info.get(_PENDING, [])
    ready = list(pending)
    pending.clear()
    for runner, job_id in ready:
        try:
            runner.enqueue(job_id)
        except Exception:
            log.exception("could not enqueue a committed job", extra={"job": job_id})


def _drop_pending(session: Session) -> None:
    pending: list[tuple[JobRunner, str]] = session.info.get(_PENDING, [])
    pending.clear()


def requeue_orphans(factory: sessionmaker[Session], runner: JobRunner) -> int:
    """Hand the in-process jobs a stopped server left unfinished to ``runner``; return how many.

    Call once when the (single) in-process server starts: jobs it had queued or running died
    with the old process, so running ones go back to queued and all are enqueued again.
    """
    with write_transaction(factory) as session:
        session.execute(
            update(Job)
            .where(Job.runner == InProcessRunner.name, Job.status == "running")
            .values(status="queued", message="requeued: the server restarted", updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        ids = list(
            session.execute(
                select(Job.id)
                .where(Job.runner == InProcessRunner.name, Job.status == "queued")
                .order_by(Job.created_at)
            ).scalars()
        )
    for job_id in ids:
        runner.enqueue(job_id)
    return len(ids)


def make_runner(settings: Settings, factory: sessionmaker[Session], work: Work) -> JobRunner:
    """The runner ``settings.jobs`` names (Celery is imported only when it is chosen)."""
    if settings.jobs == "inprocess":
        return InProcessRunner(work, factory, AuditLog.from_settings(settings))
    if settings.jobs == "celery":
        return CeleryRunner(settings)
    raise JobsConfigError(f"unknown job runner {settings.jobs!r}: use inprocess or celery")
