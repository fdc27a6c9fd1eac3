"""Simulated annealing ("sa"): independent Metropolis reads on a cooling schedule.

Each read starts from uniform random spins, runs ``num_sweeps`` sequential Metropolis sweeps
while beta rises geometrically over ``beta_range``, then descends greedily from its final and
its best state. The default ``beta_range`` comes from the model's own coefficients (see
:func:`default_beta_range`). Reads run in parallel on ``num_threads`` threads; each read has its
own random stream derived from (seed, read index), so the samples do not depend on the number
of threads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from nqba.engine.errors import InvalidParameterError
from nqba.engine.model import IsingArrays
from nqba.engine.registry import register_solver
from nqba.engine.samplers import _anneal_kernels as kernels
from nqba.engine.samplers._anneal_kernels import UIntArray
from nqba.engine.samplers.base import ArraySampler, RunResult, RunSettings, check_positive_int

# Work (variables + stored couplings) one kernel call may do before the clock is read again.
_WORK_PER_CALL = 4_000_000
_HOT_SCALE = 1.4
# Widest cold/hot ratio of the default schedule (see default_beta_range).
_MAX_BETA_SPAN = 7.0


def default_beta_range(arrays: IsingArrays) -> tuple[float, float]:
    """(hot, cold) inverse temperatures taken from the model's coefficients.

    Hot: ``1.4 / sqrt(q)`` with ``q`` the median over variables of ``h_i^2 + sum_j J_ij^2``, the
    mean-field estimate of where a frustrated model starts to order (for G-set-like graphs
    with +-1 weights, ``1 / sqrt(degree)``); hotter sweeps only randomise and cost the most.
    Cold: the smallest non-zero energy change, ``2 min(|h_i|, |J_ij|)``, is accepted with
    probability 1/100, so the end of the schedule is close to a descent; but at most
    ``_MAX_BETA_SPAN`` times the hot end. On dense models (G-set G1-G3, mean degree 48; the
    uncapped span is 11.4) the cap puts more of a geometric schedule's sweeps where the model
    orders: with the cold end at 0.6x (the cap gives 0.61x), 1000-sweep reads reached G2's
    best-known cut 2.7x as often (43 vs 16 of 1000);
    sparser models (span 3.3-4.7 on G11, G14, G15) are unchanged.
    """
    n = arrays.num_variables
    absj = np.abs(arrays.data)
    q = np.zeros(n)
    rows = np.repeat(np.arange(n), np.diff(arrays.indptr))
    np.add.at(q, rows, absj**2)
    q += arrays.h**2
    positive = q[q > 0]
    if positive.size == 0:
        return 0.1, 1.0
    hot = _HOT_SCALE / math.sqrt(float(np.median(positive)))
    terms = np.concatenate([np.abs(arrays.h), absj])
    terms = terms[terms > 1e-12 * float(terms.max())]
    cold = min(math.log(100.0) / (2.0 * float(terms.min())), _MAX_BETA_SPAN * hot)
    return hot, max(cold, hot)


def beta_range_param(arrays: IsingArrays, params: Mapping[str, Any]) -> tuple[float, float]:
    """The ``beta_range`` parameter, checked, or the default from the model's coefficients."""
    value = params.get("beta_range")
    return default_beta_range(arrays) if value is None else check_beta_range(value)


def check_beta_range(value: Any) -> tuple[float, float]:
    """A (hot, cold) pair with 0 < hot <= cold, both finite."""
    try:
        hot, cold = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"beta_range must be a pair (hot, cold) of positive numbers; got {value!r}"
        ) from None
    if not (math.isfinite(hot) and math.isfinite(cold)) or hot <= 0 or cold < hot:
        raise InvalidParameterError(
            f"beta_range must satisfy 0 < hot <= cold (finite); got {value!r}"
        )
    return hot, cold


def geometric_betas(hot: float, cold: float, count: int) -> npt.NDArray[np.float64]:
    """``count`` inverse temperatures from ``hot`` to ``cold``, evenly spaced in log."""
    if count == 1:
        return np.array([cold])
    return np.geomspace(hot, cold, count)


def start_state(
    arrays: IsingArrays, stream: np.uint64, rows: int
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64], npt.NDArray[np.float64], UIntArray]:
    """``rows`` uniform random states with their fields and energies, and their streams."""
    rng = kernels.stream_seeds(stream, rows)
    spins = np.empty((rows, arrays.num_variables), dtype=np.int8)
    kernels.random_spins(spins, rng)
    fields = np.empty((rows, arrays.num_variables), dtype=np.float64)
    energy = np.empty(rows, dtype=np.float64)
    kernels.local_fields(
        arrays.h, arrays.indptr, arrays.indices, arrays.data, spins, fields, energy
    )
    return spins, fields, energy, rng


