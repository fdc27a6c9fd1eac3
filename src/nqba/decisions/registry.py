"""Decision kinds: what each business unit can decide, and how (no HTTP, no SQL here).

A unit's ``service.py`` lists its :class:`DecisionKind` objects in ``DECISION_KINDS``; the
registry imports those modules on first use. A kind turns a validated request into an
:class:`Outcome` (outputs, solver, objective, measured baseline, timings) and says how large
a request is, so the platform can run small ones inline and large ones as jobs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

UNIT_MODULES = ("nqba.decisions.engine", "nqba.finance.service")
"""Modules whose ``DECISION_KINDS`` make up the registry."""

RESERVED_UNITS = ("energy", "sales", "assessment")
"""Units whose endpoints are reserved: they answer that the unit is not available yet."""


class Progress(Protocol):
    """Reports how far a decision is; may raise to stop it (a cancelled job)."""

    def __call__(self, fraction: float, message: str = "") -> None: ...


def no_progress(fraction: float, message: str = "") -> None:
    """The progress callback of inline decisions: nobody is polling."""


@dataclass(frozen=True)
class Outcome:
    """What a decision produced, in business terms, and how it was found."""

    outputs: dict[str, Any]
    solver: str | None
    objective: float | None
    baseline: dict[str, Any] | None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DecisionKind:
    """One kind of decision of one unit (e.g. finance / portfolio-optimization)."""

    unit: str
    kind: str
    request_model: type[BaseModel]
    response_model: type[BaseModel]
    run: Callable[[Any, Progress], Outcome]
    size: Callable[[Any], int]
    requested_seconds: Callable[[Any], float | None]
    model_version: str
    summary: str
    solver_modules: tuple[str, ...] = ()
    """Modules ``run`` imports on its first call (the solvers); a server imports them at start."""
    warm_up: Callable[[], None] = field(default=lambda: None)
    """Runs once when a server starts, before it freezes its start-up heap: whatever the
    first decision would set up (a numba kernel loaded from its cache initialises numba's
    typing context, some 50,000 objects that a full collection would walk from then on)."""
    quick: Callable[[Any], bool] = field(default=lambda request: False)
    """Whether deciding this request is known to take about a millisecond of CPU at most: a
    server then runs it on its event loop, sparing the hand-off to a worker thread and back.
    Anything that may take longer (or waits on I/O) must answer False."""


class UnknownDecisionKindError(LookupError):
    """No such unit or kind; the message lists what exists."""


_KINDS: dict[tuple[str, str], DecisionKind] = {}


def _load() -> dict[tuple[str, str], DecisionKind]:
    if not _KINDS:
        for name in UNIT_MODULES:
            module = importlib.import_module(name)
            for kind in module.DECISION_KINDS:
                _KINDS[(kind.unit, kind.kind)] = kind
    return _KINDS


def import_solver_modules() -> None:
    """Import every kind's ``solver_modules`` and run its ``warm_up`` now, rather than in the
    first request of each."""
    for kind in _load().values():
        for name in kind.solver_modules:
            importlib.import_module(name)
        kind.warm_up()


def decision_kinds() -> list[DecisionKind]:
    """Every registered kind, by unit then kind."""
    return [v for _, v in sorted(_load().items())]


def get_kind(unit: str, kind: str) -> DecisionKind:
    """The kind ``unit``/``kind``, or ``UnknownDecisionKindError`` naming the known ones."""
    kinds = _load()
    found = kinds.get((unit, kind))
    if found is None:
        if unit in RESERVED_UNITS:
            raise UnknownDecisionKindError(
                f"the {unit} unit is reserved but not available yet; no decisions of it can be "
                "made on this server"
            )
        known = ", ".join(f"{u}/{k}" for u, k in sorted(kinds))
        raise UnknownDecisionKindError(f"unknown decision {unit}/{kind}; known: {known}")
    return found
