"""``nqba users ...``: organisations, users and API keys, for bootstrap and operations.

The operator of the database is trusted: no role ceiling applies here (the API enforces it).
Every command first brings the database to the latest schema, so it works on a fresh one.
Secrets (generated passwords, API keys) are printed once, on stdout, and stored only hashed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from nqba.auth.api_keys import create_api_key, list_api_keys, revoke_api_key
from nqba.auth.errors import AuthError, InvalidInputError, RoleCeilingError
from nqba.auth.passwords import generate_password
from nqba.auth.service import (
    create_organisation,
    create_user,
    get_organisation_by_name,
    get_user_by_email,
    list_users,
    set_password,
    update_user,
)
from nqba.authz import Role
from nqba.cli.common import FAILURE_EXIT, USAGE_EXIT, CliError, guarded
from nqba.config import Settings
from nqba.store.models import ApiKey, Organisation, User
from nqba.store.session import DatabaseConfigError, make_engine, make_session_factory

users_app = typer.Typer(
    name="users",
    no_args_is_help=True,
    help="Organisations, users and API keys: `nqba users create-org acme`, "
    "`nqba users create ada@acme.test --org acme --role owner`.",
)
api_key_app = typer.Typer(
    name="api-key", no_args_is_help=True, help="API keys for machines: create, list, revoke."
)
users_app.add_typer(api_key_app)


def _console() -> Console:
    """Stdout as Rich sees it now; piped output is not cut to 80 columns."""
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


DEFAULT_DATABASE_URL: str = Settings.model_fields["database_url"].default

DatabaseOpt = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar="NQBA_DATABASE_URL",
        show_envvar=True,
        help="Database URL (sqlite:///path or postgresql://...).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
OrgOpt = Annotated[str, typer.Option("--org", help="Organisation name.")]
RoleArg = Annotated[Role, typer.Argument(help="owner, admin, analyst, viewer or auditor.")]


@contextmanager
def _database(url: str) -> Iterator[Session]:
    """A migrated database and one transaction on it, committed when the command succeeds."""
    from nqba.store.migrate import upgrade

    engine = make_engine(url)
    try:
        upgrade(engine)
        with make_session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


def _run(func: Callable[[], None]) -> None:
    """Run a command; identity and database errors become one line and an exit code."""

    def run() -> None:
        try:
            func()
        except (InvalidInputError, RoleCeilingError, DatabaseConfigError) as e:
            raise CliError(str(e), USAGE_EXIT) from None
        except AuthError as e:
            raise CliError(str(e), FAILURE_EXIT) from None
        except SQLAlchemyError as e:
            cause = getattr(e, "orig", None) or e
            first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            raise CliError(f"database: {first}", FAILURE_EXIT) from None

    guarded(run)


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def _user_row(user: User, organisation: str) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "organisation": organisation,
        "role": user.role,
        "is_active": user.is_active,
        "created_at": _when(user.created_at),
    }


def _key_row(key: ApiKey, organisation: str) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "organisation": organisation,
        "role": key.role,
        "rate_limit_per_minute": key.rate_limit_per_minute,
        "created_at": _when(key.created_at),
        "last_used_at": _when(key.last_used_at) or None,
        "revoked_at": _when(key.revoked_at) or None,
    }


def _org_names(session: Session) -> dict[str, str]:
    from sqlalchemy import select

    return {org.id: org.name for org in session.execute(select(Organisation)).scalars()}


def _write_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value) + "\n")


def _read_password(password_stdin: bool, generate: bool) -> tuple[str, bool]:
    """The new password and whether it was generated (and must be printed)."""
    if password_stdin and generate:
        raise CliError("give --password-stdin or --generate-password, not both", USAGE_EXIT)
    if generate:
        return generate_password(), True
    if password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CliError("no password on stdin", USAGE_EXIT)
        return line, False
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password, False


@users_app.command("create-org")
def create_org_command(
    name: Annotated[str, typer.Argument(help="Name of the new organisation.")],
    database_url: DatabaseOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Create an organisation (a tenant)."""

    def run() -> None:
        with _database(database_url) as session:
            org = create_organisation(session, name)
            org_id, org_name = org.id, org.name
        _console().print(f"created organisation {escape(org_name)} (id {org_id})")

    _run(run)


