"""Typed errors of the engine; each message names the problem so a user can act on it."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidModelError(EngineError, ValueError):
    """The model cannot be solved as given: empty, NaN/inf coefficients, unsupported variables."""


class ModelFormatError(InvalidModelError):
    """A model file is malformed; ``line`` is the 1-based line number where known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
        if line is not None:
            where = f"{where}:{line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.line = line
        self.reason = message


class InvalidParameterError(EngineError, ValueError):
    """A solver parameter is out of range (negative time limit, zero reads, ...)."""


class UnknownSolverError(EngineError, KeyError):
    """No solver is registered under the requested name."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown solver {self.name!r}; available: {', '.join(sorted(self.known))}"


class ModelTooLargeError(EngineError, ValueError):
    """The model exceeds what this solver can handle; the message states the limit."""


class BackendUnavailableError(EngineError, RuntimeError):
    """An optional backend cannot run here: its package is missing or it cannot be reached."""


class MissingCredentialsError(BackendUnavailableError):
    """A cloud backend needs a credential (token, SDK key) that is not configured."""
