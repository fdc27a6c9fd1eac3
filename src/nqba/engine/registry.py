"""Solvers registered by name; adapters register lazily so optional packages load on use."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from dimod.core.sampler import Sampler

from nqba.engine.errors import UnknownSolverError


@dataclass(frozen=True)
class SolverEntry:
    """How to build one solver, and what it is."""

    name: str
    factory: Callable[[], Sampler] | str  # a callable, or "module:attribute" imported on use
    description: str
    builtin: bool

    def create(self) -> Sampler:
        if callable(self.factory):
            return self.factory()
        module, _, attr = self.factory.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        sampler: Sampler = cls()
        return sampler


_REGISTRY: dict[str, SolverEntry] = {}


def register_solver(
    name: str,
    factory: Callable[[], Sampler] | str,
    description: str,
    *,
    builtin: bool = False,
) -> None:
    """Register a solver under ``name``; a later registration of the same name replaces it."""
    _REGISTRY[name] = SolverEntry(name, factory, description, builtin)


def solver_entries() -> list[SolverEntry]:
    """All registered solvers, built-in ones first."""
    _load_defaults()
    return sorted(_REGISTRY.values(), key=lambda e: (not e.builtin, e.name))


def get_solver(name: str) -> Sampler:
    """A new instance of the solver registered as ``name``."""
    _load_defaults()
    try:
        entry = _REGISTRY[name]
    except KeyError:
        raise UnknownSolverError(name, list(_REGISTRY)) from None
    return entry.create()


_DEFAULTS_LOADED = False


def _load_defaults() -> None:
    global _DEFAULTS_LOADED
    if _DEFAULTS_LOADED:
        return
    _DEFAULTS_LOADED = True
    # Importing these modules registers the built-in samplers and the adapters.
    importlib.import_module("nqba.engine.samplers")
    importlib.import_module("nqba.engine.adapters")
