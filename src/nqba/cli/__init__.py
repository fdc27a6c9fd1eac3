"""The ``nqba`` command line."""

from nqba.cli.main import app, main

__all__ = ["app", "main"]
