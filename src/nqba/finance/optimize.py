"""Mean-variance portfolio optimization over cvxpy, with a measured baseline in every plan.

Objectives (``OptimizeSpec.objective``), all fully invested (weights sum to 1):

- ``min_variance``: minimise w'Sw.
- ``max_sharpe``: maximise (r(w) - rf) / sqrt(w'Sw), solved as the homogenised QP
  min y'Sy s.t. (mu - rf)'y - cost(y) >= kappa, sum(y) = k, every constraint scaled by k >= 0,
  then w = y / k (kappa > 0 only sets the scale of y).
- ``target_return``: minimise w'Sw s.t. r(w) >= target_return.
- ``target_risk``: maximise r(w) s.t. sqrt(w'Sw) <= target_risk (second-order cone).
- ``max_utility``: maximise r(w) - risk_aversion / 2 * w'Sw, where risk_aversion comes from the
  spec or from ``risk_tolerance`` (see ``RISK_AVERSION_BY_TOLERANCE``: conservative 20,
  moderate 6, aggressive 2).

r(w) = mu'w - transaction_cost_rate * sum(|w - current|) is the net expected return; with a zero
cost rate it is mu'w. Solvers: OSQP (with solution polishing) for the quadratic programs, with
CLARABEL as fallback when OSQP does not reach a polished optimum; CLARABEL for ``target_risk``.
Infeasible specs raise :class:`InfeasiblePortfolioError` naming the constraint or the achievable
range; bad inputs raise :class:`InvalidDataError` / :class:`InvalidSpecError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import cvxpy
import numpy as np
import pandas as pd

from nqba.finance.cla import (
    critical_line,
    interpolate_corners,
    risk_portfolio,
    sharpe_portfolio,
    utility_portfolio,
)
from nqba.finance.errors import (
    InfeasiblePortfolioError,
    InvalidDataError,
    InvalidSpecError,
    OptimizationError,
)
from nqba.finance.schemas import (
    DEFAULT_RISK_TOLERANCE,
    RISK_AVERSION_BY_TOLERANCE,
    OptimizeSpec,
    PlanImprovement,
    PortfolioConstraints,
    PortfolioPerformance,
    PortfolioPlan,
)

FEASIBILITY_TOL = 1e-6
"""Slack allowed when checking a solution or a baseline against the constraints."""

# cvxpy ships py.typed, but mypy cannot see the atoms it re-exports (sum, norm1, quad_form).
cp: Any = cvxpy

_OPTIMAL = (cp.OPTIMAL,)
_INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)
_SOLVER_OPTIONS: dict[str, dict[str, Any]] = {
    # Tighter than cvxpy's 1e-5 defaults; polishing turns the ADMM iterate into the exact
    # solution of the identified active set.
    "OSQP": {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iter": 20000, "polishing": True},
    "CLARABEL": {},
    "SCS": {"eps": 1e-9, "max_iters": 100000},
}


def as_mean_cov(
    mu: pd.Series | np.ndarray | Sequence[float],
    cov: pd.DataFrame | np.ndarray | Sequence[Sequence[float]],
    *,
    names: Sequence[str] | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Check and align expected returns and covariance; return (asset names, mu, cov).

    Names come from the pandas index/columns, else from ``names`` ("A0", "A1", ... without
    them); a covariance DataFrame is reordered to mu's order. The covariance must be symmetric
    and positive semidefinite (the optimizer does not repair it).
    """
    if isinstance(mu, pd.DataFrame):
        raise InvalidDataError(
            "mu must hold one expected return per asset (a Series or 1-D array), "
            f"got a DataFrame of shape {mu.shape}"
        )
    if isinstance(mu, pd.Series):
        if names is not None:
            raise InvalidDataError("give asset names with plain arrays only; a Series has its own")
        mu_names: list[str] | None = [str(a) for a in mu.index]
    else:
        mu_names = None if names is None else [str(a) for a in names]
    try:
        mu_arr = np.asarray(mu, dtype=float)
        cov_arr = np.asarray(cov, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"mu and cov must be numeric: {exc}") from exc
    if mu_arr.ndim != 1:
        raise InvalidDataError(f"mu must be 1-D (one value per asset), got shape {mu_arr.shape}")
    n = mu_arr.shape[0]
    if n < 2:
        raise InvalidDataError(f"portfolio optimization needs at least 2 assets, got {n}")
    if mu_names is not None and len(mu_names) != n:
        raise InvalidDataError(f"{len(mu_names)} asset names for {n} expected returns")
    names = mu_names if mu_names is not None else [f"A{i}" for i in range(n)]
    if len(set(names)) != n:
        raise InvalidDataError("asset names in mu must be unique")
    if isinstance(cov, pd.DataFrame):
        rows = [str(a) for a in cov.index]
        cols = [str(a) for a in cov.columns]
        if rows != cols:
            raise InvalidDataError(
                "cov must have the same assets, in the same order, as rows and columns"
            )
        if mu_names is None:
            names = cols
        elif set(cols) != set(names):
            missing = sorted(set(names) - set(cols))
            extra = sorted(set(cols) - set(names))
            raise InvalidDataError(
                f"mu and cov name different assets: missing from cov {missing[:5]}, "
                f"missing from mu {extra[:5]}"
            )
        else:
            position = {a: i for i, a in enumerate(cols)}
            order = [position[a] for a in names]
            cov_arr = cov_arr[np.ix_(order, order)]
    if cov_arr.shape != (n, n):
        raise InvalidDataError(f"cov must be {n} x {n} to match mu, got shape {cov_arr.shape}")
    if not np.all(np.isfinite(mu_arr)):
        bad = [names[i] for i in np.flatnonzero(~np.isfinite(mu_arr))]
        raise InvalidDataError(f"mu has non-finite values for {bad[:5]}")
    if not np.all(np.isfinite(cov_arr)):
        raise InvalidDataError("cov has non-finite values (NaN or inf)")
    scale = max(float(np.max(np.abs(cov_arr))), 1e-300)
    asym = float(np.max(np.abs(cov_arr - cov_arr.T)))
    if asym > 1e-8 * scale:
        raise InvalidDataError(f"cov is not symmetric (largest |S - S'| = {asym:.3g})")
    cov_arr = (cov_arr + cov_arr.T) / 2.0
    eig_min = float(np.linalg.eigvalsh(cov_arr)[0])
    if eig_min < -1e-8 * scale:
        raise InvalidDataError(
            f"cov is not positive semidefinite (smallest eigenvalue {eig_min:.3g}); repair it "
            "first, e.g. with nqba.finance.estimators.repair_psd"
        )
    return names, mu_arr, cov_arr


