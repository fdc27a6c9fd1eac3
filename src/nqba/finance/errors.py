"""Typed errors of the finance unit; each message says what is wrong and what to change."""

from __future__ import annotations


class FinanceError(Exception):
    """Base class of every error the finance unit raises on purpose."""


class InvalidDataError(FinanceError, ValueError):
    """Input data cannot be used: empty, one asset, all-NaN or non-numeric columns, bad shapes."""


class DataFormatError(InvalidDataError):
    """A data file is malformed; ``line`` is the 1-based line number where known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = path or ""
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.line = line
        self.reason = message


class InvalidSpecError(FinanceError, ValueError):
    """A request's parameters contradict each other or are out of range."""


class InfeasiblePortfolioError(FinanceError, ValueError):
    """No portfolio satisfies the constraints; the message names the constraint to relax."""


class OptimizationError(FinanceError, RuntimeError):
    """The numerical solver failed on a problem that should be solvable; the message says why."""
