"""The optimization core: models in, ``dimod.SampleSet`` out; knows no business words."""

from nqba.engine.errors import (
    BackendUnavailableError,
    EngineError,
    InvalidModelError,
    InvalidParameterError,
    MissingCredentialsError,
    ModelFormatError,
    ModelTooLargeError,
    UnknownSolverError,
)
from nqba.engine.model import IsingArrays, as_bqm
from nqba.engine.registry import get_solver, register_solver, solver_entries

__all__ = [
    "BackendUnavailableError",
    "EngineError",
    "InvalidModelError",
    "InvalidParameterError",
    "IsingArrays",
    "MissingCredentialsError",
    "ModelFormatError",
    "ModelTooLargeError",
    "UnknownSolverError",
    "as_bqm",
    "get_solver",
    "register_solver",
    "solver_entries",
]