@dataclass(frozen=True)
class ResolvedConstraints:
    """Constraints of a spec, checked against the asset list and turned into arrays."""

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    long_only: bool
    leverage: float | None
    sector_names: tuple[str, ...]
    sector_members: tuple[np.ndarray, ...]
    sector_lower: np.ndarray
    sector_upper: np.ndarray
    current: np.ndarray | None
    max_turnover: float | None
    cost_rate: float

    @property
    def start(self) -> np.ndarray:
        """Weights that turnover and costs are measured from (all cash when none given)."""
        return self.current if self.current is not None else np.zeros(len(self.names))

    @property
    def leverage_binds(self) -> bool:
        """A gross exposure limit matters only when short positions are allowed."""
        return self.leverage is not None and not self.long_only

    @property
    def is_plain(self) -> bool:
        """Only the budget and per-asset bounds: the case the critical line algorithm solves."""
        return (
            not self.sector_names
            and not self.leverage_binds
            and self.max_turnover is None
            and self.cost_rate == 0.0
        )


def resolve_constraints(
    constraints: PortfolioConstraints, names: Sequence[str]
) -> ResolvedConstraints:
    """Check constraints against the assets; raise on contradictions found without solving.

    Bounds that cannot sum to 1 and sector limits that contradict the bounds are found here
    exactly (sectors partition the assets, so interval sums decide feasibility).
    """
    n = len(names)
    index = {a: i for i, a in enumerate(names)}
    c = constraints
    default = (
        c.weight_bounds
        if c.weight_bounds is not None
        else ((0.0, 1.0) if c.long_only else (-1.0, 1.0))
    )
    lower = np.full(n, float(default[0]))
    upper = np.full(n, float(default[1]))
    unknown = sorted(set(c.asset_bounds) - set(index))
    if unknown:
        raise InvalidSpecError(f"asset_bounds names assets that are not in mu: {unknown[:5]}")
    for asset, (lo, hi) in c.asset_bounds.items():
        lower[index[asset]] = lo
        upper[index[asset]] = hi
    crossed = [names[int(i)] for i in np.flatnonzero(lower > upper)]
    if crossed:
        raise InvalidSpecError(
            f"weight bounds have min > max for {crossed[:5]}; give (min, max) with min <= max"
        )
    if c.long_only and float(lower.min()) < 0.0:
        short = [names[int(i)] for i in np.flatnonzero(lower < 0.0)]
        raise InvalidSpecError(
            f"long_only is true but the weight bounds allow short positions for {short[:5]}; "
            "set long_only to false or make every minimum weight >= 0"
        )
    lo_sum, hi_sum = float(lower.sum()), float(upper.sum())
    if lo_sum > 1.0 + FEASIBILITY_TOL:
        raise InfeasiblePortfolioError(
            f"weight bounds: the minimum weights sum to {lo_sum:.6g} > 1, so no fully invested "
            "portfolio meets them; lower some minimum weights"
        )
    if hi_sum < 1.0 - FEASIBILITY_TOL:
        raise InfeasiblePortfolioError(
            f"weight bounds: the maximum weights sum to {hi_sum:.6g} < 1, so no fully invested "
            "portfolio meets them; raise some maximum weights"
        )
    if c.leverage is not None and c.leverage < 1.0 - FEASIBILITY_TOL:
        raise InfeasiblePortfolioError(
            f"leverage {c.leverage:.6g} < 1: a fully invested portfolio has gross exposure "
            "sum(|w|) >= sum(w) = 1; set leverage >= 1"
        )

    unknown = sorted(set(c.sectors) - set(index))
    if unknown:
        raise InvalidSpecError(f"sectors names assets that are not in mu: {unknown[:5]}")
    known_sectors = set(c.sectors.values())
    unknown = sorted(set(c.sector_limits) - known_sectors)
    if unknown:
        raise InvalidSpecError(
            f"sector_limits names sectors that no asset belongs to: {unknown[:5]}; "
            "map assets to them in sectors"
        )
    sector_names = tuple(sorted(c.sector_limits))
    members = tuple(
        np.array(sorted(index[a] for a, s in c.sectors.items() if s == name), dtype=int)
        for name in sector_names
    )
    s_lower = np.array([c.sector_limits[s][0] for s in sector_names], dtype=float)
    s_upper = np.array([c.sector_limits[s][1] for s in sector_names], dtype=float)
    _check_sector_limits(names, lower, upper, sector_names, members, s_lower, s_upper)

    current: np.ndarray | None = None
    if c.current_weights is not None:
        unknown = sorted(set(c.current_weights) - set(index))
        if unknown:
            raise InvalidSpecError(
                f"current_weights names assets that are not in mu: {unknown[:5]}"
            )
        current = np.zeros(n)
        for asset, weight in c.current_weights.items():
            current[index[asset]] = weight
        total = float(current.sum())
        if abs(total - 1.0) > FEASIBILITY_TOL:
            raise InvalidSpecError(
                f"current_weights sum to {total:.6g}; give holdings as fractions of portfolio "
                "value that sum to 1"
            )
    if c.max_turnover is not None and current is None:
        raise InvalidSpecError(
            "max_turnover is measured from current_weights; give current_weights"
        )
    return ResolvedConstraints(
        names=tuple(names),
        lower=lower,
        upper=upper,
        long_only=c.long_only,
        leverage=c.leverage,
        sector_names=sector_names,
        sector_members=members,
        sector_lower=s_lower,
        sector_upper=s_upper,
        current=current,
        max_turnover=c.max_turnover,
        cost_rate=float(c.transaction_cost_rate),
    )


