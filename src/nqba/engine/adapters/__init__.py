"""Adapters to optional backends; importing this package registers them without importing them.

Each adapter is registered by a ``"module:Class"`` string, so the optional package it wraps
(dwave-samplers, qiskit, dynex, dwave-system) is imported only when the solver is created or
run. The helpers here are shared by the adapters and use the standard library, dimod and numpy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import dimod
import numpy as np

from nqba.engine.errors import BackendUnavailableError
from nqba.engine.registry import register_solver
from nqba.engine.samplers.base import check_positive_int

T = TypeVar("T")

register_solver(
    "dwave-sa",
    "nqba.engine.adapters.dwave:DWaveSimulatedAnnealingSampler",
    "simulated annealing from dwave-samplers (the baseline); pip install 'nqba[dwave]'",
    builtin=False,
)
register_solver(
    "dwave-tabu",
    "nqba.engine.adapters.dwave:DWaveTabuSampler",
    "tabu search from dwave-samplers (the baseline); pip install 'nqba[dwave]'",
    builtin=False,
)
register_solver(
    "qaoa",
    "nqba.engine.adapters.qiskit:QAOASampler",
    "QAOA on the local Qiskit Aer statevector simulator, small models only; "
    "pip install 'nqba[qiskit]'",
    builtin=False,
)
register_solver(
    "dynex",
    "nqba.engine.adapters.dynex:DynexSampler",
    "Dynex neuromorphic cloud; needs DYNEX_SDK_KEY; pip install 'nqba[dynex]'",
    builtin=False,
)
register_solver(
    "leap",
    "nqba.engine.adapters.leap:LeapSampler",
    "D-Wave Leap quantum annealer; needs a Leap token; pip install 'nqba[leap]'",
    builtin=False,
)


def call_with_timeout(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run ``fn`` in a daemon thread; raise :class:`BackendUnavailableError` after ``timeout`` s.

    Network clients may retry for minutes when a host is unreachable; this bounds the wait.
    The thread is left to finish on its own, its result discarded.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"nqba-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise BackendUnavailableError(f"{what} did not answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def sampleset_from(
    values: Any,
    labels: list[Any],
    vartype: dimod.Vartype,
    energy: Any,
    num_occurrences: Any = None,
) -> dimod.SampleSet:
    """``dimod.SampleSet.from_samples`` with a typed signature (dimod's is untyped)."""
    from_samples: Any = dimod.SampleSet.from_samples
    extra = {} if num_occurrences is None else {"num_occurrences": num_occurrences}
    result: dimod.SampleSet = from_samples((values, labels), vartype, energy=energy, **extra)
    return result


def pop_int(parameters: dict[str, Any], name: str, default: int) -> int:
    """Pop ``name`` from ``parameters``: ``default`` when absent or None, else an int >= 1."""
    value = parameters.pop(name, None)
    return default if value is None else check_positive_int(name, value)


def empty_sampleset(bqm: dimod.BinaryQuadraticModel) -> dimod.SampleSet:
    """The one sample of a model without variables: its energy is the offset."""
    return sampleset_from(np.zeros((1, 0), dtype=np.int8), [], bqm.vartype, [bqm.offset])


def finish_sampleset(
    bqm: dimod.BinaryQuadraticModel,
    sampleset: dimod.SampleSet,
    *,
    solver: str,
    stop_reason: str,
    start: float,
    setup_done: float,
    solve_done: float,
    info: dict[str, Any] | None = None,
) -> dimod.SampleSet:
    """Return ``sampleset`` in ``bqm``'s vartype, energies recomputed, lowest energy first.

    ``info`` gets ``solver``, ``stop_reason`` and ``timing`` (setup_s, solve_s, total_s) as the
    built-in samplers report them; the backend's own info is kept under ``backend_info``.
    """
    backend_info = dict(sampleset.info)
    if sampleset.vartype is not bqm.vartype:
        change: Any = sampleset.change_vartype
        sampleset = change(bqm.vartype, inplace=False)
    labels = list(bqm.variables)
    if set(sampleset.variables) != set(labels):
        raise BackendUnavailableError(
            f"{solver} returned samples over other variables than the model's "
            f"({len(sampleset.variables)} returned, {len(labels)} expected)"
        )
    if labels:
        values = sampleset.record.sample[:, [sampleset.variables.index(v) for v in labels]]
        energies = np.asarray(bqm.energies((values, labels)), dtype=np.float64)
    else:
        values = np.zeros((len(sampleset), 0), dtype=np.int8)
        energies = np.full(len(sampleset), float(bqm.offset))
    occurrences = sampleset.record.num_occurrences
    order = np.argsort(energies, kind="stable")
    result = sampleset_from(values[order], labels, bqm.vartype, energies[order], occurrences[order])
    end = time.perf_counter()
    result.info.update(
        solver=solver,
        stop_reason=stop_reason,
        timing={
            "setup_s": setup_done - start,
            "solve_s": solve_done - setup_done,
            "total_s": end - start,
        },
        **(info or {}),
    )
    if backend_info:
        result.info["backend_info"] = backend_info
    return result
