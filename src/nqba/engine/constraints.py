"""Constrained models over binaries, handled once: validate, group, penalise, check.

A ``dimod.ConstrainedQuadraticModel`` with BINARY variables and linear constraints becomes:

* cardinality groups: equality or inequality constraints ``sum_{i in S} x_i (=, <=, >=) k`` with
  equal coefficients on disjoint sets ``S``; a sampler with swap moves keeps them satisfied;
* penalties for the rest: ``w * (distance outside the bounds)^2`` computed inside the
  "constrained" sampler (no slack variables), or, for any other sampler, ``w * (a.x + c - b)^2``
  with binary slack variables for inequalities. Each weight starts at the objective's largest
  single-flip change and is doubled in rounds while the best sample still violates it.

Every returned sample is checked against the CQM itself (``is_feasible``, ``is_satisfied``).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dimod
import numpy as np
import numpy.typing as npt

from nqba.engine.errors import InvalidModelError, ModelTooLargeError

FloatArray = npt.NDArray[np.float64]
BinaryArray = npt.NDArray[np.int8]
Group = tuple[list[Hashable], int, int]

#: Largest CQM (variables) that :func:`enumerate_cqm` solves by listing every state.
EXACT_CQM_MAX_VARIABLES = 24
#: Feasibility tolerances, as ``dimod.SampleSet.from_samples_cqm`` uses them.
RTOL = 1e-6
ATOL = 1e-8
_SCALE_DIGITS = 4


class ConstrainedSampleSet(dimod.SampleSet):
    """A SampleSet of a CQM whose rows are ordered feasible first; ``first`` is row 0.

    dimod's ``first`` is the lowest-energy row, which for a CQM may violate a constraint;
    here it is the best feasible sample when there is one.
    """

    @property
    def first(self) -> Any:
        """The best feasible sample (the lowest-energy one if none is feasible)."""
        return next(self.data(sorted_by=None, name="Sample"))  # type: ignore[no-untyped-call]


class InfeasibleResultWarning(UserWarning):
    """No returned sample satisfies every constraint of the model."""


@dataclass(frozen=True)
class LinearConstraint:
    """``sum coefficients[k] * x[index[k]] + constant  (sense)  rhs``."""

    label: Hashable
    index: npt.NDArray[np.int64]
    coefficients: FloatArray
    constant: float
    sense: str  # "==", "<=" or ">="
    rhs: float

    def violation(self, X: BinaryArray) -> FloatArray:
        """How far each row of ``X`` (all model variables) is from satisfying the constraint."""
        lhs = X[:, self.index].astype(np.float64) @ self.coefficients + self.constant
        if self.sense == "==":
            v = np.abs(lhs - self.rhs)
        elif self.sense == "<=":
            v = lhs - self.rhs
        else:
            v = self.rhs - lhs
        return np.asarray(np.where(v <= ATOL + RTOL * abs(self.rhs), 0.0, v), dtype=np.float64)


@dataclass
class ConstraintPlan:
    """A validated CQM split into an objective BQM, cardinality groups and other constraints."""

    cqm: dimod.ConstrainedQuadraticModel
    variables: list[Hashable]
    objective: dimod.BinaryQuadraticModel
    constraints: list[LinearConstraint]
    groups: list[Group] = field(default_factory=list)
    grouped: list[Hashable] = field(default_factory=list)  # labels of constraints in groups

    @property
    def num_variables(self) -> int:
        return len(self.variables)

    def violations(self, X: BinaryArray) -> FloatArray:
        """Violation of every constraint (columns) by every row of ``X``."""
        if not self.constraints:
            return np.zeros((len(X), 0), dtype=np.float64)
        return np.column_stack([c.violation(X) for c in self.constraints])

    def flip_scale(self) -> float:
        """Largest change of the objective from flipping one variable (1.0 if it is constant)."""
        vectors: Any = self.objective.to_numpy_vectors(variable_order=self.variables)
        lin, (irow, icol, quad), _ = vectors
        bound = np.abs(lin).astype(np.float64)
        np.add.at(bound, irow, np.abs(quad))
        np.add.at(bound, icol, np.abs(quad))
        scale = float(bound.max()) if bound.size else 0.0
        return scale if scale > 0 else 1.0


def prepare_cqm(cqm: dimod.ConstrainedQuadraticModel) -> ConstraintPlan:
    """Validate ``cqm`` and find its cardinality groups; raise InvalidModelError if unsupported."""
    if len(cqm.variables) == 0:
        raise InvalidModelError("the constrained model is empty: it has no variables")
    for v in cqm.variables:
        vt = cqm.vartype(v)
        if vt is not dimod.BINARY:
            hint = " (convert with cqm.spin_to_binary())" if vt is dimod.SPIN else ""
            raise InvalidModelError(
                f"variable {v!r} is {vt.name}; only BINARY variables are supported{hint}"
            )
    variables = list(cqm.variables)
    index = {v: i for i, v in enumerate(variables)}
    obj = cqm.objective
    _check_finite(obj.offset, "the objective offset")
    objective = dimod.BinaryQuadraticModel(dimod.BINARY)
    objective.add_variables_from((v, 0.0) for v in variables)
    for v, bias in obj.iter_linear():
        objective.add_linear(v, _check_finite(bias, f"the objective's linear bias of {v!r}"))
    for u, v, bias in obj.iter_quadratic():
        b = _check_finite(bias, f"the objective's quadratic bias of ({u!r}, {v!r})")
        if u == v:
            objective.add_linear(u, b)  # x*x == x for a binary x
        else:
            objective.add_quadratic(u, v, b)
    objective.offset = float(obj.offset)

    constraints = []
    for label, comp in cqm.constraints.items():
        if comp.lhs.is_soft():
            raise InvalidModelError(
                f"constraint {label!r} is soft; only hard constraints are supported"
            )
        if comp.lhs.num_interactions:
            raise InvalidModelError(
                f"constraint {label!r} is quadratic; only linear constraints are supported"
            )
        items = [
            (index[v], _check_finite(b, f"coefficient of {v!r} in constraint {label!r}"))
            for v, b in comp.lhs.iter_linear()
            if b != 0
        ]
        constraints.append(
            LinearConstraint(
                label=label,
                index=np.asarray([i for i, _ in items], dtype=np.int64),
                coefficients=np.asarray([b for _, b in items], dtype=np.float64),
                constant=_check_finite(comp.lhs.offset, f"offset of constraint {label!r}"),
                sense=comp.sense.value,
                rhs=_check_finite(comp.rhs, f"right-hand side of constraint {label!r}"),
            )
        )
    plan = ConstraintPlan(cqm, variables, objective, constraints)
    _find_groups(plan)
    return plan


def _check_finite(value: Any, what: str) -> float:
    x = float(value)
    if not math.isfinite(x):
        raise InvalidModelError(f"{what} is not finite ({x})")
    return x


def _find_groups(plan: ConstraintPlan) -> None:
    """Collect ``sum_S x (sense) k`` constraints on disjoint sets as count bounds ``[lo, hi]``."""
    by_set: dict[frozenset[int], list[Any]] = {}
    taken: set[int] = set()
    for c in plan.constraints:
        if c.index.size == 0 or not np.allclose(c.coefficients, c.coefficients[0], rtol=1e-12):
            continue
        a = float(c.coefficients[0])
        t = (c.rhs - c.constant) / a
        sense = c.sense
        if a < 0 and sense != "==":
            sense = "<=" if sense == ">=" else ">="
        size = int(c.index.size)
        if sense == "==":
            k = round(t)
            if abs(t - k) > 1e-9 or not 0 <= k <= size:
                continue  # impossible: leave it to the penalty, where it is reported
            lo, hi = k, k
        elif sense == "<=":
            lo, hi = 0, min(math.floor(t + 1e-9), size)
        else:
            lo, hi = max(math.ceil(t - 1e-9), 0), size
        key = frozenset(int(i) for i in c.index)
        if key in by_set:  # a second bound on the same set: intersect
            entry = by_set[key]
            new_lo, new_hi = max(entry[1], lo), min(entry[2], hi)
            if new_lo <= new_hi:
                entry[1], entry[2] = new_lo, new_hi
                entry[3].append(c.label)
            continue
        if lo > hi or key & taken:
            continue
        taken |= key
        by_set[key] = [sorted(key), lo, hi, [c.label]]
    for members, lo, hi, labels in by_set.values():
        plan.groups.append(([plan.variables[i] for i in members], lo, hi))
        plan.grouped.extend(labels)


@dataclass(frozen=True)
class Penalty:
    """A constraint's penalty at unit weight: zero when satisfied, >= 1 per violation step."""

    label: Hashable
    bqm: dimod.BinaryQuadraticModel | None  # None: always satisfied, or never satisfiable
    status: str  # "penalised", "always satisfied", "infeasible"