def _check_sector_limits(
    names: Sequence[str],
    lower: np.ndarray,
    upper: np.ndarray,
    sector_names: tuple[str, ...],
    members: tuple[np.ndarray, ...],
    s_lower: np.ndarray,
    s_upper: np.ndarray,
) -> None:
    """Raise when sector limits contradict each other, the weight bounds, or the budget."""
    if not sector_names:
        return
    in_sector = np.zeros(len(names), dtype=bool)
    total_lo = 0.0
    total_hi = 0.0
    for name, idx, slo, shi in zip(sector_names, members, s_lower, s_upper, strict=True):
        if slo > shi:
            raise InvalidSpecError(f"sector_limits[{name!r}] has min {slo:.6g} > max {shi:.6g}")
        in_sector[idx] = True
        b_lo, b_hi = float(lower[idx].sum()), float(upper[idx].sum())
        if slo > b_hi + FEASIBILITY_TOL:
            raise InfeasiblePortfolioError(
                f"sector_limits[{name!r}]: minimum {slo:.6g} exceeds {b_hi:.6g}, the most its "
                "assets' maximum weights allow; lower the sector minimum or raise those bounds"
            )
        if shi < b_lo - FEASIBILITY_TOL:
            raise InfeasiblePortfolioError(
                f"sector_limits[{name!r}]: maximum {shi:.6g} is below {b_lo:.6g}, the sum of its "
                "assets' minimum weights; raise the sector maximum or lower those bounds"
            )
        total_lo += max(float(slo), b_lo)
        total_hi += min(float(shi), b_hi)
    total_lo += float(lower[~in_sector].sum())
    total_hi += float(upper[~in_sector].sum())
    if total_lo > 1.0 + FEASIBILITY_TOL:
        raise InfeasiblePortfolioError(
            f"sector_limits: together with the weight bounds they force at least {total_lo:.6g} "
            "> 1 of the portfolio; lower sector minimums or weight minimums"
        )
    if total_hi < 1.0 - FEASIBILITY_TOL:
        raise InfeasiblePortfolioError(
            f"sector_limits: together with the weight bounds they allow at most {total_hi:.6g} "
            "< 1 of the portfolio; raise sector maximums or weight maximums"
        )


