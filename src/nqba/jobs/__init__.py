"""Background jobs: one interface, two runners (in-process by default, Celery on Redis)."""

from nqba.jobs.runners import InProcessRunner, JobRunner, make_runner

__all__ = ["InProcessRunner", "JobRunner", "make_runner"]