def build_penalty(c: LinearConstraint, variables: Sequence[Hashable], tag: str) -> Penalty:
    """Quadratic penalty of ``c`` on integer-scaled coefficients, slack variables for inequalities.

    Coefficients are scaled by the smallest power of ten (up to 10^4) that makes them integers,
    then divided by their gcd, so the smallest possible violation costs exactly the weight.
    """
    coef = c.coefficients
    digits = _SCALE_DIGITS
    for d in range(_SCALE_DIGITS + 1):
        scaled = np.concatenate([coef, [c.rhs - c.constant]]) * 10.0**d
        if np.allclose(
            scaled, np.round(scaled), rtol=0, atol=1e-9 * max(1.0, np.abs(scaled).max())
        ):
            digits = d
            break
    a = [int(x) for x in np.round(coef * 10.0**digits)]
    b = (c.rhs - c.constant) * 10.0**digits
    g = math.gcd(*a) if a else 1
    g = g or 1
    a = [x // g for x in a]
    b /= g
    terms = [(variables[int(i)], ai) for i, ai in zip(c.index, a, strict=True) if ai != 0]
    low = sum(x for x in a if x < 0)
    high = sum(x for x in a if x > 0)
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    if c.sense == "==":
        if abs(b - round(b)) > 1e-9 or not low <= round(b) <= high:
            return Penalty(c.label, None, "infeasible")
        bqm.add_linear_equality_constraint(terms, 1.0, -round(b))
        return Penalty(c.label, bqm, "penalised")
    lb, ub = (low, math.floor(b + 1e-9)) if c.sense == "<=" else (math.ceil(b - 1e-9), high)
    if ub < low or lb > high or lb > ub:
        return Penalty(c.label, None, "infeasible")
    if lb <= low and ub >= high:
        return Penalty(c.label, None, "always satisfied")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bqm.add_linear_inequality_constraint(terms, 1.0, tag, constant=0, lb=lb, ub=ub)
    # A violation the size of the smallest coefficient costs the weight; finer violations
    # cost less, and the rounds raise the weight if a sample still has one.
    bqm.scale(1.0 / min(abs(x) for x in a if x) ** 2)  # type: ignore[no-untyped-call]
    return Penalty(c.label, bqm, "penalised")


NativeConstraint = tuple[list[Hashable], list[float], float, float, float]
#: ``sample(bqm, time_limit, seed, groups, native_constraints)`` -> SampleSet over at least
#: the CQM's variables. ``groups`` and ``native_constraints`` are empty unless the sampler
#: handles them itself (the "constrained" sampler's ``groups`` and ``constraints``).
SampleFn = Callable[
    [dimod.BinaryQuadraticModel, float | None, int, list[Group], list[NativeConstraint]],
    dimod.SampleSet,
]


def _bounds(c: LinearConstraint) -> tuple[float, float]:
    """``[lo, hi]`` for ``a.x`` (constant moved right), widened by the feasibility tolerance."""
    b = c.rhs - c.constant
    tol = ATOL + RTOL * abs(c.rhs)
    if c.sense == "<=":
        return -math.inf, b + tol
    if c.sense == ">=":
        return b - tol, math.inf
    return b - tol, b + tol


def _native_status(c: LinearConstraint) -> str:
    lo, hi = _bounds(c)
    low = float(c.coefficients[c.coefficients < 0].sum())
    high = float(c.coefficients[c.coefficients > 0].sum())
    if hi < low or lo > high:
        return "infeasible"
    if lo <= low and hi >= high:
        return "always satisfied"
    return "penalised"


def solve_penalised(
    plan: ConstraintPlan,
    sample: SampleFn,
    *,
    native: bool,
    seed: int,
    deadline: float | None,
    max_rounds: int = 8,
    growth: float = 2.0,
) -> tuple[BinaryArray, dict[str, Any]]:
    """Sample the penalised model in rounds, raising violated weights; return all samples.

    ``native``: the sampler keeps the cardinality groups and takes the other constraints as
    ``w * (distance outside bounds / smallest coefficient)^2`` itself; otherwise every
    constraint becomes a quadratic penalty with slack variables (:func:`build_penalty`).
    Rounds stop when the lowest penalised-energy sample of a round is feasible, when the
    violated constraints cannot be satisfied, at ``max_rounds``, or at the deadline. Returns
    every sample of every round (rows over ``plan.variables``) and the info.
    """
    groups = plan.groups if native else []
    grouped = set(plan.grouped) if native else set()
    rest = [c for c in plan.constraints if c.label not in grouped]
    w0 = plan.flip_scale()
    status: dict[Hashable, str] = {}
    penalties: dict[Hashable, Penalty] = {}
    units: dict[Hashable, float] = {}
    for k, c in enumerate(rest):
        if native:
            status[c.label] = _native_status(c)
            nonzero = np.abs(c.coefficients[c.coefficients != 0])
            units[c.label] = float(nonzero.min()) if nonzero.size else 1.0
        else:
            penalties[c.label] = build_penalty(c, plan.variables, f"nqba{k}")
            status[c.label] = penalties[c.label].status
    active = [c for c in rest if status[c.label] != "always satisfied"]
    raisable = {c.label for c in active if status[c.label] == "penalised"}
    weights: dict[Hashable, float] = {c.label: w0 for c in active}
    col = {c.label: k for k, c in enumerate(plan.constraints)}
    blocks: list[BinaryArray] = []
    rounds = 0
    while True:
        rounds += 1
        rounds_left = max_rounds - rounds + 1 if raisable else 1
        limit = None
        if deadline is not None:
            limit = max((deadline - time.perf_counter()) / rounds_left, 1e-3)
        bqm = plan.objective
        natives: list[NativeConstraint] = []
        if native:
            for c in active:
                lo, hi = _bounds(c)
                natives.append(
                    (
                        [plan.variables[int(i)] for i in c.index],
                        [float(a) for a in c.coefficients],
                        lo,
                        hi,
                        weights[c.label] / units[c.label] ** 2,
                    )
                )
        else:
            bqm = plan.objective.copy()  # type: ignore[no-untyped-call]
            for c in active:
                pen = penalties[c.label].bqm
                if pen is not None:
                    scaled = pen.copy()  # type: ignore[no-untyped-call]
                    scaled.scale(weights[c.label])
                    bqm.update(scaled)
        ss = sample(bqm, limit, (seed + rounds - 1) % (2**63), groups, natives)
        X = _rows(ss, plan.variables)
        blocks.append(X)
        viol = plan.violations(X)
        energy = np.asarray(ss.record.energy, dtype=np.float64)
        if native:
            energy = plan.objective.energies((X, plan.variables)) + sum(
                (weights[c.label] / units[c.label] ** 2) * viol[:, col[c.label]] ** 2
                for c in active
            )
        best = int(np.argmin(energy))
        violated = [c.label for c in plan.constraints if viol[best, col[c.label]] > 0]
        if not violated:
            stop = f"best sample of round {rounds} is feasible"
            break
        to_raise = [lab for lab in violated if lab in raisable]
        if not to_raise:
            stop = "the violated constraints cannot be satisfied by any state"
            break
        if rounds >= max_rounds:
            stop = f"{max_rounds} rounds without a feasible best sample"
            break
        if deadline is not None and time.perf_counter() >= deadline:
            stop = "time limit reached"
            break
        for lab in to_raise:
            weights[lab] *= growth
    info = {
        "rounds": rounds,
        "rounds_stop_reason": stop,
        "penalty": "native (in the sampler)" if native else "quadratic with slack variables",
        "penalty_weights": {str(k): v for k, v in weights.items()},
        "initial_penalty_weight": w0,
        "grouped_constraints": sorted(str(lab) for lab in grouped),
        "groups": [{"size": len(m), "min": lo, "max": hi} for m, lo, hi in groups],
        "unsatisfiable_constraints": [str(k) for k, v in status.items() if v == "infeasible"],
    }
    return np.vstack(blocks), info


def _rows(ss: dimod.SampleSet, variables: list[Hashable]) -> BinaryArray:
    """The samples of ``ss`` as 0/1 rows in the order of ``variables`` (slack dropped)."""
    pos = {v: k for k, v in enumerate(ss.variables)}
    cols = [pos[v] for v in variables]
    X = np.asarray(ss.record.sample[:, cols], dtype=np.int8)
    if ss.vartype is dimod.SPIN:
        X = ((X + 1) // 2).astype(np.int8)
    return X


def enumerate_cqm(plan: ConstraintPlan, num_reads: int) -> BinaryArray:
    """The ``num_reads`` best states by listing all ``2^n``: feasible by objective, then the
    least violating. Exact; refuses models above ``EXACT_CQM_MAX_VARIABLES``."""
    n = plan.num_variables
    if n > EXACT_CQM_MAX_VARIABLES:
        raise ModelTooLargeError(
            f"exact enumeration handles at most {EXACT_CQM_MAX_VARIABLES} variables; "
            f"the model has {n}"
        )
    vectors: Any = plan.objective.to_numpy_vectors(variable_order=plan.variables)
    lin, (irow, icol, quad), offset = vectors
    Q = np.zeros((n, n))
    np.add.at(Q, (irow, icol), quad)
    best_X = np.zeros((0, n), dtype=np.int8)
    best_key = np.zeros((0, 2))
    chunk = 1 << min(n, 16)
    bits = np.arange(n, dtype=np.int64)
    for start in range(0, 1 << n, chunk):
        codes = np.arange(start, min(start + chunk, 1 << n), dtype=np.int64)
        X = ((codes[:, None] >> bits) & 1).astype(np.int8)
        Xf = X.astype(np.float64)
        energy = offset + Xf @ lin + np.einsum("ij,ij->i", Xf @ Q, Xf)
        total_violation = plan.violations(X).sum(axis=1)
        key = np.column_stack([total_violation, energy])
        X_all = np.vstack([best_X, X])
        key_all = np.vstack([best_key, key])
        order = np.lexsort((key_all[:, 1], key_all[:, 0]))[:num_reads]
        best_X, best_key = X_all[order], key_all[order]
    return best_X


def cqm_sampleset(plan: ConstraintPlan, X: BinaryArray, info: dict[str, Any]) -> dimod.SampleSet:
    """Samples of the CQM with objective energy, ``is_satisfied`` and ``is_feasible``: feasible
    first, each part lowest energy first; duplicates merged (``num_occurrences``).
    ``first`` is the best feasible sample (see :class:`ConstrainedSampleSet`)."""
    ss = dimod.SampleSet.from_samples_cqm(  # type: ignore[no-untyped-call]
        (X, plan.variables), plan.cqm
    ).aggregate()
    rec = ss.record
    order = np.lexsort((rec.energy, ~rec.is_feasible))
    ordered = ConstrainedSampleSet(  # type: ignore[no-untyped-call]
        rec[order], ss.variables, dict(ss.info) | info, ss.vartype
    )
    feasible = int(np.count_nonzero(rec.is_feasible))
    ordered.info["feasible_count"] = feasible
    ordered.info["num_samples"] = len(rec)
    if feasible == 0:
        message = "no sample satisfies every constraint; most often violated: " + ", ".join(
            _most_violated(plan, X)
        )
        ordered.info["warning"] = message
        warnings.warn(message, InfeasibleResultWarning, stacklevel=3)
    return ordered


def _most_violated(plan: ConstraintPlan, X: BinaryArray) -> list[str]:
    v = plan.violations(X)
    counts = (v > 0).sum(axis=0)
    order = np.argsort(-counts, kind="stable")
    return [
        f"{plan.constraints[k].label!r} in {int(counts[k])}/{len(X)} samples"
        for k in order[:3]
        if counts[k] > 0
    ]
