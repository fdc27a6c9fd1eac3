"""``nqba serve`` (migrate, bootstrap the first owner, serve the API) and ``nqba db upgrade``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from nqba.cli.common import USAGE_EXIT, CliError, guarded
from nqba.config import InsecureSettingsError, Settings, get_settings

db_app = typer.Typer(name="db", help="Database schema: `nqba db upgrade`.", no_args_is_help=True)


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return get_settings()
    except (ValidationError, InsecureSettingsError) as e:
        raise CliError(f"settings: {e}", USAGE_EXIT) from None


def raise_open_files_limit() -> int:
    """Raise this process's open-files limit to its hard limit; return the new soft limit.

    Every client connection is a file descriptor: the common default soft limit (1024) would
    refuse connections, and database files, long before the server is busy.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def bootstrap(database_url: str) -> tuple[str, str] | None:
    """Migrate the database; on one without users, create the first owner and return it."""
    from nqba.auth.service import ensure_first_admin
    from nqba.store.migrate import upgrade
    from nqba.store.session import make_engine, make_session_factory

    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with make_session_factory(engine).begin() as session:
            return ensure_first_admin(session)
    finally:
        engine.dispose()


def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Server processes (uvicorn workers).")
    ] = 1,
    timeout_keep_alive: Annotated[
        int,
        typer.Option(min=1, max=3600, help="Seconds an idle keep-alive connection stays open."),
    ] = 5,
) -> None:
    """Migrate the database and serve the API (docs at /docs) on the configured defaults.

    On a database without users, an owner ``admin@localhost`` is created and its password
    printed once.
    """

    def run() -> None:
        import uvicorn

        from nqba.audit.errors import AuditKeyError
        from nqba.audit.log import AuditLog

        settings = _settings()
        if workers > 1 and settings.jobs == "inprocess":
            raise CliError(
                "--workers > 1 needs NQBA_JOBS=celery: in-process jobs live in one process",
                USAGE_EXIT,
            )
        try:
            AuditLog.from_settings(settings)  # an unusable signing key stops here, in one line
        except AuditKeyError as e:
            raise CliError(f"settings: {e}", USAGE_EXIT) from None
        raise_open_files_limit()
        created = bootstrap(settings.database_url)
        if created is not None:
            email, password = created
            sys.stderr.write(
                "\nCreated the first account (shown only this once; change the password):\n"
                f"  organisation: default\n  email:        {email}\n  password:     {password}\n\n"
            )
            sys.stderr.flush()
        sys.stderr.write(f"NQBA API on http://{host}:{port} (OpenAPI docs at /docs)\n")
        sys.stderr.flush()
        uvicorn.run(
            "nqba.api.app:create_server_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
            timeout_keep_alive=timeout_keep_alive,
        )

    guarded(run)


@db_app.command("upgrade")
def db_upgrade_command() -> None:
    """Bring the database (NQBA_DATABASE_URL) to the latest schema."""

    def run() -> None:
        from nqba.store.migrate import current_revision, upgrade
        from nqba.store.session import make_engine

        settings = _settings()
        engine = make_engine(settings.database_url)
        try:
            upgrade(engine)
            typer.echo(f"database at revision {current_revision(engine)}")
        finally:
            engine.dispose()

    guarded(run)