def weight_constraints(
    w: cvxpy.Expression, rc: ResolvedConstraints, scale: float | cvxpy.Expression = 1.0
) -> list[cvxpy.Constraint]:
    """Budget, bounds, leverage, sector and turnover constraints on w (all scaled by ``scale``).

    ``scale`` is 1 for weights and the homogenising variable k for the max-Sharpe program.
    """
    cons: list[cvxpy.Constraint] = [
        cp.sum(w) == scale,
        w >= rc.lower * scale,
        w <= rc.upper * scale,
    ]
    if rc.leverage_binds:
        cons.append(cp.norm1(w) <= float(rc.leverage) * scale)  # type: ignore[arg-type]
    for idx, slo, shi in zip(rc.sector_members, rc.sector_lower, rc.sector_upper, strict=True):
        cons.append(cp.sum(w[idx]) >= float(slo) * scale)
        cons.append(cp.sum(w[idx]) <= float(shi) * scale)
    if rc.max_turnover is not None:
        cons.append(cp.norm1(w - rc.start * scale) <= rc.max_turnover * scale)
    return cons


def net_return_expr(
    w: cvxpy.Expression,
    mu: np.ndarray,
    rc: ResolvedConstraints,
    scale: float | cvxpy.Expression = 1.0,
) -> cvxpy.Expression:
    """mu'w minus proportional transaction costs on the trade from ``rc.start`` (concave)."""
    expr: Any = mu @ w
    if rc.cost_rate > 0.0:
        expr = expr - rc.cost_rate * cp.norm1(w - rc.start * scale)
    return cast("cvxpy.Expression", expr)


def constraint_violations(
    w: np.ndarray, rc: ResolvedConstraints, tol: float = FEASIBILITY_TOL
) -> list[str]:
    """Names of the constraints that ``w`` breaks by more than ``tol`` (empty when it meets all)."""
    broken: list[str] = []
    if abs(float(w.sum()) - 1.0) > tol:
        broken.append("budget (weights sum to 1)")
    if np.any(w < rc.lower - tol) or np.any(w > rc.upper + tol):
        broken.append("weight bounds")
    if rc.leverage_binds and float(np.abs(w).sum()) > float(rc.leverage) + tol:  # type: ignore[arg-type]
        broken.append("leverage")
    for name, idx, slo, shi in zip(
        rc.sector_names, rc.sector_members, rc.sector_lower, rc.sector_upper, strict=True
    ):
        total = float(w[idx].sum())
        if total < slo - tol or total > shi + tol:
            broken.append(f"sector_limits[{name!r}]")
    if rc.max_turnover is not None and float(np.abs(w - rc.start).sum()) > rc.max_turnover + tol:
        broken.append("max_turnover")
    return broken


def evaluate_portfolio(
    name: str,
    w: np.ndarray,
    mu: np.ndarray,
    cov: np.ndarray,
    rc: ResolvedConstraints,
    risk_free_rate: float,
    violations: list[str] | None = None,
) -> PortfolioPerformance:
    """Return, volatility, costs and Sharpe of weights ``w`` on the given mu and cov.

    ``violations``: ``constraint_violations(w, rc)`` when the caller has it already.
    """
    if violations is None:
        violations = constraint_violations(w, rc)
    expected = float(mu @ w)
    vol = math.sqrt(max(float(w @ cov @ w), 0.0))
    turnover = float(np.abs(w - rc.start).sum())
    cost = rc.cost_rate * turnover
    net = expected - cost
    return PortfolioPerformance(
        name=name,
        weights=dict(zip(rc.names, w.tolist(), strict=True)),
        expected_return=expected,
        volatility=vol,
        turnover=turnover,
        transaction_cost=cost,
        net_expected_return=net,
        sharpe=(net - risk_free_rate) / vol if vol > 0.0 else None,
        meets_constraints=not violations,
    )


