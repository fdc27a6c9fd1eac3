"""Wiring: the platform's long-lived parts built once from the settings.

The API (per process), the Celery worker and the CLI each build one ``Services`` and close it
when they stop. Nothing here holds business logic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from nqba.audit.log import AuditLog
from nqba.config import Settings, get_settings
from nqba.jobs import JobRunner, make_runner
from nqba.store.cache import Cache, make_cache
from nqba.store.migrate import upgrade
from nqba.store.session import (
    WAL_BACKSTOP_PAGES,
    WalCheckpointer,
    make_engine,
    make_session_factory,
)


@dataclass
class Services:
    """Settings, database, audit log, cache and job runner of one process."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    audit: AuditLog
    cache: Cache
    jobs: JobRunner
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Stop the job runner, close the cache and dispose of the connection pool."""
        self.jobs.close()
        self.cache.close()
        for closer in self._closers:
            closer()
        self.engine.dispose()


def build_services(
    settings: Settings | None = None, *, migrate: bool = False, server: bool = False
) -> Services:
    """Build every service from ``settings`` (the environment by default).

    ``migrate`` brings the database to the latest schema first (``nqba serve`` does).
    ``server``: a server process; on a SQLite file, its WAL is checkpointed by a background
    thread rather than in the commits of its decisions (:class:`WalCheckpointer`).
    """
    settings = settings or get_settings()
    checkpoint = server and _is_sqlite_file(settings.database_url)
    engine = make_engine(
        settings.database_url, wal_autocheckpoint=WAL_BACKSTOP_PAGES if checkpoint else None
    )
    if migrate:
        upgrade(engine)
    factory = make_session_factory(engine)
    audit = AuditLog.from_settings(settings)
    cache = make_cache(settings)
    services: Services

    def work(job_id: str) -> None:
        from nqba.decisions.service import run_job

        run_job(services, job_id)

    runner = make_runner(settings, factory, work)
    services = Services(settings, engine, factory, audit, cache, runner)
    if checkpoint:
        checkpointer = WalCheckpointer(engine)
        checkpointer.start()
        services._closers.append(checkpointer.stop)
    return services


def _is_sqlite_file(url: str) -> bool:
    parsed = make_url(url)
    database = parsed.database or ""
    return (
        parsed.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and ("mode=memory" not in url)
    )
