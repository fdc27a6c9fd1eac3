"""Entry point of the ``nqba`` command (being written)."""

import typer

app = typer.Typer(no_args_is_help=True)


def main() -> None:
    app()
