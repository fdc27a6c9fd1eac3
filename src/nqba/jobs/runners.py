"""The job runner interface and its in-process implementation.

A runner is handed job ids *after* the transaction that created the job has committed; it
calls ``work(job_id)``, which opens its own session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from nqba.config import Settings

log = logging.getLogger("nqba.jobs")

Work = Callable[[str], None]


class JobRunner(Protocol):
    """Runs jobs by id, somewhere."""

    name: str

    def enqueue(self, job_id: str) -> None:
        """Schedule ``job_id``; call only after the job's row is committed."""
        ...

    def close(self) -> None: ...


class InProcessRunner:
    """A thread pool in the API process: the embedded default."""

    name = "inprocess"

    def __init__(self, work: Work, max_workers: int = 2) -> None:
        self._work = work
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="nqba-job")

    def enqueue(self, job_id: str) -> None:
        self._pool.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        try:
            self._work(job_id)
        except Exception:
            log.exception("job failed outside its own error handling", extra={"job": job_id})

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


def make_runner(settings: Settings, factory: sessionmaker[Session], work: Work) -> JobRunner:
    """The runner ``settings.jobs`` names."""
    if settings.jobs == "inprocess":
        return InProcessRunner(work)
    raise NotImplementedError("celery runner: in progress")
