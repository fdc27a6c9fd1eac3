"""The Celery app of the job workers: one task, ``nqba.jobs.run``, on Redis.

Run a worker with ``nqba worker`` (or ``celery -A nqba.jobs.celery_app worker``). The task is
acknowledged late (after the work returns) and rejected back to the queue when its pool
process dies, so a job whose worker is killed is delivered again: at once when only the pool
process died, after ``NQBA_CELERY_VISIBILITY_TIMEOUT_S`` when the whole worker died. Transient
errors (database ``OperationalError``, Redis connection errors) are retried with exponential
backoff up to ``NQBA_JOB_MAX_RETRIES`` times; a job past ``NQBA_JOB_TIME_LIMIT_S`` is stopped
and failed. Delivery is at least once, so the work function must be idempotent (see
:mod:`nqba.jobs.repository` for the claim rules that make it so).

The work function is ``nqba.decisions.service:run_job(services, job_id)``. Testing hook: the
environment variable ``NQBA_JOB_WORK`` names another one as ``module:function`` (the tests run
their own slow work functions in real worker processes this way).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import worker_process_shutdown
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError

from nqba.config import Settings, get_settings
from nqba.jobs.repository import abandon, reclaim_allowed
from nqba.jobs.runners import JobsConfigError, execute

if TYPE_CHECKING:
    from nqba.services import Services

log = logging.getLogger("nqba.jobs")

TASK_NAME = "nqba.jobs.run"
QUEUE = "nqba-jobs"
WORK_ENV = "NQBA_JOB_WORK"
DEFAULT_WORK = "nqba.decisions.service:run_job"

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    RedisConnectionError,
    RedisTimeoutError,
)
"""Errors worth another attempt after a pause: the database or Redis was briefly away."""

ServicesWork = Callable[["Services", str], None]
"""A work function as the worker calls it: ``work(services, job_id)``."""


class WorkLoadError(ValueError):
    """``NQBA_JOB_WORK`` does not name an importable function."""


class JobTimeLimitError(Exception):
    """The job ran past its soft time limit and was stopped."""


def load_work(path: str | None = None) -> ServicesWork:
    """The work function ``path`` (``module:function``) names; ``NQBA_JOB_WORK`` by default."""
    path = path or os.environ.get(WORK_ENV) or DEFAULT_WORK
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise WorkLoadError(f"{WORK_ENV}={path!r} is not of the form module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise WorkLoadError(f"{WORK_ENV}: cannot import {module_name!r}: {e}") from e
    work = getattr(module, attribute, None)
    if not callable(work):
        raise WorkLoadError(f"{WORK_ENV}: {module_name!r} has no function {attribute!r}")
    result: ServicesWork = work
    return result


def time_limits(settings: Settings) -> tuple[float, float]:
    """(soft, hard) seconds: the hard limit is the setting, the soft one leaves 10% to clean up."""
    hard = settings.job_time_limit_s
    return hard * 0.9, hard


def make_celery(settings: Settings) -> Celery:
    """A Celery app on ``settings.broker_url`` with the ``nqba.jobs.run`` task registered."""
    broker = settings.broker_url
    if not broker:
        raise JobsConfigError("Celery needs a broker: set NQBA_CELERY_BROKER_URL or NQBA_REDIS_URL")
    visibility = settings.celery_visibility_timeout_s
    soft, hard = time_limits(settings)
    if visibility <= hard:
        log.warning(
            "NQBA_CELERY_VISIBILITY_TIMEOUT_S (%g s) is not above NQBA_JOB_TIME_LIMIT_S (%g s): "
            "a job still running after the visibility timeout is delivered a second time",
            visibility,
            hard,
        )
    app = Celery("nqba", broker=broker, backend=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_soft_time_limit=soft,
        task_time_limit=hard,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # Look for messages of dead workers often enough that redelivery follows the
            # visibility timeout closely (kombu's default scans every ~100 s).
            "unacked_restore_interval": max(1.0, min(10.0, visibility / 4)),
            "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={"visibility_timeout": visibility},
    )
    app.task(
        bind=True,
        base=JobTask,
        name=TASK_NAME,
        shared=False,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=TRANSIENT_ERRORS,
        retry_backoff=1,
        retry_backoff_max=max(1, int(min(600.0, visibility / 2))),
        retry_jitter=True,
        max_retries=settings.job_max_retries,
        soft_time_limit=soft,
        time_limit=hard,
    )(_run_job)
    return app


class JobTask(Task):  # type: ignore[misc]
    """The task class: a job whose task fails for good (after its retries, or at the hard time
    limit, which kills the pool process) is marked failed rather than left running."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        job_id = args[0] if args else kwargs.get("job_id")
        if not isinstance(job_id, str):
            return
        if isinstance(exc, TimeLimitExceeded):
            reason = f"the job ran past its hard time limit of {self.time_limit:g} s"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        try:
            services = worker_services()
            abandon(services.session_factory, job_id, "failed", reason, audit=services.audit)
        except Exception:
            log.exception("could not mark a failed job", extra={"job": job_id})


def _run_job(task: Task, job_id: str) -> str | None:
    """The body of ``nqba.jobs.run``: one attempt of job ``job_id`` in this worker."""
    services = worker_services()
    work = load_work()
    request = task.request
    redelivered = bool((request.delivery_info or {}).get("redelivered"))
    reclaim = redelivered or (request.retries or 0) > 0

    def attempt() -> None:
        try:
            work(services, job_id)
        except SoftTimeLimitExceeded as e:
            raise JobTimeLimitError(
                f"the job ran past its time limit of {task.soft_time_limit:g} s"
            ) from e

    with reclaim_allowed(reclaim):
        return execute(
            attempt,
            services.session_factory,
            job_id,
            "celery",
            audit=services.audit,
            retryable=TRANSIENT_ERRORS,
        )


_services: Services | None = None
_services_pid: int | None = None
_services_lock = threading.Lock()


def worker_services() -> Services:
    """The services of this worker process, built from the environment on first use."""
    global _services, _services_pid
    with _services_lock:
        if _services is None or _services_pid != os.getpid():
            from nqba.services import build_services

            _services = build_services(get_settings())
            _services_pid = os.getpid()
        return _services


def _close_worker_services(**_: Any) -> None:
    global _services
    with _services_lock:
        if _services is not None and _services_pid == os.getpid():
            _services.close()
        _services = None


worker_process_shutdown.connect(_close_worker_services, weak=False)


_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    """``app`` (what ``celery -A nqba.jobs.celery_app`` looks for), built from the environment
    when first asked for, so importing this module reads no settings."""
    global _app
    if name in ("app", "celery"):
        if _app is None:
            _app = make_celery(get_settings())
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