@users_app.command("create")
def create_command(
    email: Annotated[str, typer.Argument(help="Email address; the user signs in with it.")],
    org: OrgOpt,
    role: Annotated[Role, typer.Option("--role", help="owner, admin, analyst, viewer, auditor.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line.")
    ] = False,
    generate: Annotated[
        bool,
        typer.Option("--generate-password", help="Generate a password and print it once."),
    ] = False,
    database_url: DatabaseOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Create a user; the password is prompted for unless read from stdin or generated."""

    def run() -> None:
        password, generated = _read_password(password_stdin, generate)
        with _database(database_url) as session:
            organisation = get_organisation_by_name(session, org)
            user = create_user(session, organisation.id, email, password, role)
            user_email, user_id = user.email, user.id
        _console().print(
            f"created user {escape(user_email)} ({role.value}) in {escape(organisation.name)} "
            f"(id {user_id})"
        )
        if generated:
            sys.stdout.write(f"password (shown once): {password}\n")

    _run(run)


@users_app.command("list")
def list_command(
    org: Annotated[str | None, typer.Option("--org", help="Only this organisation.")] = None,
    as_json: JsonOpt = False,
    database_url: DatabaseOpt = DEFAULT_DATABASE_URL,
) -> None:
    """List users (of one organisation, or all)."""

    def run() -> None:
        with _database(database_url) as session:
            org_id = get_organisation_by_name(session, org).id if org is not None else None
            names = _org_names(session)
            rows = [_user_row(u, names[u.organisation_id]) for u in list_users(session, org_id)]
        if as_json:
            _write_json(rows)
            return
        table = Table("email", "organisation", "role", "active", "created", "id", box=None)
        for r in rows:
            table.add_row(
                escape(r["email"]),
                escape(r["organisation"]),
                r["role"],
                "yes" if r["is_active"] else "[yellow]no[/]",
                r["created_at"],
                r["id"],
            )
        _console().print(table if rows else "no users")

    _run(run)


@users_app.command("set-role")
def set_role_command(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    role: RoleArg,
    database_url: DatabaseOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Change a user's role (an organisation keeps at least one active owner)."""

    def run() -> None:
        with _database(database_url) as session:
            user = update_user(session, get_user_by_email(session, email), role=role)
            user_email = user.email
        _console().print(f"{escape(user_email)} is now {role.value}")

    _run(run)


def _set_active(email: str, active: bool, database_url: str) -> None:
    def run() -> None:
        with _database(database_url) as session:
            user = update_user(session, get_user_by_email(session, email), is_active=active)
            user_email = user.email
        state = "active" if active else "deactivated (refresh tokens revoked)"
        _console().print(f"{escape(user_email)} is {state}")

    _run(run)


@users_app.command("deactivate")
def deactivate_command(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    database_url: DatabaseOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Deactivate a user: no sign-in, no refresh; issued access tokens expire soon."""
    _set_active(email, False, database_url)


@users_app.command("activate")
def activate_command(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    database_url: DatabaseOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Activate a deactivated user again."""
    _set_active(email, True, database_url)


@users_app.command("set-password")
def set_password_command(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line.")
    ] = False,
    generate: Annotated[
        bool,
        typer.Option("--generate-password", help="Generate a password and print it once."),
    ] = False,
    database_url: DatabaseOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Set a user's password (signs the user out: refresh tokens are revoked)."""

    def run() -> None:
        password, generated = _read_password(password_stdin, generate)
        with _database(database_url) as session:
            user = get_user_by_email(session, email)
            set_password(session, user, password)
            user_email = user.email
        _console().print(f"password of {escape(user_email)} changed")
        if generated:
            sys.stdout.write(f"password (shown once): {password}\n")

    _run(run)


@api_key_app.command("create")
def api_key_create_command(
    org: OrgOpt,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    role: Annotated[Role, typer.Option("--role", help="owner, admin, analyst, viewer, auditor.")],
    rate_limit: Annotated[
        int | None,
        typer.Option("--rate-limit", min=1, help="Requests per minute (default: the server's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key as JSON.")] = False,
    database_url: DatabaseOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Create an API key and print it once (only a hash of it is stored)."""

    def run() -> None:
        with _database(database_url) as session:
            organisation = get_organisation_by_name(session, org)
            key, full = create_api_key(
                session,
                organisation_id=organisation.id,
                name=name,
                role=role,
                granter=None,
                rate_limit_per_minute=rate_limit,
            )
            row = _key_row(key, organisation.name)
        if as_json:
            _write_json({**row, "key": full})
            return
        _console().print(f"created API key {escape(row['name'])} ({role.value}) id {row['id']}")
        sys.stdout.write(f"key (shown once): {full}\n")

    _run(run)


@api_key_app.command("list")
def api_key_list_command(
    org: Annotated[str | None, typer.Option("--org", help="Only this organisation.")] = None,
    as_json: JsonOpt = False,
    database_url: DatabaseOpt = DEFAULT_DATABASE_URL,
) -> None:
    """List API keys (never their secrets), revoked ones included."""

    def run() -> None:
        with _database(database_url) as session:
            org_id = get_organisation_by_name(session, org).id if org is not None else None
            names = _org_names(session)
            rows = [_key_row(k, names[k.organisation_id]) for k in list_api_keys(session, org_id)]
        if as_json:
            _write_json(rows)
            return
        table = Table("name", "prefix", "organisation", "role", "limit/min", "state", "id")
        table.box = None
        for r in rows:
            state = f"[yellow]revoked[/] {r['revoked_at']}" if r["revoked_at"] else "active"
            limit = str(r["rate_limit_per_minute"] or "default")
            table.add_row(
                escape(r["name"]),
                r["prefix"],
                escape(r["organisation"]),
                r["role"],
                limit,
                state,
                r["id"],
            )
        _console().print(table if rows else "no API keys")

    _run(run)


@api_key_app.command("revoke")
def api_key_revoke_command(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id.")],
    database_url: DatabaseOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Revoke an API key: it answers 401 from now on."""

    def run() -> None:
        with _database(database_url) as session:
            key = revoke_api_key(session, None, key_id)
            name = key.name
        _console().print(f"revoked API key {escape(name)} (id {key_id})")

    _run(run)