def solve_problem(
    problem: cvxpy.Problem, kind: str, choice: str, *, warm_start: bool = False
) -> tuple[str, str, list[str]]:
    """Solve with the solver the problem class calls for; return (solver, status, notes).

    ``kind`` is "qp" (OSQP first, CLARABEL when OSQP stops short of a polished optimum or
    reports infeasibility, which CLARABEL then confirms), "socp" or "lp" (CLARABEL).
    """
    if choice == "auto":
        # The LPs here are small (one row per constraint group); CLARABEL solves them to 1e-8
        # and, unlike HiGHS, prints nothing to stdout (HiGHS prints a banner once per process).
        order = {"qp": ["OSQP", "CLARABEL"], "socp": ["CLARABEL"], "lp": ["CLARABEL"]}[kind]
    elif choice == "OSQP" and kind == "socp":
        raise InvalidSpecError(
            "OSQP solves quadratic programs only; this objective has a second-order cone "
            "constraint; use solver 'auto' or 'CLARABEL'"
        )
    else:
        order = [choice]
    notes: list[str] = []
    solver, status = order[0], "not solved"
    for solver in order:
        try:
            problem.solve(  # type: ignore[no-untyped-call]
                solver=solver, warm_start=warm_start, **_SOLVER_OPTIONS.get(solver, {})
            )
        except cp.error.SolverError as exc:
            status = "solver_error"
            notes.append(f"{solver} failed ({exc})")
            continue
        status = str(problem.status)
        polished = solver != "OSQP" or _osqp_polished(problem)
        if status in _OPTIMAL and not polished and solver != order[-1]:
            notes.append("OSQP optimum was not polished; re-solved with CLARABEL for accuracy")
            continue
        if status in _OPTIMAL:
            break
        if solver != order[-1]:
            notes.append(f"{solver} returned status {status}; re-solved with {order[-1]}")
    return solver, status, notes


def _osqp_polished(problem: cvxpy.Problem) -> bool:
    stats = problem.solver_stats.extra_stats if problem.solver_stats is not None else None
    info = getattr(stats, "info", None)
    return bool(getattr(info, "status_polish", 0) == 1)


def _max_net_return(mu: np.ndarray, rc: ResolvedConstraints) -> tuple[float, np.ndarray] | None:
    """Highest net expected return under the constraints (LP); None when infeasible."""
    w = cp.Variable(len(mu))
    problem = cp.Problem(cp.Maximize(net_return_expr(w, mu, rc)), weight_constraints(w, rc))
    _, status, _ = solve_problem(problem, "lp", "auto")
    if status not in _OPTIMAL or w.value is None:
        return None
    return float(problem.value), np.asarray(w.value, dtype=float)


def _least_needed(what: str, rc: ResolvedConstraints, n: int) -> float | None:
    """Smallest gross exposure ("leverage") or turnover the other constraints allow (LP)."""
    w = cp.Variable(n)
    relaxed = ResolvedConstraints(
        names=rc.names,
        lower=rc.lower,
        upper=rc.upper,
        long_only=rc.long_only,
        leverage=rc.leverage if what == "turnover" else None,
        sector_names=rc.sector_names,
        sector_members=rc.sector_members,
        sector_lower=rc.sector_lower,
        sector_upper=rc.sector_upper,
        current=rc.current,
        max_turnover=None,
        cost_rate=0.0,
    )
    expr = cp.norm1(w) if what == "leverage" else cp.norm1(w - relaxed.start)
    problem = cp.Problem(cp.Minimize(expr), weight_constraints(w, relaxed))
    _, status, _ = solve_problem(problem, "lp", "auto")
    return float(problem.value) if status in _OPTIMAL else None


def diagnose_infeasible_constraints(rc: ResolvedConstraints) -> None:
    """Raise InfeasiblePortfolioError naming the leverage or turnover limit that cannot be met.

    Bounds and sector limits were checked exactly in :func:`resolve_constraints`; here the
    smallest gross exposure and the smallest turnover the other constraints allow are found by
    linear programs and compared with the limits. Returns quietly when the set is feasible.
    """
    n = len(rc.names)
    if rc.leverage_binds:
        least = _least_needed("leverage", rc, n)
        if least is not None and least > float(rc.leverage) + FEASIBILITY_TOL:  # type: ignore[arg-type]
            raise InfeasiblePortfolioError(
                f"leverage {rc.leverage:.6g} is below {least:.6g}, the smallest gross exposure "
                "the weight bounds and sector limits allow; raise leverage to at least that"
            )
    if rc.max_turnover is not None:
        least = _least_needed("turnover", rc, n)
        if least is None:
            raise InfeasiblePortfolioError(
                "leverage: no portfolio meets the leverage limit together with the weight bounds "
                "and sector limits; raise leverage"
            )
        if least > rc.max_turnover + FEASIBILITY_TOL:
            raise InfeasiblePortfolioError(
                f"max_turnover {rc.max_turnover:.6g} is below {least:.6g}, the smallest turnover "
                "from current_weights that meets the other constraints; raise max_turnover to "
                "at least that"
            )


