"""What every command shares: one-line errors with exit codes, and JSON output."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

import typer
from pydantic import ValidationError

from nqba.engine.errors import EngineError, InvalidParameterError, UnknownSolverError
from nqba.finance.errors import FinanceError, InvalidSpecError

USAGE_EXIT = 2
FAILURE_EXIT = 1

T = TypeVar("T")


class CliError(Exception):
    """A message for the user and the exit code to end with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with ``code``."""
    one_line = " ".join(str(message).split())
    sys.stderr.write(f"error: {one_line}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def guarded(func: Callable[[], T]) -> T:
    """Run ``func``; turn the errors a user can meet into ``error: ...`` and an exit code."""
    try:
        return func()
    except (typer.Exit, typer.Abort):
        raise
    except CliError as e:
        fail(str(e), e.code)
    except (UnknownSolverError, InvalidParameterError) as e:
        fail(str(e), USAGE_EXIT)
    except EngineError as e:
        fail(str(e), FAILURE_EXIT)
    except (InvalidSpecError, ValidationError) as e:
        fail(validation_message(e), USAGE_EXIT)
    except FinanceError as e:
        fail(str(e), FAILURE_EXIT)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as e:  # a bug: still one line for the user, with what to report
        fail(f"internal error ({type(e).__name__}: {e}); please report it", FAILURE_EXIT)


def validation_message(error: Exception) -> str:
    """One readable line for a pydantic validation error (field: reason; ...)."""
    if not isinstance(error, ValidationError):
        return str(error)
    parts = []
    for item in error.errors():
        where = ".".join(str(x) for x in item["loc"]) or "input"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
