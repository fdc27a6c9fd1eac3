"""``nqba worker``: a Celery worker that runs the platform's jobs (NQBA_JOBS=celery)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from nqba.cli.common import USAGE_EXIT, CliError, guarded


class LogLevel(StrEnum):
    """Log levels the worker accepts."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


def worker_command(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", "-c", min=1, help="Jobs run at once (default: one per CPU core)."
        ),
    ] = None,
    loglevel: Annotated[
        LogLevel, typer.Option("--loglevel", "-l", help="Log level of the worker.")
    ] = LogLevel.INFO,
) -> None:
    """Run a Celery worker for the jobs (needs NQBA_JOBS=celery and a Redis broker URL).

    It reads the same NQBA_ settings as `nqba serve` (database, broker, time limits, retries).
    """
    guarded(lambda: _run_worker(concurrency, loglevel))


def _run_worker(concurrency: int | None, loglevel: LogLevel) -> None:
    from nqba.config import get_settings

    settings = get_settings()
    if settings.jobs != "celery":
        raise CliError(
            f"nqba worker runs Celery jobs, but NQBA_JOBS is {settings.jobs!r}: "
            "set NQBA_JOBS=celery (in-process jobs run inside `nqba serve`)",
            USAGE_EXIT,
        )
    if not settings.broker_url:
        raise CliError(
            "nqba worker needs a broker: set NQBA_CELERY_BROKER_URL or NQBA_REDIS_URL "
            "(e.g. redis://127.0.0.1:6379/0)",
            USAGE_EXIT,
        )
    from nqba.jobs.celery_app import WorkLoadError, load_work, make_celery

    try:
        load_work()
    except WorkLoadError as e:
        raise CliError(str(e), USAGE_EXIT) from None
    app = make_celery(settings)
    # No mingle/gossip: jobs are never revoked through Celery (cancellation is a database
    # flag), so a worker needs nothing from its peers and starts faster.
    argv = ["worker", f"--loglevel={loglevel.value}", "--without-mingle", "--without-gossip"]
    if concurrency is not None:
        argv.append(f"--concurrency={concurrency}")
    app.worker_main(argv=argv)
