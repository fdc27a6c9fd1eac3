"""Efficient frontier: lowest volatility for each target net return, and a PNG plot of it.

Methods:

- ``parametric`` (any constraints of :class:`PortfolioConstraints`): one cvxpy program
  min w'Sw s.t. r(w) >= t, with t a ``cp.Parameter``; it is compiled once (DPP) and re-solved
  for every target with ``warm_start=True`` (CLARABEL then updates the data of its existing
  solver instead of rebuilding it).
- ``exact`` (budget and per-asset bounds only): Markowitz's critical line algorithm. Along the
  frontier the optimal weights are piecewise affine in the target return, changing pieces only
  at "corner portfolios" where an asset reaches or leaves a bound. The algorithm walks these
  corners from the highest-return portfolio down to the minimum-variance one, solving one
  small linear system per corner, so every frontier point is exact up to floating point and
  no iterative solver tolerance enters. It is also much faster than re-solving a QP per point.
- ``auto``: ``exact`` when the constraints allow it, else (or when the covariance is singular
  on the free assets) ``parametric``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import cvxpy
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nqba.finance.cla import critical_line, highest_return_portfolio, interpolate_corners
from nqba.finance.errors import (
    InfeasiblePortfolioError,
    InvalidSpecError,
    OptimizationError,
)
from nqba.finance.optimize import (
    ResolvedConstraints,
    as_mean_cov,
    diagnose_infeasible_constraints,
    net_return_expr,
    resolve_constraints,
    solve_problem,
    weight_constraints,
)
from nqba.finance.schemas import (
    Frontier,
    FrontierMethod,
    OptimizeSpec,
    PortfolioPerformance,
    PortfolioPlan,
)

# cvxpy ships py.typed, but mypy cannot see the atoms it re-exports (sum, norm1, quad_form).
cp: Any = cvxpy

_TARGET_TOL = 1e-9


def _targets(
    r_low: float, r_high: float, n_points: int, target_returns: Sequence[float] | None
) -> tuple[np.ndarray, list[str]]:
    notes: list[str] = []
    if target_returns is None:
        return np.linspace(r_low, r_high, n_points), notes
    targets = np.asarray(target_returns, dtype=float)
    if targets.ndim != 1 or len(targets) == 0 or not np.all(np.isfinite(targets)):
        raise InvalidSpecError("target_returns must be a non-empty list of finite numbers")
    too_high = targets > r_high + _TARGET_TOL * max(1.0, abs(r_high))
    if np.any(too_high):
        raise InfeasiblePortfolioError(
            f"target return {float(targets[too_high].max()):.6g} is above {r_high:.6g}, the "
            "highest net expected return achievable under the constraints; choose targets "
            f"between {r_low:.6g} (minimum-variance portfolio) and {r_high:.6g}"
        )
    below = int(np.sum(targets < r_low))
    if below:
        notes.append(
            f"{below} target(s) below the minimum-variance return {r_low:.6g} give the "
            "minimum-variance portfolio"
        )
    return np.minimum(targets, r_high), notes


def _exact(
    mu: np.ndarray,
    cov: np.ndarray,
    rc: ResolvedConstraints,
    n_points: int,
    target_returns: Sequence[float] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    if not rc.is_plain:
        raise InvalidSpecError(
            "method='exact' handles the budget and weight bounds only; this spec also sets "
            "sector limits, a binding leverage limit, max_turnover or transaction costs; use "
            "method='parametric'"
        )
    _, corners = critical_line(mu, cov, rc.lower, rc.upper)
    corner_returns = corners @ mu
    targets, notes = _targets(
        float(corner_returns[-1]), float(corner_returns[0]), n_points, target_returns
    )
    notes.append(f"critical line algorithm: {len(corners)} corner portfolios")
    return targets, interpolate_corners(corners, mu, targets), corners, notes


def _exact_curve(
    corners: np.ndarray, mu: np.ndarray, cov: np.ndarray, per_segment: int = 16
) -> tuple[list[float], list[float]]:
    """(returns, volatilities) densely along every piece between corners, for plotting."""
    thetas = np.linspace(0.0, 1.0, per_segment + 1)[:-1]
    pieces = [corners[-1:]]
    for k in range(len(corners) - 2, -1, -1):  # from minimum variance up to the top
        lo, hi = corners[k + 1], corners[k]
        pieces.append(lo + thetas[1:, None] * (hi - lo))
        pieces.append(hi[None, :])
    weights = np.vstack(pieces)
    variances = np.einsum("ij,jk,ik->i", weights, cov, weights)
    return (weights @ mu).tolist(), np.sqrt(np.clip(variances, 0.0, None)).tolist()


def _parametric(
    mu: np.ndarray,
    cov: np.ndarray,
    rc: ResolvedConstraints,
    solver_choice: str,
    n_points: int,
    target_returns: Sequence[float] | None,
) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    n = len(mu)
    if rc.is_plain:  # top of the frontier in closed form
        r_high = float(mu @ highest_return_portfolio(mu, rc.lower, rc.upper)[0])
    else:  # highest net return by LP
        w_lp = cp.Variable(n)
        lp = cp.Problem(cp.Maximize(net_return_expr(w_lp, mu, rc)), weight_constraints(w_lp, rc))
        _, lp_status, _ = solve_problem(lp, "lp", "auto")
        if lp_status != cp.OPTIMAL:
            diagnose_infeasible_constraints(rc)
            raise InfeasiblePortfolioError(
                f"no portfolio meets the constraints (LP status {lp_status}); relax the weight "
                "bounds, sector limits, leverage or max_turnover"
            )
        r_high = float(lp.value)

    diag_mean = float(np.mean(np.diag(cov)))
    var_scale = 1.0 / diag_mean if diag_mean > 0.0 else 1.0
    w = cp.Variable(n)
    target = cp.Parameter()
    problem = cp.Problem(
        cp.Minimize(cp.quad_form(w, cp.psd_wrap(cov * var_scale))),
        [*weight_constraints(w, rc), net_return_expr(w, mu, rc) >= target],
    )
    # CLARABEL re-solves a 20-asset point in about the time warm-started OSQP does, and stays
    # within ~1e-9 in volatility; OSQP re-solves skip polishing unless asked and then drift by
    # ~2e-5 at cvxpy's default tolerances (measured on the PyPortfolioOpt data set).
    choice = "CLARABEL" if solver_choice == "auto" else solver_choice
    # A target no portfolio falls below makes the return constraint slack: minimum variance.
    floor = float(np.sum(np.minimum(rc.lower * mu, rc.upper * mu)))
    floor -= rc.cost_rate * float(
        np.sum(np.maximum(np.abs(rc.lower - rc.start), np.abs(rc.upper - rc.start)))
    )
    target.value = floor - 1.0
    solver, status, notes = solve_problem(problem, "qp", choice, warm_start=True)
    if status != cp.OPTIMAL or w.value is None:
        raise OptimizationError(f"minimum-variance program ended with status {status} ({solver})")
    w_mv = np.asarray(w.value, dtype=float)
    r_low = float(mu @ w_mv) - rc.cost_rate * float(np.abs(w_mv - rc.start).sum())
    targets, target_notes = _targets(r_low, r_high, n_points, target_returns)
    notes.extend(target_notes)
    weights = np.empty((len(targets), n))
    # At exactly the highest return the feasible set is a single face; a hair below keeps the
    # interior-point solver away from a numerically empty set (1e-10 relative, far below any
    # reported digit).
    ceiling = r_high - 1e-10 * max(1.0, abs(r_high))
    for t, value in enumerate(targets):
        if value <= r_low:
            weights[t] = w_mv
            continue
        target.value = float(min(value, ceiling))
        solver, status, more = solve_problem(problem, "qp", choice, warm_start=True)
        notes.extend(more)
        if status != cp.OPTIMAL or w.value is None:
            raise OptimizationError(
                f"frontier point for target return {value:.6g} ended with status {status} "
                f"({solver})"
            )
        weights[t] = np.asarray(w.value, dtype=float)
    notes.append(
        f"one DPP-compiled cvxpy program re-solved for {len(targets)} targets with {solver}"
    )
    return targets, weights, solver, notes


def efficient_frontier(
    mu: pd.Series | np.ndarray,
    cov: pd.DataFrame | np.ndarray,
    spec: OptimizeSpec | None = None,
    *,
    n_points: int = 50,
    method: FrontierMethod = "parametric",
    target_returns: Sequence[float] | None = None,
) -> Frontier:
    """Frontier points evenly spaced in net return, minimum variance to highest return.

    ``spec`` supplies the constraints, the risk-free rate of the Sharpe ratios and the solver
    (its objective is not used). ``target_returns`` replaces the even grid; targets below the
    minimum-variance return give the minimum-variance portfolio, targets above the highest
    achievable return raise :class:`InfeasiblePortfolioError`.
    """
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 2:
        raise InvalidSpecError(f"n_points must be an integer >= 2, got {n_points!r}")
    if method not in ("parametric", "exact", "auto"):
        raise InvalidSpecError(f"method must be 'parametric', 'exact' or 'auto', got {method!r}")
    spec = spec or OptimizeSpec()
    names, mu_arr, cov_arr = as_mean_cov(mu, cov)
    rc = resolve_constraints(spec.constraints, names)
    start = time.perf_counter()
    corner_returns: list[float] = []
    curve_returns: list[float] = []
    curve_vols: list[float] = []
    used: Literal["parametric", "exact"] = "parametric"
    notes: list[str] = []
    if method == "exact" or (method == "auto" and rc.is_plain):
        try:
            targets, weights, corners, notes = _exact(mu_arr, cov_arr, rc, n_points, target_returns)
            corner_returns = (corners @ mu_arr).tolist()
            curve_returns, curve_vols = _exact_curve(corners, mu_arr, cov_arr)
            solver, used = "critical_line", "exact"
        except OptimizationError as exc:
            if method == "exact":
                raise
            notes = [f"critical line failed ({exc}); used the parametric method"]
    if used == "parametric":
        targets, weights, solver, more = _parametric(
            mu_arr, cov_arr, rc, spec.solver, n_points, target_returns
        )
        notes.extend(more)
    seconds = time.perf_counter() - start
    gross = weights @ mu_arr
    net = gross - rc.cost_rate * np.abs(weights - rc.start).sum(axis=1)
    vols = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", weights, cov_arr, weights), 0.0, None))
    sharpe = [
        (float(r) - spec.risk_free_rate) / float(v) if v > 0.0 else None
        for r, v in zip(net, vols, strict=True)
    ]
    if rc.cost_rate > 0.0:
        notes.append("returns are net of transaction costs (rate * turnover)")
    return Frontier(
        assets=names,
        method=used,
        target_returns=targets.tolist(),
        expected_returns=net.tolist(),
        volatilities=vols.tolist(),
        sharpe_ratios=sharpe,
        weights=weights.tolist(),
        risk_free_rate=spec.risk_free_rate,
        solver=solver,
        solve_seconds=seconds,
        corner_returns=corner_returns,
        curve_returns=curve_returns,
        curve_volatilities=curve_vols,
        notes=notes,
    )


def plot_frontier(
    frontier: Frontier,
    path: str | os.PathLike[str],
    *,
    portfolios: Mapping[str, PortfolioPlan | PortfolioPerformance | tuple[float, float]]
    | None = None,
    title: str | None = None,
    dpi: int = 120,
) -> None:
    """Write the frontier (volatility vs net return) as a PNG, marking the given portfolios.

    ``portfolios`` maps a label to a plan, a baseline, or a (volatility, return) pair.
    """
    fig = Figure(figsize=(7.0, 4.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if frontier.curve_volatilities:  # exact method: the whole curve, corner to corner
        ax.plot(
            frontier.curve_volatilities,
            frontier.curve_returns,
            "-",
            color="tab:blue",
            label="efficient frontier (exact)",
        )
        ax.plot(frontier.volatilities, frontier.expected_returns, ".", color="tab:blue")
    else:
        ax.plot(
            frontier.volatilities,
            frontier.expected_returns,
            ".-",
            color="tab:blue",
            label=f"efficient frontier ({frontier.method}, {len(frontier.volatilities)} points)",
        )
    for label, item in (portfolios or {}).items():
        if isinstance(item, PortfolioPlan | PortfolioPerformance):
            vol, ret = item.volatility, item.net_expected_return
        else:
            vol, ret = float(item[0]), float(item[1])
        ax.scatter([vol], [ret], zorder=3, label=label)
    ax.set_xlabel("volatility")
    ax.set_ylabel("expected return")
    ax.set_title(title or "Efficient frontier")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png", dpi=dpi)
