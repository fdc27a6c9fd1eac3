"""Audit commands: ``nqba audit export|verify|checkpoint|keygen``.

``export`` writes the log (leaves, signed checkpoints, decision records) as JSON Lines;
``verify`` recomputes everything from an export offline, or from a live database, and names
the first bad sequence number (exit code 1); ``checkpoint`` signs one now; ``keygen`` makes a
value for NQBA_AUDIT_SIGNING_KEY. The database is NQBA_DATABASE_URL unless ``--database-url``
says otherwise. Results print as Rich text, or with ``--json`` as one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from nqba.audit.checkpoints import CheckpointSigner, decode_seed, generate_signing_key
from nqba.audit.errors import AuditIntegrityError, AuditKeyError
from nqba.audit.export import export_log
from nqba.audit.log import AuditLog
from nqba.audit.verify import ExportFormatError, VerifyReport, verify_database, verify_export
from nqba.cli.common import FAILURE_EXIT, USAGE_EXIT, CliError, fail, guarded
from nqba.config import Settings, get_settings
from nqba.store.session import (
    DatabaseConfigError,
    make_engine,
    make_session_factory,
    read_session,
    write_transaction,
)

audit_app = typer.Typer(
    name="audit",
    no_args_is_help=True,
    help="The tamper-evident audit log: export it, verify it offline or live, sign checkpoints.",
)

_out = Console(highlight=False, soft_wrap=True)  # hashes and paths stay on one line

PROBLEMS_SHOWN = 10
"""Problems listed in the human output of a failed verify (--json lists all)."""

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database to read (default: NQBA_DATABASE_URL, else the embedded SQLite file).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")


def _settings(database_url: str | None) -> Settings:
    if database_url is None:
        return get_settings()
    return Settings(database_url=database_url)


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    try:
        engine = make_engine(url)
    except DatabaseConfigError as e:
        raise CliError(str(e), USAGE_EXIT) from None
    try:
        yield engine
    except SQLAlchemyError as e:
        reason = " ".join(str(getattr(e, "orig", None) or e).split())
        raise CliError(
            f"cannot read the audit log from the database ({type(e).__name__}: {reason}); "
            "is it migrated (`nqba db upgrade`)?",
            FAILURE_EXIT,
        ) from None
    finally:
        engine.dispose()


def _audit_errors(func: Callable[[], None]) -> None:
    """Map the audit package's errors to CLI exit codes, then run through ``guarded``."""

    def run() -> None:
        try:
            func()
        except (AuditKeyError, ExportFormatError) as e:
            raise CliError(str(e), USAGE_EXIT) from None
        except AuditIntegrityError as e:
            raise CliError(f"{e}; run `nqba audit verify` to locate it", FAILURE_EXIT) from None

    guarded(run)