def _risk_aversion(spec: OptimizeSpec) -> tuple[float, str]:
    if spec.risk_aversion is not None:
        return spec.risk_aversion, f"risk_aversion {spec.risk_aversion:g} as given"
    tolerance = spec.risk_tolerance or DEFAULT_RISK_TOLERANCE
    value = RISK_AVERSION_BY_TOLERANCE[tolerance]
    return value, f"risk_aversion {value:g} from risk_tolerance '{tolerance}'"


def _check_spec_fields(spec: OptimizeSpec) -> None:
    """Raise InvalidSpecError for a missing target or a parameter the objective does not use."""
    obj = spec.objective
    if obj == "target_return" and spec.target_return is None:
        raise InvalidSpecError("objective 'target_return' needs target_return")
    if obj == "target_risk" and spec.target_risk is None:
        raise InvalidSpecError("objective 'target_risk' needs target_risk (a volatility > 0)")
    unused = {
        "target_return": spec.target_return is not None and obj != "target_return",
        "target_risk": spec.target_risk is not None and obj != "target_risk",
        "risk_aversion": spec.risk_aversion is not None and obj != "max_utility",
        "risk_tolerance": spec.risk_tolerance is not None and obj != "max_utility",
    }
    for field, is_unused in unused.items():
        if is_unused:
            raise InvalidSpecError(
                f"{field} is not used by objective {obj!r}; remove it or change the objective"
            )
    if spec.risk_aversion is not None and spec.risk_tolerance is not None:
        raise InvalidSpecError("give risk_aversion or risk_tolerance, not both")


@dataclass
class _Program:
    problem: cvxpy.Problem
    kind: str
    weights: Any  # () -> np.ndarray | None, reads the solution
    parameters: dict[str, float]
    notes: list[str]


def _build(
    spec: OptimizeSpec, mu: np.ndarray, cov: np.ndarray, rc: ResolvedConstraints
) -> _Program:
    n = len(mu)
    diag_mean = float(np.mean(np.diag(cov)))
    var_scale = 1.0 / diag_mean if diag_mean > 0.0 else 1.0  # objective scaling for the solvers
    sigma = cp.psd_wrap(cov * var_scale)
    obj = spec.objective
    notes: list[str] = []
    parameters: dict[str, float] = {}
    if obj == "max_sharpe":
        excess = mu - spec.risk_free_rate
        kappa = float(np.max(np.abs(excess)))
        if rc.long_only and float(np.max(mu)) <= spec.risk_free_rate:
            best = int(np.argmax(mu))
            raise InfeasiblePortfolioError(
                "max_sharpe needs a portfolio whose expected return exceeds the risk-free rate, "
                f"but no asset's does (highest: {mu[best]:.6g} for {rc.names[best]}, "
                f"risk_free_rate {spec.risk_free_rate:.6g}); lower risk_free_rate or use "
                "objective 'min_variance'"
            )
        y = cp.Variable(n)
        k = cp.Variable(nonneg=True)
        cons = weight_constraints(y, rc, k)
        cons.append(net_return_expr(y, excess, rc, k) >= kappa)
        problem = cp.Problem(cp.Minimize(cp.quad_form(y, sigma)), cons)

        def sharpe_weights() -> np.ndarray | None:
            if y.value is None or k.value is None or float(k.value) <= 0.0:
                return None
            return np.asarray(y.value, dtype=float) / float(k.value)

        return _Program(problem, "qp", sharpe_weights, parameters, notes)

    w = cp.Variable(n)
    cons = weight_constraints(w, rc)
    net = net_return_expr(w, mu, rc)
    kind = "qp"
    if obj == "min_variance":
        problem = cp.Problem(cp.Minimize(cp.quad_form(w, sigma)), cons)
        if rc.cost_rate > 0.0:
            notes.append(
                "min_variance ignores transaction costs in the objective; they are reported"
            )
    elif obj == "target_return":
        assert spec.target_return is not None
        parameters["target_return"] = spec.target_return
        problem = cp.Problem(
            cp.Minimize(cp.quad_form(w, sigma)), [*cons, net >= spec.target_return]
        )
    elif obj == "target_risk":
        assert spec.target_risk is not None
        parameters["target_risk"] = spec.target_risk
        eigval, eigvec = np.linalg.eigh(cov)
        factor = eigvec * np.sqrt(np.clip(eigval, 0.0, None))  # cov = factor @ factor.T
        ret_scale = max(float(np.max(np.abs(mu))), 1e-12)
        problem = cp.Problem(
            cp.Maximize(net / ret_scale),
            [*cons, cp.norm(factor.T @ w, 2) <= spec.target_risk],
        )
        kind = "socp"
    else:
        delta, how = _risk_aversion(spec)
        parameters["risk_aversion"] = delta
        notes.append(how)
        problem = cp.Problem(
            cp.Minimize((delta / 2.0) * cp.quad_form(w, sigma) - var_scale * net), cons
        )

    def plain_weights() -> np.ndarray | None:
        return None if w.value is None else np.asarray(w.value, dtype=float)

    return _Program(problem, kind, plain_weights, parameters, notes)


