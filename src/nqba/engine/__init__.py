"""The optimization core: models in, ``dimod.SampleSet`` out; knows no business words."""

from nqba.engine.constraints import ConstrainedSampleSet, InfeasibleResultWarning
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
from nqba.engine.solve import choose_solver, solve

__all__ = [
    "BackendUnavailableError",
    "ConstrainedSampleSet",
    "EngineError",
    "InfeasibleResultWarning",
    "InvalidModelError",
    "InvalidParameterError",
    "IsingArrays",
    "MissingCredentialsError",
    "ModelFormatError",
    "ModelTooLargeError",
    "UnknownSolverError",
    "as_bqm",
    "choose_solver",
    "get_solver",
    "register_solver",
    "solve",
    "solver_entries",
]