@audit_app.command("export")
def export_command(
    file: Annotated[Path, typer.Argument(help="JSON Lines file to write ('-' for stdout).")],
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the whole log, its checkpoints and the decisions' audit records as JSON Lines."""

    def run() -> None:
        settings = _settings(database_url)
        signer = CheckpointSigner.from_settings(settings)
        to_stdout = str(file) == "-"
        with _engine(settings.database_url) as engine:
            factory = make_session_factory(engine)
            if to_stdout:
                with read_session(factory) as session:
                    summary = export_log(session, signer, sys.stdout)
                return
            if file.is_dir():
                raise CliError(f"{file} is a folder; give a file name", USAGE_EXIT)
            if not file.parent.is_dir():
                raise CliError(f"folder {file.parent} does not exist", USAGE_EXIT)
            partial = file.with_name(file.name + ".partial")
            try:
                with (
                    partial.open("w", encoding="utf-8") as out,
                    read_session(factory) as session,
                ):
                    summary = export_log(session, signer, out)
                os.replace(partial, file)
            finally:
                partial.unlink(missing_ok=True)
        result = {
            "file": str(file),
            "tree_size": summary.tree_size,
            "leaves": summary.leaves,
            "checkpoints": summary.checkpoints,
            "decisions": summary.decisions,
            "key_id": summary.key_id,
            "exported_at": summary.exported_at.isoformat(),
        }
        if as_json:
            _emit(result)
            return
        _out.print(
            f"exported {summary.leaves} leaves, {summary.checkpoints} checkpoints and "
            f"{summary.decisions} decision records to {escape(str(file))} (key {summary.key_id})"
        )

    _audit_errors(run)


@audit_app.command("verify")
def verify_command(
    file: Annotated[
        Path | None,
        typer.Argument(help="Export file to verify offline; omit with --database-url."),
    ] = None,
    database_url: DatabaseOpt = None,
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key",
            help="The log's Ed25519 public key (base64), obtained out of band: the export's "
            "key must match it, and checkpoints are verified with it.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every leaf hash, seq, checkpoint root and signature, and decision record.

    Ends with OK, the tree size and root; or names the first bad sequence number and what
    is wrong with it (exit code 1).
    """

    def run() -> None:
        if (file is None) == (database_url is None):
            raise CliError(
                "give an export FILE to verify offline, or --database-url to verify a live "
                "database (one of them)",
                USAGE_EXIT,
            )
        if file is not None:
            report = verify_export(file, public_key)
        else:
            report = _verify_live(database_url, public_key)
        _print_report(report, as_json)

    _audit_errors(run)


def _verify_live(database_url: str | None, public_key: str | None) -> VerifyReport:
    settings = _settings(database_url)
    key: Any = public_key
    if key is None:
        key = CheckpointSigner.from_settings(settings).public_key
    with (
        _engine(settings.database_url) as engine,
        read_session(make_session_factory(engine)) as session,
    ):
        return verify_database(session, key, settings.audit_log_origin)


def _print_report(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        _emit(report.to_dict())
    elif report.ok:
        _print_ok(report)
    else:
        _print_problems(report)
    first = report.first_problem
    if first is not None:
        more = len(report.problems) - 1
        tail = f" ({more} more problem{'s' if more != 1 else ''} listed)" if more else ""
        fail(f"audit log verification failed: {first.describe()}{tail}", FAILURE_EXIT)


def _print_ok(report: VerifyReport) -> None:
    _out.print(
        f"[bold green]OK[/] {report.tree_size} leaves, root {report.root_hash.hex()} "
        f"({escape(report.source)})"
    )
    if report.latest_verified_checkpoint is None:
        _out.print("no checkpoint signed yet: no leaf is covered by a signature")
    else:
        _out.print(
            f"{report.checkpoints_verified} checkpoints verified with key {report.key_id}, "
            f"latest at tree size {report.latest_verified_checkpoint}"
        )
        if report.unsigned_leaves:
            _out.print(
                f"{report.unsigned_leaves} leaves after it are not covered by a signature yet"
            )
    _out.print(f"{report.decisions_checked} decision records match their leaves")


def _print_problems(report: VerifyReport) -> None:
    table = Table(title=f"audit log problems ({escape(report.source)})", title_justify="left")
    table.add_column("where")
    table.add_column("what")
    for problem in report.problems[:PROBLEMS_SHOWN]:
        if problem.seq is not None:
            where = f"seq {problem.seq}"
            if problem.last_seq is not None and problem.last_seq != problem.seq:
                where += f"..{problem.last_seq}"
        elif problem.checkpoint is not None:
            where = f"checkpoint {problem.checkpoint}"
        else:
            where = "export"
        table.add_row(where, escape(problem.message))
    _out.print(table)
    hidden = len(report.problems) - PROBLEMS_SHOWN
    if hidden > 0:
        _out.print(f"... and {hidden} more (all of them with --json)")


@audit_app.command("checkpoint")
def checkpoint_command(database_url: DatabaseOpt = None, as_json: JsonOpt = False) -> None:
    """Sign a checkpoint of the log's current size now (no-op if the latest has that size)."""

    def run() -> None:
        settings = _settings(database_url)
        log = AuditLog.from_settings(settings)
        with (
            _engine(settings.database_url) as engine,
            write_transaction(make_session_factory(engine)) as session,
        ):
            before = log.latest_checkpoint(session)
            row = log.checkpoint(session)
            created = before is None or before.tree_size != row.tree_size
            result = {
                "created": created,
                "tree_size": row.tree_size,
                "root_hash": bytes(row.root_hash).hex(),
                "origin": row.origin,
                "key_id": row.key_id,
            }
        if as_json:
            _emit(result)
            return
        verb = "signed" if created else "unchanged since the latest"
        _out.print(
            f"checkpoint {verb}: tree size {result['tree_size']}, root {result['root_hash']}, "
            f"key {result['key_id']}"
        )

    _audit_errors(run)


@audit_app.command("keygen")
def keygen_command(as_json: JsonOpt = False) -> None:
    """Make a new signing key: a value for NQBA_AUDIT_SIGNING_KEY, and its public key."""

    def run() -> None:
        seed = generate_signing_key()
        signer = CheckpointSigner.from_seed(decode_seed(seed), "keygen")
        result = {"signing_key": seed, "public_key": signer.public_key_b64, "key_id": signer.key_id}
        if as_json:
            _emit(result)
            return
        _out.print(f"NQBA_AUDIT_SIGNING_KEY={seed}")
        _out.print(f"public key {signer.public_key_b64} (key id {signer.key_id})")
        _out.print("keep the signing key secret; give auditors the public key")

    _audit_errors(run)
