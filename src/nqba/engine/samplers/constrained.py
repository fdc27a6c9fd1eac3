"""Simulated annealing that keeps one-hot / cardinality groups satisfied by its moves.

Registered as ``"constrained"``. Without extra parameters it is plain single-flip annealing.
``groups=[(variables, lo, hi), ...]`` (disjoint sets of variables whose count of ones, or of
+1 spins, stays in ``[lo, hi]``) are satisfied by every sample, so they need no penalty.
``constraints=[(variables, coefficients, lo, hi, weight), ...]`` add the penalty
``weight * (distance of sum coefficients*x outside [lo, hi])^2`` (x in {0, 1}) to the energy
the kernel minimises, without slack variables; the returned energies are the model's own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

import numpy as np

from nqba.engine.errors import InvalidParameterError
from nqba.engine.model import FloatArray, IsingArrays
from nqba.engine.registry import register_solver
from nqba.engine.samplers._constrained_kernels import (
    finish_grouped,
    start_grouped,
    sweep_grouped,
)
from nqba.engine.samplers.annealing import sweeps_per_call
from nqba.engine.samplers.base import ArraySampler, RunResult, RunSettings, check_positive_int

Group = tuple[Sequence[Hashable], int, int]
Constraint = tuple[Sequence[Hashable], Sequence[float], float, float, float]


def beta_schedule(arrays: IsingArrays, num_sweeps: int) -> FloatArray:
    """Geometric inverse temperatures from the model's own coefficients.

    Hot end: the largest single-flip energy change is accepted with probability 1/2; cold end:
    the smallest nonzero change is accepted with probability 1/100 (the rule dwave-samplers
    uses by default).
    """
    n = arrays.num_variables
    rows = np.repeat(np.arange(n), np.diff(arrays.indptr))
    row_sum = np.bincount(rows, weights=np.abs(arrays.data), minlength=n)
    max_delta = float(np.max(2.0 * (np.abs(arrays.h) + row_sum)))
    coeffs = np.concatenate([np.abs(arrays.h), np.abs(arrays.data)])
    nonzero = coeffs[coeffs > 0]
    if max_delta <= 0.0 or nonzero.size == 0:
        return np.ones(num_sweeps, dtype=np.float64)
    min_delta = 2.0 * float(nonzero.min())
    hot = math.log(2.0) / max_delta
    cold = max(math.log(100.0) / min_delta, hot)
    return np.geomspace(hot, cold, num_sweeps).astype(np.float64)


class ConstrainedAnnealingSampler(ArraySampler):
    """Annealing with flip and swap moves that never leave the given cardinality groups."""

    name: ClassVar[str] = "constrained"
    default_num_reads: ClassVar[int] = 20
    extra_parameters: ClassVar[dict[str, str]] = {
        "groups": "[(variables, lo, hi), ...]: disjoint groups whose count of ones stays in "
        "[lo, hi] (one-hot: lo = hi = 1)",
        "constraints": "[(variables, coefficients, lo, hi, weight), ...]: linear constraints "
        "penalised by weight * (distance outside [lo, hi])^2",
        "num_sweeps": "sweeps per read (default 1000); one sweep is n move attempts",
    }

    def _run(self, arrays: IsingArrays, settings: RunSettings, **params: Any) -> RunResult:
        num_sweeps = check_positive_int("num_sweeps", params.get("num_sweeps") or 1000)
        group_of, gptr, gmem, glo, ghi = _group_arrays(arrays.labels, params.get("groups") or [])
        vptr, vcon, vcoef, clo, chi, cw = _constraint_arrays(
            arrays.labels, params.get("constraints") or []
        )
        betas = beta_schedule(arrays, num_sweeps)
        chunk = sweeps_per_call(arrays, num_sweeps, settings)
        problem = (arrays.indptr, arrays.indices, arrays.data, group_of, gptr, glo, ghi)
        penalties = (vptr, vcon, vcoef, clo, chi, cw)
        rows: list[np.ndarray[Any, np.dtype[np.int8]]] = []
        stop = "completed all reads"

        def out_of_time() -> bool:
            return time.perf_counter() >= (settings.deadline or math.inf)

        for read in range(settings.num_reads):
            if read > 0 and out_of_time():
                stop = f"time limit reached after {read} of {settings.num_reads} reads"
                break
            state = start_grouped(
                arrays.h,
                arrays.indptr,
                arrays.indices,
                arrays.data,
                gptr,
                gmem,
                glo,
                ghi,
                vptr,
                vcon,
                vcoef,
                len(cw),
                (settings.seed + read) % (2**32),
            )
            best = state[0].copy()
            energies = np.array([0.0, np.inf])
            cut = False
            for first in range(0, num_sweeps, chunk):
                if first > 0 and out_of_time():  # the read ends where it is, then descends
                    cut = True
                    break
                sweep_grouped(
                    *problem,
                    *penalties,
                    *state,
                    best,
                    energies,
                    betas[first : first + chunk],
                    first,
                    num_sweeps,
                )
            finish_grouped(*problem, *penalties, *state, best, energies)
            rows.append(state[0])
            if cut:
                stop = f"time limit reached in read {read + 1} of {settings.num_reads} (cut short)"
                break
        return RunResult(
            np.vstack(rows),
            stop,
            {"num_sweeps": num_sweeps, "num_groups": len(glo), "num_penalised": len(cw)},
        )


def _group_arrays(
    labels: list[Hashable], groups: Sequence[Group]
) -> tuple[
    np.ndarray[Any, np.dtype[np.int32]],
    np.ndarray[Any, np.dtype[np.int64]],
    np.ndarray[Any, np.dtype[np.int32]],
    np.ndarray[Any, np.dtype[np.int64]],
    np.ndarray[Any, np.dtype[np.int64]],
]:
    """Flat arrays of the groups; refuses overlapping, unknown or impossible groups."""
    index = {v: i for i, v in enumerate(labels)}
    group_of = np.full(len(labels), -1, dtype=np.int32)
    gptr = [0]
    members: list[int] = []
    lows: list[int] = []
    highs: list[int] = []
    for g, group in enumerate(groups):
        try:
            variables, lo, hi = group
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"groups[{g}] must be (variables, lo, hi); got {group!r}"
            ) from None
        idx = []
        for v in variables:
            if v not in index:
                raise InvalidParameterError(f"groups[{g}] names unknown variable {v!r}")
            i = index[v]
            if group_of[i] >= 0:
                raise InvalidParameterError(
                    f"variable {v!r} is in groups[{int(group_of[i])}] and groups[{g}]; "
                    "groups must be disjoint"
                )
            group_of[i] = g
            idx.append(i)
        lo_i, hi_i = int(lo), min(int(hi), len(idx))
        if lo_i < 0 or lo_i > hi_i:
            raise InvalidParameterError(
                f"groups[{g}] bounds [{lo}, {hi}] admit no state of its {len(idx)} variables"
            )
        members.extend(idx)
        gptr.append(len(members))
        lows.append(lo_i)
        highs.append(hi_i)
    return (
        group_of,
        np.asarray(gptr, dtype=np.int64),
        np.asarray(members, dtype=np.int32),
        np.asarray(lows, dtype=np.int64),
        np.asarray(highs, dtype=np.int64),
    )


def _constraint_arrays(
    labels: list[Hashable], constraints: Sequence[Constraint]
) -> tuple[
    np.ndarray[Any, np.dtype[np.int64]],
    np.ndarray[Any, np.dtype[np.int32]],
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
]:
    """Per-variable CSR of the penalised constraints, their bounds and weights."""
    index = {v: i for i, v in enumerate(labels)}
    per_var: list[list[tuple[int, float]]] = [[] for _ in labels]
    lows, highs, weights = [], [], []
    for c, item in enumerate(constraints):
        try:
            variables, coefficients, lo, hi, weight = item
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"constraints[{c}] must be (variables, coefficients, lo, hi, weight); got {item!r}"
            ) from None
        if len(variables) != len(coefficients):
            raise InvalidParameterError(
                f"constraints[{c}] has {len(variables)} variables but "
                f"{len(coefficients)} coefficients"
            )
        if not (float(lo) <= float(hi)) or not (math.isfinite(weight) and weight >= 0):
            raise InvalidParameterError(
                f"constraints[{c}] needs lo <= hi and a finite weight >= 0; got "
                f"lo={lo}, hi={hi}, weight={weight}"
            )
        for v, a in zip(variables, coefficients, strict=True):
            if v not in index:
                raise InvalidParameterError(f"constraints[{c}] names unknown variable {v!r}")
            per_var[index[v]].append((c, float(a)))
        lows.append(float(lo))
        highs.append(float(hi))
        weights.append(float(weight))
    vptr = np.zeros(len(labels) + 1, dtype=np.int64)
    vptr[1:] = np.cumsum([len(x) for x in per_var])
    flat = [pair for x in per_var for pair in x]
    return (
        vptr,
        np.asarray([c for c, _ in flat], dtype=np.int32),
        np.asarray([a for _, a in flat], dtype=np.float64),
        np.asarray(lows, dtype=np.float64),
        np.asarray(highs, dtype=np.float64),
        np.asarray(weights, dtype=np.float64),
    )


register_solver(
    "constrained",
    ConstrainedAnnealingSampler,
    "simulated annealing whose swap moves keep one-hot and cardinality groups satisfied",
    builtin=True,
)
