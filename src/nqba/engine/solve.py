"""The engine's entry point: ``solve(model, solver="auto", time_limit=None, seed=None)``.

Accepts a BQM, a QUBO dict, an Ising ``(h, J)`` tuple or a CQM over binaries, picks a solver
(or uses the named one), honours the time budget, and returns a ``dimod.SampleSet`` whose
``info`` names the solver, why it stopped and the timings.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

import dimod
import numpy as np

from nqba.engine import constraints as cons
from nqba.engine.errors import InvalidParameterError, UnknownSolverError
from nqba.engine.model import as_bqm
from nqba.engine.registry import get_solver, solver_entries
from nqba.engine.samplers.base import check_positive_int, check_seed, check_time_limit
from nqba.engine.samplers.tempering import SPARSE_MEAN_DEGREE

__all__ = ["choose_solver", "solve"]

#: Thresholds of :func:`choose_solver`. Measured in benchmarks/RESULTS.md (G-set, 2026-11-24):
#: "sa" had the shortest time-to-solution on all six instances, dense and sparse, and "tabu"
#: was slower than "sa" on every one, so "tabu" is never picked automatically; "pt" was the
#: most reliable single run, and with cluster moves (mean degree <= 6) its TTS99 on G11
#: (800 nodes, degree 4) was 0.017 s against 0.234 s for "sa".
EXACT_MAX_VARIABLES = 20
PT_MIN_TIME_S = 10.0
PT_SPARSE_MAX_VARIABLES = 1000


def choose_solver(
    num_variables: int,
    num_interactions: int,
    *,
    num_grouped_constraints: int = 0,
    num_other_constraints: int = 0,
    time_limit: float | None = None,
    available: Collection[str] = ("exact", "constrained", "tabu", "sa", "pt"),
) -> tuple[str, str]:
    """Pick a solver by size, density, constraints and time budget; return ``(name, reason)``.

    Rules, first match wins, each only if its solver is in ``available``:
    tiny (<= EXACT_MAX_VARIABLES) -> "exact"; one-hot/cardinality groups -> "constrained";
    a long budget (>= PT_MIN_TIME_S), or a sparse model (mean degree <= SPARSE_MEAN_DEGREE)
    of at most PT_SPARSE_MAX_VARIABLES -> "pt"; otherwise -> "sa".
    """
    n = num_variables
    pairs = n * (n - 1) / 2
    density = num_interactions / pairs if pairs else 0.0
    shape = f"{n} variables, density {density:.3g}"
    candidates: list[tuple[bool, str, str]] = [
        (n <= EXACT_MAX_VARIABLES, "exact", f"{shape}: small enough to enumerate every state"),
        (
            num_grouped_constraints > 0,
            "constrained",
            f"{shape}: {num_grouped_constraints} one-hot/cardinality constraint(s) kept "
            "satisfied by swap moves instead of penalties",
        ),
        (
            time_limit is not None and time_limit >= PT_MIN_TIME_S,
            "pt",
            f"{shape}: a {time_limit} s budget lets the population method use it",
        ),
        (
            n <= PT_SPARSE_MAX_VARIABLES and 2 * num_interactions <= SPARSE_MEAN_DEGREE * n,
            "pt",
            f"{shape}: sparse (mean degree {2 * num_interactions / n:.3g}), where parallel "
            "tempering with cluster moves had the shortest measured time-to-solution",
        ),
        (True, "sa", f"{shape}: fastest time-to-solution measured on G-set max-cut"),
        (True, "constrained", f"{shape}: fallback annealer (no other built-in is available)"),
    ]
    skipped: list[str] = []
    for applies, name, reason in candidates:
        if not applies:
            continue
        if name in available:
            if num_other_constraints:
                reason += f"; {num_other_constraints} other constraint(s) penalised"
            if skipped:
                reason += f" ({', '.join(skipped)} not available)"
            return name, reason
        skipped.append(name)
    raise UnknownSolverError("auto", list(available))


def solve(
    model: Any,
    solver: str = "auto",
    time_limit: float | None = None,
    seed: int | None = None,
    **params: Any,
) -> dimod.SampleSet:
    """Solve ``model``; samples come lowest energy first (for a CQM: feasible ones first).

    ``info`` holds ``solver``, ``stop_reason``, ``seed`` and ``timing`` ({setup_s, solve_s,
    total_s}); with ``solver="auto"`` also ``auto_reason``. Other keyword arguments go to the
    sampler (e.g. ``num_reads``).
    """
    start = time.perf_counter()
    if not isinstance(solver, str):
        raise InvalidParameterError(f"solver must be a solver name; got {solver!r}")
    limit = check_time_limit(time_limit)
    seed_ = check_seed(seed)
    deadline = None if limit is None else start + limit
    known = {e.name for e in solver_entries()}
    if isinstance(model, dimod.ConstrainedQuadraticModel):
        known.add("exact")  # a small CQM is enumerated here, feasibility checked exactly
    if solver != "auto" and solver not in known:
        raise UnknownSolverError(solver, [*known, "auto"])
    if isinstance(model, dimod.ConstrainedQuadraticModel):
        return _solve_cqm(model, solver, known, limit, deadline, seed_, start, params)
    bqm = as_bqm(model)
    reason = None
    if solver == "auto":
        solver, reason = choose_solver(
            bqm.num_variables, bqm.num_interactions, time_limit=limit, available=known
        )
    sampler = get_solver(solver)
    prepared = time.perf_counter()
    ss = _call(sampler, solver, bqm, limit, seed_, params)
    done = time.perf_counter()
    ss = _sorted(ss)
    inner = ss.info.get("timing", {})
    setup = prepared - start + float(inner.get("setup_s", 0.0))
    solve_s = float(inner.get("solve_s", done - prepared))
    ss.info.update(
        solver=solver,
        stop_reason=ss.info.get("stop_reason", "sampler returned"),
        seed=seed_,
        timing={"setup_s": setup, "solve_s": solve_s, "total_s": time.perf_counter() - start},
    )
    if reason is not None:
        ss.info["auto_reason"] = reason
    return ss


def _solve_cqm(
    cqm: dimod.ConstrainedQuadraticModel,
    solver: str,
    known: set[str],
    limit: float | None,
    deadline: float | None,
    seed: int,
    start: float,
    params: dict[str, Any],
) -> dimod.SampleSet:
    plan = cons.prepare_cqm(cqm)
    reason = None
    if solver == "auto":
        grouped = len(plan.grouped)
        solver, reason = choose_solver(
            plan.num_variables,
            plan.objective.num_interactions,
            num_grouped_constraints=grouped,
            num_other_constraints=len(plan.constraints) - grouped,
            time_limit=limit,
            available=known,
        )
    max_rounds = check_positive_int("max_rounds", params.pop("max_rounds", 8))
    sampling = 0.0  # seconds inside the samplers' search; everything else counts as setup
    if solver == "exact":
        num_reads = check_positive_int("num_reads", params.get("num_reads", 10))
        t0 = time.perf_counter()
        X = cons.enumerate_cqm(plan, num_reads)
        sampling = time.perf_counter() - t0
        info: dict[str, Any] = {
            "rounds": 0,
            "stop_reason": f"enumerated all 2^{plan.num_variables} states",
        }
    else:
        sampler = get_solver(solver)

        def sample(
            bqm: dimod.BinaryQuadraticModel,
            lim: float | None,
            s: int,
            groups: list[cons.Group],
            natives: list[cons.NativeConstraint],
        ) -> dimod.SampleSet:
            nonlocal sampling
            extra = dict(params)
            if groups:
                extra["groups"] = groups
            if natives:
                extra["constraints"] = natives
            t0 = time.perf_counter()
            ss = _call(sampler, solver, bqm, lim, s, extra)
            sampling += float(ss.info.get("timing", {}).get("solve_s", time.perf_counter() - t0))
            return ss

        X, info = cons.solve_penalised(
            plan,
            sample,
            native=solver == "constrained",
            seed=seed,
            deadline=deadline,
            max_rounds=max_rounds,
        )
        info["stop_reason"] = info.pop("rounds_stop_reason")
    ss = cons.cqm_sampleset(plan, X, info)
    total = time.perf_counter() - start
    ss.info.update(
        solver=solver,
        seed=seed,
        timing={"setup_s": total - sampling, "solve_s": sampling, "total_s": total},
    )
    if reason is not None:
        ss.info["auto_reason"] = reason
    return ss


def _call(
    sampler: Any,
    name: str,
    bqm: dimod.BinaryQuadraticModel,
    limit: float | None,
    seed: int,
    params: dict[str, Any],
) -> dimod.SampleSet:
    """Run ``sampler``, passing time limit and seed only where it declares them."""
    accepted = sampler.parameters
    kwargs = dict(params)
    if limit is not None:
        if "time_limit" not in accepted:
            raise InvalidParameterError(f"solver {name!r} does not take a time limit")
        kwargs["time_limit"] = limit
    if "seed" in accepted:
        kwargs["seed"] = seed
    ss: dimod.SampleSet = sampler.sample(bqm, **kwargs)
    return ss


def _sorted(ss: dimod.SampleSet) -> dimod.SampleSet:
    """``ss`` with samples lowest energy first (a no-op for the built-in samplers)."""
    energy = ss.record.energy
    if len(energy) < 2 or bool(np.all(energy[:-1] <= energy[1:])):
        return ss
    order = np.argsort(energy, kind="stable")
    return dimod.SampleSet(  # type: ignore[no-untyped-call]
        ss.record[order], ss.variables, dict(ss.info), ss.vartype
    )
