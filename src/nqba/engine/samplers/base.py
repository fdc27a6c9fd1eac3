"""The contract every built-in sampler shares: parameters, timings, and the result shape.

A built-in sampler implements :meth:`ArraySampler._run` on :class:`IsingArrays` and gets
``sample``/``sample_ising``/``sample_qubo`` from here and from ``dimod.Sampler``.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import dimod
import numpy as np
import numpy.typing as npt
from dimod.core.sampler import Sampler

from nqba.engine.errors import InvalidParameterError
from nqba.engine.model import IsingArrays, as_bqm


@dataclass(frozen=True)
class RunSettings:
    """Parameters common to every built-in sampler, already validated."""

    num_reads: int
    seed: int
    time_limit: float | None
    deadline: float | None  # time.perf_counter() value after which no new work starts
    num_threads: int

    def time_left(self) -> float:
        """Seconds until the deadline (infinite without a time limit)."""
        if self.deadline is None:
            return math.inf
        return self.deadline - time.perf_counter()


@dataclass
class RunResult:
    """What a kernel hands back: spins (+-1, one row a read) and why it stopped."""

    spins: npt.NDArray[np.int8]
    stop_reason: str
    info: dict[str, Any] = field(default_factory=dict)


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or an :class:`InvalidParameterError` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidParameterError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise InvalidParameterError(f"{name} must be at least {minimum}; got {value}")
    return int(value)


def check_time_limit(value: Any) -> float | None:
    """A time limit in seconds (> 0 and finite), or None."""
    if value is None:
        return None
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"time_limit must be a number of seconds; got {value!r}"
        ) from None
    if not math.isfinite(t) or t <= 0:
        raise InvalidParameterError(
            f"time_limit must be a positive number of seconds; got {value!r}"
        )
    return t


def check_seed(value: Any) -> int:
    """A seed for ``numpy.random.default_rng``; None draws one from the OS."""
    if value is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise InvalidParameterError(f"seed must be a non-negative integer; got {value!r}")
    return int(value)


class ArraySampler(Sampler, abc.ABC):
    """Base of the built-in samplers: validates, converts to arrays, times, sorts the result."""

    name: ClassVar[str]
    default_num_reads: ClassVar[int] = 10
    extra_parameters: ClassVar[Mapping[str, str]] = {}

    @property
    def parameters(self) -> dict[str, list[str]]:
        common: dict[str, list[str]] = {
            "num_reads": [],
            "seed": [],
            "time_limit": [],
            "num_threads": [],
        }
        return common | {p: [] for p in self.extra_parameters}

    @property
    def properties(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parameter_help": {
                "num_reads": "independent reads (restarts); the result has one sample each",
                "seed": "non-negative integer; same seed, same samples",
                "time_limit": "seconds; no new work starts after it",
                "num_threads": "cores to use (reads run in parallel)",
                **self.extra_parameters,
            },
        }

    def sample(self, bqm: Any, **parameters: Any) -> dimod.SampleSet:
        """Sample ``bqm``; samples come lowest energy first, ``info`` holds solver and timings."""
        start = time.perf_counter()
        bqm = as_bqm(bqm, allow_empty=True)
        parameters = self.remove_unknown_kwargs(**parameters)
        raw_reads = parameters.pop("num_reads", None)
        num_reads = (
            self.default_num_reads
            if raw_reads is None
            else check_positive_int("num_reads", raw_reads)
        )
        time_limit = check_time_limit(parameters.pop("time_limit", None))
        seed = check_seed(parameters.pop("seed", None))
        num_threads = check_positive_int("num_threads", parameters.pop("num_threads", 1))
        settings = RunSettings(
            num_reads=num_reads,
            seed=seed,
            time_limit=time_limit,
            deadline=None if time_limit is None else start + time_limit,
            num_threads=num_threads,
        )
        labels = list(bqm.variables)
        if bqm.num_variables == 0:
            result = RunResult(np.zeros((1, 0), dtype=np.int8), "empty model")
            arrays = None
        else:
            arrays = IsingArrays.from_bqm(bqm)
        setup_done = time.perf_counter()
        if arrays is not None:
            result = self._run(arrays, settings, **parameters)
            labels = arrays.labels
        solve_done = time.perf_counter()
        sampleset = self._to_sampleset(bqm, labels, result)
        end = time.perf_counter()
        sampleset.info.update(
            solver=self.name,
            stop_reason=result.stop_reason,
            seed=seed,
            timing={
                "setup_s": setup_done - start,
                "solve_s": solve_done - setup_done,
                "total_s": end - start,
            },
            **result.info,
        )
        return sampleset

    @abc.abstractmethod
    def _run(self, arrays: IsingArrays, settings: RunSettings, **params: Any) -> RunResult:
        """Search the SPIN model ``arrays``; return one row of spins per read."""

    @staticmethod
    def _to_sampleset(
        bqm: dimod.BinaryQuadraticModel, labels: list[Any], result: RunResult
    ) -> dimod.SampleSet:
        spins = np.asarray(result.spins, dtype=np.int8)
        values = ((spins + 1) // 2).astype(np.int8) if bqm.vartype is dimod.BINARY else spins
        energies = (
            bqm.energies((values, labels)) if len(labels) else np.full(len(values), bqm.offset)
        )
        order = np.argsort(energies, kind="stable")
        sampleset: dimod.SampleSet = dimod.SampleSet.from_samples(  # type: ignore[no-untyped-call]
            (values[order], labels), bqm.vartype, energy=np.asarray(energies)[order]
        )
        return sampleset
