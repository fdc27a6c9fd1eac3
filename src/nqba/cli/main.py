"""Entry point of the ``nqba`` command: the Typer app and ``main()`` for the console script."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from typer.exceptions import TyperException

from nqba import __version__
from nqba.cli.audit import audit_app
from nqba.cli.engine import example_command, solve_command, solvers_command
from nqba.cli.finance import finance_app
from nqba.cli.serve import db_app, serve_command
from nqba.cli.users import users_app
from nqba.cli.worker import worker_command

app = typer.Typer(
    name="nqba",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    help="NQBA: solve binary quadratic models (max-cut, QUBO, dimod BQM) and portfolio decisions "
    "(`nqba finance ...`) from the command line.\n\n"
    "Start with `nqba solve --example`, which solves a bundled 100-node max-cut graph.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nqba {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """NQBA command line."""


app.command("solve")(solve_command)
app.command("solvers")(solvers_command)
app.command("example")(example_command)
app.add_typer(finance_app)
app.command("serve")(serve_command)
app.add_typer(db_app)
app.command("worker")(worker_command)
app.add_typer(users_app)
app.add_typer(audit_app)


def main() -> None:
    """Run the app; a usage error becomes one line ``error: ...`` on stderr and exit code 2."""
    args = sys.argv[1:] or ["--help"]
    try:
        code = app(args, prog_name="nqba", standalone_mode=False)
    except typer.Abort:
        sys.stderr.write("error: interrupted\n")
        sys.exit(130)
    except TyperException as e:  # typer's usage errors (bad option, missing value, ...)
        message = " ".join(e.format_message().split())
        ctx = getattr(e, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        sys.stderr.write(f"error: {message}{hint}\n")
        sys.exit(e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