def _min_variance_point(
    mu: np.ndarray, cov: np.ndarray, rc: ResolvedConstraints
) -> tuple[float, float]:
    """(net return, volatility) of the minimum-variance portfolio under the constraints."""
    w = cp.Variable(len(mu))
    problem = cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(cov))), weight_constraints(w, rc))
    _, status, _ = solve_problem(problem, "qp", "auto")
    if status not in _OPTIMAL or w.value is None:
        raise OptimizationError(f"minimum-variance program ended with status {status}")
    x = np.asarray(w.value, dtype=float)
    net = float(mu @ x) - rc.cost_rate * float(np.abs(x - rc.start).sum())
    return net, math.sqrt(max(float(x @ cov @ x), 0.0))


def _raise_infeasible(
    spec: OptimizeSpec,
    mu: np.ndarray,
    cov: np.ndarray,
    rc: ResolvedConstraints,
    solver: str,
    status: str,
) -> None:
    """Explain an infeasible solve: a constraint, a target out of range, or no excess return."""
    diagnose_infeasible_constraints(rc)
    best = _max_net_return(mu, rc)
    if best is None:
        raise InfeasiblePortfolioError(
            "the constraints admit no fully invested portfolio; relax the weight bounds, "
            "sector limits, leverage or max_turnover"
        )
    r_max = best[0]
    if spec.objective == "target_return":
        r_mv, _ = _min_variance_point(mu, cov, rc)
        raise InfeasiblePortfolioError(
            f"target_return {spec.target_return:.6g} is above {r_max:.6g}, the highest net "
            "expected return achievable under the constraints; choose a target between "
            f"{r_mv:.6g} (minimum-variance portfolio) and {r_max:.6g}"
        )
    if spec.objective == "target_risk":
        r_mv, vol_mv = _min_variance_point(mu, cov, rc)
        raise InfeasiblePortfolioError(
            f"target_risk {spec.target_risk:.6g} is below {vol_mv:.6g}, the lowest volatility "
            "achievable under the constraints (minimum-variance portfolio, net return "
            f"{r_mv:.6g}); choose target_risk >= {vol_mv:.6g}"
        )
    if spec.objective == "max_sharpe" and r_max <= spec.risk_free_rate:
        raise InfeasiblePortfolioError(
            "max_sharpe needs a portfolio whose net expected return exceeds the risk-free rate; "
            f"the highest achievable under the constraints is {r_max:.6g} <= risk_free_rate "
            f"{spec.risk_free_rate:.6g}; lower risk_free_rate or use objective 'min_variance'"
        )
    raise OptimizationError(
        f"{solver} reported {status} for objective {spec.objective!r} although the constraints "
        "are feasible; try another solver"
    )


def _exact_point(
    spec: OptimizeSpec, mu: np.ndarray, cov: np.ndarray, rc: ResolvedConstraints
) -> tuple[np.ndarray, dict[str, float], list[str]] | None:
    """The objective's portfolio read exactly off the critical-line corners, when it applies.

    It applies with only the budget and weight bounds (``rc.is_plain``) and a covariance that
    is nonsingular on the assets between their bounds. None otherwise, and for a target the
    frontier cannot reach or a Sharpe ratio no portfolio makes positive: the convex program
    then runs and explains the infeasibility as usual.
    """
    if not rc.is_plain:
        return None
    try:
        lambdas, corners = critical_line(mu, cov, rc.lower, rc.upper)
    except OptimizationError:
        return None
    obj = spec.objective
    parameters: dict[str, float] = {}
    notes: list[str] = [f"critical line algorithm: {len(corners)} corner portfolios, exact"]
    weights: np.ndarray | None
    if obj == "min_variance":
        weights = corners[-1].copy()
    elif obj == "max_utility":
        delta, how = _risk_aversion(spec)
        parameters["risk_aversion"] = delta
        notes.insert(0, how)
        weights = utility_portfolio(lambdas, corners, delta)
    elif obj == "max_sharpe":
        weights = sharpe_portfolio(corners, mu, cov, spec.risk_free_rate)
    elif obj == "target_return":
        assert spec.target_return is not None
        parameters["target_return"] = spec.target_return
        if spec.target_return > float(corners[0] @ mu) * (1 + 1e-12) + 1e-15:
            return None
        weights = interpolate_corners(corners, mu, np.array([spec.target_return]))[0]
    else:
        assert spec.target_risk is not None
        parameters["target_risk"] = spec.target_risk
        weights = risk_portfolio(corners, mu, cov, spec.target_risk)
    if weights is None:
        return None
    return weights, parameters, notes


