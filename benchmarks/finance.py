"""Finance: our frontier and cardinality solver against PyPortfolioOpt and SCIP, side by side.

Three parts, one run:

1. Frontier. On the two 20-stock price files (mu = CAGR, S = sample covariance, x252),
   50 target returns evenly spaced from the minimum-volatility return to 0.5 % of the range
   below the highest expected return (PyPortfolioOpt refuses the top itself). Baseline: a
   loop of PyPortfolioOpt ``EfficientFrontier(mu, S).efficient_return(target)``. Ours:
   ``efficient_frontier(..., method="exact")`` (critical line) and ``"parametric"`` (one cvxpy
   program re-solved per target). Wall time, median of ``--repeats`` runs, and the largest
   volatility difference to PyPortfolioOpt at the same targets.
2. Cardinality. The Chang et al. model on OR-Library port1-3 (K = 5 and 10, min buy-in 0.01,
   max 1, exactly K held) at lambda in {0.5, 0.9, 0.95, 0.99, 0.999}. Baseline: SCIP through
   cvxpy (MIQP, one thread, ``--scip-time-limit`` seconds); its support is re-weighted with
   the same QP as ours so the objectives compare like for like. Ours:
   ``optimize_cardinality`` (engine selection, local search, perspective branch and bound).
3. Single portfolios. On the same two price files, each objective once (min volatility, max
   Sharpe, max quadratic utility at risk aversion 6, a target return and a target volatility
   mid-frontier). Baseline: PyPortfolioOpt's method of the same name. Ours:
   ``optimize_portfolio`` with solver ``auto`` (read exactly off the critical-line corners when
   only bounds constrain) and with ``CLARABEL`` forced (the cvxpy program). Median wall time
   and the largest weight difference to PyPortfolioOpt.
4. Cardinality frontier. ``cardinality_frontier`` with K = 10 at ``--frontier-points``
   lambdas, scored against the unconstrained long-only frontier ``portefN.txt`` with the
   percentage-deviation metric of the orlib README (smaller of the horizontal and vertical
   distances to the interpolated curve), next to the published GA/TS/SA figures.

Run: ``.venv/bin/python benchmarks/finance.py [--quick] [--parts ...] [--json out.json]``
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from operator import methodcaller
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from nqba.config import get_settings
from nqba.finance.cardinality import (
    cardinality_frontier,
    frontier_deviation,
    optimize_cardinality,
    support_weights,
)
from nqba.finance.data import load_prices
from nqba.finance.estimators import covariance, expected_returns
from nqba.finance.frontier import efficient_frontier
from nqba.finance.orlib import read_orlib_frontier, read_orlib_portfolio

PRICE_FILES = ("pypfopt_stock_prices_1989_2018.csv", "sp500_20assets_1990_2022.csv")
LAMBDAS = (0.5, 0.9, 0.95, 0.99, 0.999)
KS = (5, 10)
MIN_BUY = 0.01
MAX_HOLD = 1.0
# Published mean percentage errors (Bacanin & Tuba 2014, Table 5, via the orlib README):
# (variance of return error %, mean return error %) for GA, TS, SA.
PUBLISHED = {
    "port1": {"GA": (1.6441, 0.6072), "TS": (1.6578, 0.6107), "SA": (1.6628, 0.6238)},
    "port2": {"GA": (7.2180, 1.2791), "TS": (9.0309, 1.9078), "SA": (8.5485, 1.2817)},
    "port3": {"GA": (2.8660, 0.3277), "TS": (4.0123, 0.3298), "SA": (3.8205, 0.3304)},
}

# cvxpy's own type hints are partial; the benchmark uses it untyped.
cp: Any = importlib.import_module("cvxpy")
console = Console(highlight=False, width=200)


def _median_seconds(func: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _moments(data_dir: Path, name: str) -> tuple[pd.Series, pd.DataFrame, float]:
    """CAGR returns and sample covariance of one price file, and the return of its
    minimum-variance portfolio (PyPortfolioOpt's, the low end of every frontier here)."""
    from pypfopt import EfficientFrontier

    prices = load_prices(data_dir / "portfolio" / "prices" / name).prices
    mu = expected_returns(prices, "cagr")
    cov = covariance(prices, "sample")
    ef = EfficientFrontier(mu, cov)
    ef.min_volatility()
    return mu, cov, float(ef.portfolio_performance()[0])


def frontier_part(data_dir: Path, repeats: int, points: int) -> list[dict[str, Any]]:
    from pypfopt import EfficientFrontier

    rows = []
    for name in PRICE_FILES:
        mu, cov, low = _moments(data_dir, name)
        high = float(mu.max())
        targets = np.linspace(low, high - 0.005 * (high - low), points)

        def pypfopt_loop(
            mu: pd.Series = mu, cov: pd.DataFrame = cov, targets: np.ndarray = targets
        ) -> list[float]:
            vols = []
            for t in targets:
                model = EfficientFrontier(mu, cov)
                model.efficient_return(float(t))
                vols.append(float(model.portfolio_performance()[1]))
            return vols

        base_s, base_vols = _median_seconds(pypfopt_loop, repeats)
        for method in ("exact", "parametric"):

            def ours(
                mu: pd.Series = mu,
                cov: pd.DataFrame = cov,
                method: Any = method,
                targets: np.ndarray = targets,
            ) -> Any:
                return efficient_frontier(mu, cov, target_returns=list(targets), method=method)

            ours_s, frontier = _median_seconds(ours, repeats)
            delta = np.max(np.abs(np.asarray(frontier.volatilities) - np.asarray(base_vols)))
            rows.append(
                {
                    "data": name,
                    "method": method,
                    "points": points,
                    "ours_ms": ours_s * 1e3,
                    "pypfopt_ms": base_s * 1e3,
                    "speedup": base_s / ours_s,
                    "max_abs_dvol": float(delta),
                }
            )
            console.print(f"frontier {name} {method}: {rows[-1]}")
    return rows


def point_part(data_dir: Path, repeats: int) -> list[dict[str, Any]]:
    from pypfopt import EfficientFrontier

    from nqba.finance.optimize import optimize_portfolio
    from nqba.finance.schemas import OptimizeSpec

    rows = []
    for name in PRICE_FILES:
        mu, cov, r_low = _moments(data_dir, name)
        target_r = float(r_low + 0.5 * (float(mu.max()) - r_low))
        ef = EfficientFrontier(mu, cov)
        ef.efficient_return(target_r)
        target_v = float(ef.portfolio_performance()[1])
        cases: list[tuple[str, dict[str, Any], Callable[[Any], Any]]] = [
            ("min_variance", {}, lambda e: e.min_volatility()),
            ("max_sharpe", {}, lambda e: e.max_sharpe(risk_free_rate=0.0)),
            ("max_utility", {"risk_aversion": 6.0}, lambda e: e.max_quadratic_utility(6.0)),
            (
                "target_return",
                {"target_return": target_r},
                methodcaller("efficient_return", target_r),
            ),
            ("target_risk", {"target_risk": target_v}, methodcaller("efficient_risk", target_v)),
        ]
        for objective, fields, pypfopt_call in cases:

            def baseline(
                call: Any = pypfopt_call, mu: pd.Series = mu, cov: pd.DataFrame = cov
            ) -> pd.Series:
                model = EfficientFrontier(mu, cov)
                call(model)
                return pd.Series(model.clean_weights(rounding=None), dtype=float)

            base_s, base_w = _median_seconds(baseline, repeats)
            row: dict[str, Any] = {"data": name, "objective": objective, "pypfopt_ms": base_s * 1e3}
            for label, solver in (("exact", "auto"), ("cvxpy", "CLARABEL")):
                spec = OptimizeSpec.model_validate(
                    {"objective": objective, "solver": solver, **fields}
                )

                def ours(
                    spec: OptimizeSpec = spec, mu: pd.Series = mu, cov: pd.DataFrame = cov
                ) -> Any:
                    return optimize_portfolio(mu, cov, spec)

                ours_s, plan = _median_seconds(ours, repeats)
                weights = pd.Series(plan.weights, dtype=float).reindex(base_w.index)
                row[f"{label}_ms"] = ours_s * 1e3
                row[f"{label}_solver"] = plan.solver
                row[f"{label}_max_dw"] = float(np.max(np.abs(weights - base_w)))
            rows.append(row)
            console.print(f"point {name} {objective}: {row}")
    return rows


def scip_cardinality(
    mu: np.ndarray, cov: np.ndarray, k: int, lam: float, time_limit: float
) -> tuple[list[int] | None, float, str]:
    """SCIP's support for the Chang model (MIQP via cvxpy), its wall time and status."""
    n = len(mu)
    w = cp.Variable(n)
    z = cp.Variable(n, boolean=True)
    chol = np.linalg.cholesky(cov + 1e-12 * np.eye(n))
    objective = cp.Minimize(1e4 * (lam * cp.sum_squares(chol.T @ w) - (1 - lam) * mu @ w))
    constraints = [cp.sum(w) == 1, cp.sum(z) == k, w >= MIN_BUY * z, w <= MAX_HOLD * z]
    problem = cp.Problem(objective, constraints)
    start = time.perf_counter()
    try:
        problem.solve(
            solver="SCIP",
            scip_params={"limits/time": time_limit, "parallel/maxnthreads": 1},
        )
    except cp.error.SolverError as e:
        return None, time.perf_counter() - start, f"error: {e}"
    seconds = time.perf_counter() - start
    if z.value is None:
        return None, seconds, str(problem.status)
    support = sorted(int(i) for i in np.flatnonzero(z.value > 0.5))
    return support, seconds, str(problem.status)


def cardinality_part(
    data_dir: Path, sets: list[str], scip_limit: float, our_limit: float | None
) -> list[dict[str, Any]]:
    rows = []
    # Compile the numba kernels once, outside the timings (a one-off per installation).
    rng = np.random.default_rng(0)
    a = rng.standard_normal((12, 12))
    optimize_cardinality(rng.random(12) / 100, a @ a.T / 1e4 + np.eye(12) / 1e4, 3, risk_weight=0.5)
    for set_name in sets:
        port = read_orlib_portfolio(data_dir / "portfolio" / "orlib" / f"{set_name}.txt")
        names = list(port.names)
        mu = pd.Series(port.mu, index=names)
        cov = pd.DataFrame(port.cov, index=names, columns=names)
        for k in KS:
            for lam in LAMBDAS:
                start = time.perf_counter()
                plan = optimize_cardinality(
                    mu, cov, k, risk_weight=lam, min_weight=MIN_BUY, max_weight=MAX_HOLD,
                    time_limit=our_limit, seed=1,
                )  # fmt: skip
                ours_s = time.perf_counter() - start
                support, scip_s, status = scip_cardinality(port.mu, port.cov, k, lam, scip_limit)
                scip_obj = None
                if support is not None:
                    w = support_weights(
                        mu, cov, [names[i] for i in support], risk_weight=lam,
                        min_weight=MIN_BUY, max_weight=MAX_HOLD,
                    ).to_numpy()  # fmt: skip
                    scip_obj = float(lam * w @ port.cov @ w - (1 - lam) * port.mu @ w)
                ours_support = sorted(int(s) for s in plan.support)
                rows.append(
                    {
                        "set": set_name,
                        "k": k,
                        "lambda": lam,
                        "ours_s": ours_s,
                        "ours_objective": plan.objective,
                        "proven": plan.proven_optimal,
                        "relative_gap": plan.relative_gap,
                        "ours_support": ours_support,
                        "scip_s": scip_s,
                        "scip_status": status,
                        "scip_objective": scip_obj,
                        "scip_support": None if support is None else [i + 1 for i in support],
                        "same_support": support is not None
                        and ours_support == [i + 1 for i in support],
                        "objective_diff": None if scip_obj is None else plan.objective - scip_obj,
                        "speedup": scip_s / ours_s,
                    }
                )
                console.print(f"cardinality {rows[-1]}")
    return rows


def cardinality_frontier_part(data_dir: Path, sets: list[str], points: int) -> list[dict[str, Any]]:
    rows = []
    lambdas = list(np.linspace(0.0, 1.0, points))
    for set_name in sets:
        folder = data_dir / "portfolio" / "orlib"
        port = read_orlib_portfolio(folder / f"{set_name}.txt")
        ref_r, ref_v = read_orlib_frontier(folder / f"portef{set_name[-1]}.txt")
        start = time.perf_counter()
        plans = cardinality_frontier(
            port.mu, port.cov, 10, lambdas, min_weight=MIN_BUY, max_weight=MAX_HOLD, seed=1
        )
        seconds = time.perf_counter() - start
        returns = np.array([p.expected_return for p in plans])
        variances = np.array([p.variance for p in plans])
        deviation = frontier_deviation(returns, variances, ref_r, ref_v)
        # The published "variance of return error" and "mean return error" measure each
        # direction separately; report ours the same way where the reference curve covers it.
        order_r = np.argsort(ref_r)
        order_s = np.argsort(np.sqrt(ref_v))
        sd = np.sqrt(variances)
        ref_sd = np.sqrt(ref_v)
        in_r = (returns >= ref_r.min()) & (returns <= ref_r.max())
        in_s = (sd >= ref_sd.min()) & (sd <= ref_sd.max())
        horizontal = np.abs(
            100
            * (sd[in_r] - np.interp(returns[in_r], ref_r[order_r], ref_sd[order_r]))
            / np.interp(returns[in_r], ref_r[order_r], ref_sd[order_r])
        )
        vertical = np.abs(
            100
            * (returns[in_s] - np.interp(sd[in_s], ref_sd[order_s], ref_r[order_s]))
            / np.interp(sd[in_s], ref_sd[order_s], ref_r[order_s])
        )
        rows.append(
            {
                "set": set_name,
                "points": points,
                "seconds": seconds,
                "mean_pct_deviation": float(np.nanmean(deviation)),
                "median_pct_deviation": float(np.nanmedian(deviation)),
                "mean_sd_error_pct": float(horizontal.mean()) if horizontal.size else None,
                "mean_return_error_pct": float(vertical.mean()) if vertical.size else None,
                "published": PUBLISHED[set_name],
            }
        )
        console.print(f"cardinality frontier {rows[-1]}")
    return rows


def _print_tables(result: dict[str, Any]) -> None:
    if result.get("frontier"):
        _frontier_table(result)
    if result.get("point"):
        _point_table(result)
    if result.get("cardinality"):
        _cardinality_table(result)
    if result.get("cardinality_frontier"):
        _cardinality_frontier_table(result)


def _frontier_table(result: dict[str, Any]) -> None:
    table = Table(title="50-point frontier vs PyPortfolioOpt efficient_return loop")
    for col in ("data", "method", "ours ms", "PyPortfolioOpt ms", "speed-up", "max |dvol|"):
        table.add_column(col, justify="right")
    for r in result.get("frontier", []):
        table.add_row(
            r["data"], r["method"], f"{r['ours_ms']:.1f}", f"{r['pypfopt_ms']:.1f}",
            f"{r['speedup']:.1f}x", f"{r['max_abs_dvol']:.1e}",
        )  # fmt: skip
    console.print(table)


def _point_table(result: dict[str, Any]) -> None:
    table = Table(title="single portfolios vs PyPortfolioOpt (same objective, same mu and S)")
    for col in (
        "data", "objective", "ours exact ms", "ours cvxpy ms", "PyPortfolioOpt ms",
        "exact speed-up", "exact max |dw|", "cvxpy max |dw|",
    ):  # fmt: skip
        table.add_column(col, justify="right")
    for r in result.get("point", []):
        table.add_row(
            r["data"], r["objective"], f"{r['exact_ms']:.2f}", f"{r['cvxpy_ms']:.2f}",
            f"{r['pypfopt_ms']:.2f}", f"{r['pypfopt_ms'] / r['exact_ms']:.1f}x",
            f"{r['exact_max_dw']:.1e}", f"{r['cvxpy_max_dw']:.1e}",
        )  # fmt: skip
    console.print(table)


def _cardinality_table(result: dict[str, Any]) -> None:
    table = Table(title="cardinality (Chang et al.) vs SCIP")
    for col in (
        "set", "K", "lambda", "ours s", "proven", "ours objective", "SCIP s", "SCIP status",
        "SCIP objective", "same support", "speed-up",
    ):  # fmt: skip
        table.add_column(col, justify="right")
    for r in result.get("cardinality", []):
        table.add_row(
            r["set"], str(r["k"]), str(r["lambda"]), f"{r['ours_s']:.3f}",
            "yes" if r["proven"] else f"gap {r['relative_gap']:.1e}",
            f"{r['ours_objective']:.9e}", f"{r['scip_s']:.2f}", r["scip_status"],
            "n/a" if r["scip_objective"] is None else f"{r['scip_objective']:.9e}",
            "yes" if r["same_support"] else "no", f"{r['speedup']:.1f}x",
        )  # fmt: skip
    console.print(table)


def _cardinality_frontier_table(result: dict[str, Any]) -> None:
    table = Table(title="cardinality frontier (K = 10) vs portef")
    for col in ("set", "points", "seconds", "mean % dev", "median % dev", "sd err %", "ret err %"):
        table.add_column(col, justify="right")
    for r in result.get("cardinality_frontier", []):
        table.add_row(
            r["set"], str(r["points"]), f"{r['seconds']:.2f}", f"{r['mean_pct_deviation']:.4f}",
            f"{r['median_pct_deviation']:.4f}", f"{r['mean_sd_error_pct']:.4f}",
            f"{r['mean_return_error_pct']:.4f}",
        )  # fmt: skip
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="port1 only, few repeats")
    parser.add_argument("--repeats", type=int, default=7, help="runs per frontier timing")
    parser.add_argument("--sets", default="port1,port2,port3")
    parser.add_argument("--scip-time-limit", type=float, default=120.0)
    parser.add_argument("--our-time-limit", type=float, default=None)
    parser.add_argument("--frontier-points", type=int, default=50)
    parser.add_argument(
        "--parts",
        default="frontier,point,cardinality,cardinality_frontier",
        help="comma-separated parts to run",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data_dir = get_settings().data_dir
    if not (data_dir / "portfolio").is_dir():
        sys.exit(f"error: the data sets are not at {data_dir} (set NQBA_DATA_DIR)")
    sets = ["port1"] if args.quick else args.sets.split(",")
    repeats = 2 if args.quick else args.repeats
    warnings.simplefilter("ignore", FutureWarning)
    console.print(
        f"machine: {platform.machine()}, python {platform.python_version()}, "
        f"cvxpy {cp.__version__}, data {data_dir}"
    )
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {}
    if "frontier" in parts:
        result["frontier"] = frontier_part(data_dir, repeats, 50)
    if "point" in parts:
        result["point"] = point_part(data_dir, repeats)
    if "cardinality" in parts:
        result["cardinality"] = cardinality_part(
            data_dir, sets, args.scip_time_limit, args.our_time_limit
        )
    if "cardinality_frontier" in parts:
        result["cardinality_frontier"] = cardinality_frontier_part(
            data_dir, sets, 10 if args.quick else args.frontier_points
        )
    _print_tables(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
