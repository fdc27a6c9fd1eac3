"""Background jobs: one interface, two runners (in-process by default, Celery on Redis).

Celery is imported only by :mod:`nqba.jobs.celery_app`, which the Celery runner loads when it
first sends a job; importing this package does not import it.
"""

from nqba.jobs.repository import (
    JobAlreadyFinished,
    JobCancelled,
    JobSuperseded,
    claim,
    create_job,
    finish,
    report_progress,
    request_cancel,
)
from nqba.jobs.runners import (
    CeleryRunner,
    InProcessRunner,
    JobRunner,
    JobsConfigError,
    enqueue_after_commit,
    make_runner,
)

__all__ = [
    "CeleryRunner",
    "InProcessRunner",
    "JobAlreadyFinished",
    "JobCancelled",
    "JobRunner",
    "JobSuperseded",
    "JobsConfigError",
    "claim",
    "create_job",
    "enqueue_after_commit",
    "finish",
    "make_runner",
    "report_progress",
    "request_cancel",
]