def _solve_program(
    spec: OptimizeSpec, mu: np.ndarray, cov: np.ndarray, rc: ResolvedConstraints
) -> tuple[np.ndarray, str, str, dict[str, float], list[str]]:
    """The objective's convex program, solved: (weights, solver, status, parameters, notes)."""
    program = _build(spec, mu, cov, rc)
    solver, status, solve_notes = solve_problem(program.problem, program.kind, spec.solver)
    if status in _INFEASIBLE:
        _raise_infeasible(spec, mu, cov, rc, solver, status)
    usable = status in _OPTIMAL or status == cp.OPTIMAL_INACCURATE
    weights = program.weights() if usable else None
    if weights is None:
        raise OptimizationError(
            f"{solver} ended with status {status} for objective {spec.objective!r}; "
            + ("; ".join(solve_notes) or "try another solver")
        )
    notes = [*program.notes, *solve_notes]
    if status == cp.OPTIMAL_INACCURATE:
        notes.append(f"{solver} reached its reduced accuracy only ({status})")
    return weights, solver, status, program.parameters, notes


def optimize_portfolio(
    mu: pd.Series | np.ndarray,
    cov: pd.DataFrame | np.ndarray,
    spec: OptimizeSpec,
    *,
    names: Sequence[str] | None = None,
) -> PortfolioPlan:
    """Solve the spec's objective under its constraints and compare with the baseline.

    ``names``: the assets of plain-array ``mu`` and ``cov`` (a Series carries its own).

    The baseline is the current holdings when ``spec.constraints.current_weights`` is given,
    else the equal-weight portfolio, evaluated on the same mu and cov; ``improvement`` is plan
    minus baseline.
    """
    names, mu_arr, cov_arr = as_mean_cov(mu, cov, names=names)
    rc = resolve_constraints(spec.constraints, names)
    _check_spec_fields(spec)
    start = time.perf_counter()
    exact = _exact_point(spec, mu_arr, cov_arr, rc) if spec.solver == "auto" else None
    if exact is not None:
        weights, parameters, notes = exact
        solver, status = "critical_line", "optimal"
    else:
        weights, solver, status, parameters, notes = _solve_program(spec, mu_arr, cov_arr, rc)
    seconds = time.perf_counter() - start
    weights = np.clip(weights, rc.lower, rc.upper)
    weights[np.abs(weights) < 1e-12] = 0.0
    broken = constraint_violations(weights, rc)
    plan_eval = evaluate_portfolio(
        "plan", weights, mu_arr, cov_arr, rc, spec.risk_free_rate, violations=broken
    )
    if broken:
        notes.append(f"solution misses {', '.join(broken)} by more than {FEASIBILITY_TOL:g}")
    if rc.current is not None:
        base_w, base_name = rc.current, "current_holdings"
    else:
        base_w, base_name = np.full(len(names), 1.0 / len(names)), "equal_weight"
    base_broken = constraint_violations(base_w, rc)
    baseline = evaluate_portfolio(
        base_name, base_w, mu_arr, cov_arr, rc, spec.risk_free_rate, violations=base_broken
    )
    if base_broken:
        notes.append(
            f"baseline {base_name} breaks {', '.join(base_broken)}; "
            "it is reported for comparison only"
        )
    sharpe_gain = (
        plan_eval.sharpe - baseline.sharpe
        if plan_eval.sharpe is not None and baseline.sharpe is not None
        else None
    )
    return PortfolioPlan(
        objective=spec.objective,
        weights=plan_eval.weights,
        expected_return=plan_eval.expected_return,
        volatility=plan_eval.volatility,
        sharpe=plan_eval.sharpe,
        turnover=plan_eval.turnover,
        transaction_cost=plan_eval.transaction_cost,
        net_expected_return=plan_eval.net_expected_return,
        risk_free_rate=spec.risk_free_rate,
        parameters=parameters,
        solver=solver,
        status=status,
        solve_seconds=seconds,
        baseline=baseline,
        improvement=PlanImprovement(
            sharpe=sharpe_gain,
            net_expected_return=plan_eval.net_expected_return - baseline.net_expected_return,
            volatility=plan_eval.volatility - baseline.volatility,
        ),
        notes=notes,
    )