def run_reads(
    num_reads: int,
    settings: RunSettings,
    work: Callable[[int, Callable[[], bool]], bool],
) -> tuple[list[int], bool]:
    """Run ``work(read, out_of_time)`` for each read on ``settings.num_threads`` threads.

    ``work`` returns True when it cut its read short for the deadline. Reads are dealt
    round-robin so the low indices come first; no read starts after the deadline, except
    read 0. Returns the indices of the reads run and whether the time limit cut work short.
    """
    threads = min(settings.num_threads, num_reads)
    done: list[list[int]] = [[] for _ in range(threads)]
    cut = [False] * threads
    deadline = settings.deadline

    def out_of_time() -> bool:
        return deadline is not None and time.perf_counter() >= deadline

    def worker(w: int) -> None:
        for r in range(w, num_reads, threads):
            if r > 0 and out_of_time():
                return
            cut[w] |= work(r, out_of_time)
            done[w].append(r)

    if threads == 1:
        worker(0)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(worker, range(threads)))
    ran = sorted(r for d in done for r in d)
    return ran, len(ran) < num_reads or any(cut)


class SimulatedAnnealingSampler(ArraySampler):
    """Simulated annealing on the model's sparse arrays; one sample per read."""

    name: ClassVar[str] = "sa"
    default_num_reads: ClassVar[int] = 10
    extra_parameters: ClassVar[dict[str, str]] = {
        "num_sweeps": "Metropolis sweeps per read (default 1000)",
        "beta_range": "(hot, cold) inverse temperatures; default from the model's coefficients",
        "beta_schedule_type": "'geometric' (default) or 'linear' spacing of beta",
    }

    def _run(self, arrays: IsingArrays, settings: RunSettings, **params: Any) -> RunResult:
        num_sweeps = check_positive_int("num_sweeps", params.get("num_sweeps", 1000))
        hot, cold = beta_range_param(arrays, params)
        kind = params.get("beta_schedule_type", "geometric")
        if kind == "geometric":
            betas = geometric_betas(hot, cold, num_sweeps)
        elif kind == "linear":
            betas = np.linspace(hot, cold, num_sweeps) if num_sweeps > 1 else np.array([cold])
        else:
            raise InvalidParameterError(
                f"beta_schedule_type must be 'geometric' or 'linear'; got {kind!r}"
            )
        chunk = sweeps_per_call(arrays, num_sweeps, settings)
        a = arrays
        seeds = kernels.stream_seeds(np.uint64(settings.seed), settings.num_reads)
        out = np.empty((settings.num_reads, a.num_variables), dtype=np.int8)
        table_size = kernels.integer_table_size(a.h, a.indptr, a.data)

        def work(r: int, out_of_time: Callable[[], bool]) -> bool:
            s, f, e, rng = start_state(a, seeds[r], 1)
            bs, be = s.copy(), e.copy()
            table = np.empty(table_size, dtype=np.float64)
            cut_short = False
            for start in range(0, num_sweeps, chunk):
                if out_of_time():
                    cut_short = True
                    break
                kernels.anneal_block(
                    a.indptr,
                    a.indices,
                    a.data,
                    s,
                    f,
                    e,
                    bs,
                    be,
                    rng,
                    betas[start : start + chunk],
                    table,
                )
            kernels.finish_block(a.h, a.indptr, a.indices, a.data, s, f, e, bs, be)
            out[r] = bs[0]
            return cut_short

        ran, timed_out = run_reads(settings.num_reads, settings, work)
        return RunResult(
            spins=out[ran],
            stop_reason="time limit" if timed_out else "completed",
            info={
                "num_sweeps": num_sweeps,
                "beta_range": (hot, cold),
                "reads_completed": len(ran),
            },
        )


def sweeps_per_call(arrays: IsingArrays, num_sweeps: int, settings: RunSettings) -> int:
    """Sweeps per kernel call: all of them without a time limit, else a few milliseconds' worth."""
    if settings.deadline is None:
        return num_sweeps
    per_sweep = arrays.num_variables + len(arrays.indices)
    return max(1, min(num_sweeps, _WORK_PER_CALL // max(per_sweep, 1)))


register_solver(
    "sa",
    SimulatedAnnealingSampler,
    "simulated annealing: numba Metropolis sweeps on a geometric schedule, parallel reads",
    builtin=True,
)
