"""Efficient frontier: critical line vs the parametrised QP vs single solves, constraints, errors,
the PNG plot, and published frontiers (OR-Library portef1-3, skfolio, PyPortfolioOpt)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from nqba.finance.cla import critical_line, highest_return_portfolio
from nqba.finance.errors import InfeasiblePortfolioError, InvalidSpecError, OptimizationError
from nqba.finance.frontier import efficient_frontier, plot_frontier
from nqba.finance.optimize import optimize_portfolio
from nqba.finance.schemas import OptimizeSpec, PortfolioConstraints


def _market(n: int = 8, seed: int = 0) -> tuple[pd.Series, pd.DataFrame]:
    """A small two-factor market with positive expected returns."""
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(n, 2)) * 0.15
    cov = loadings @ loadings.T + np.diag(rng.uniform(0.01, 0.04, n))
    mu = rng.uniform(0.04, 0.16, n)
    names = [f"S{i}" for i in range(n)]
    return pd.Series(mu, index=names), pd.DataFrame(cov, index=names, columns=names)


def test_exact_and_parametric_frontiers_agree_on_the_same_grid() -> None:
    mu, cov = _market()
    spec = OptimizeSpec(constraints=PortfolioConstraints(weight_bounds=(0.0, 0.4)))
    exact = efficient_frontier(mu, cov, spec, n_points=25, method="exact")
    parametric = efficient_frontier(mu, cov, spec, n_points=25, method="parametric")
    assert exact.method == "exact"
    assert exact.solver == "critical_line"
    assert parametric.method == "parametric"
    assert parametric.solver == "CLARABEL"
    np.testing.assert_allclose(exact.target_returns, parametric.target_returns, atol=1e-7)
    np.testing.assert_allclose(exact.volatilities, parametric.volatilities, atol=1e-7)
    np.testing.assert_allclose(exact.weights, parametric.weights, atol=1e-4)


def test_exact_frontier_points_match_single_target_return_solves() -> None:
    mu, cov = _market(n=10, seed=4)
    bounds = PortfolioConstraints(weight_bounds=(0.02, 0.3))
    frontier = efficient_frontier(
        mu, cov, OptimizeSpec(constraints=bounds), n_points=9, method="exact"
    )
    for target, vol, weights in zip(
        frontier.target_returns[1:], frontier.volatilities[1:], frontier.weights[1:], strict=True
    ):
        plan = optimize_portfolio(
            mu,
            cov,
            OptimizeSpec(objective="target_return", target_return=target, constraints=bounds),
        )
        assert vol == pytest.approx(plan.volatility, abs=1e-8)
        np.testing.assert_allclose(weights, list(plan.weights.values()), atol=1e-5)


def test_exact_plotting_curve_lies_on_the_frontier_between_the_end_points() -> None:
    mu, cov = _market()
    exact = efficient_frontier(mu, cov, n_points=3, method="exact")
    curve_r, curve_v = np.array(exact.curve_returns), np.array(exact.curve_volatilities)
    assert len(curve_r) > 10 * len(exact.corner_returns) - 20
    assert np.all(np.diff(curve_r) >= 0)
    assert curve_r[0] == pytest.approx(exact.expected_returns[0])
    assert curve_r[-1] == pytest.approx(exact.expected_returns[-1])
    picks = [3, len(curve_r) // 2, len(curve_r) - 4]
    check = efficient_frontier(mu, cov, target_returns=curve_r[picks].tolist(), method="parametric")
    np.testing.assert_allclose(check.volatilities, curve_v[picks], atol=1e-7)
    assert efficient_frontier(mu, cov, n_points=3, method="parametric").curve_returns == []


def test_frontier_runs_from_minimum_variance_to_highest_return() -> None:
    mu, cov = _market()
    frontier = efficient_frontier(mu, cov, n_points=30, method="exact")
    mv = optimize_portfolio(mu, cov, OptimizeSpec(objective="min_variance"))
    assert frontier.volatilities[0] == pytest.approx(mv.volatility, abs=1e-8)
    assert frontier.expected_returns[-1] == pytest.approx(float(mu.max()), abs=1e-12)
    assert np.all(np.diff(frontier.expected_returns) > 0)
    assert np.all(np.diff(frontier.volatilities) > 0)
    weights = np.array(frontier.weights)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    assert weights.min() >= -1e-12
    assert len(frontier.corner_returns) >= 2
    assert frontier.corner_returns[0] == pytest.approx(float(mu.max()))
    for r, v, s in zip(
        frontier.expected_returns, frontier.volatilities, frontier.sharpe_ratios, strict=True
    ):
        assert s == pytest.approx(r / v)


def test_critical_line_corners_satisfy_the_optimality_conditions() -> None:
    mu, cov = _market(n=12, seed=7)
    m, s = mu.to_numpy(), cov.to_numpy()
    lower, upper = np.zeros(12), np.full(12, 0.25)
    lambdas, corners = critical_line(m, s, lower, upper)
    assert lambdas[-1] == 0.0
    assert np.all(np.diff(lambdas) < 0)
    assert len(corners) >= 3
    for lam, w in zip(lambdas, corners, strict=True):
        grad = s @ w - lam * m  # KKT of min w'Sw/2 - lam mu'w s.t. budget and bounds
        free = (w > lower + 1e-9) & (w < upper - 1e-9)
        if not free.any():  # the top corner here: every held asset at its maximum
            continue
        gamma = -float(np.mean(grad[free]))
        np.testing.assert_allclose(grad[free] + gamma, 0.0, atol=1e-10)
        assert np.all(grad[w <= lower + 1e-9] + gamma >= -1e-10)
        assert np.all(grad[w >= upper - 1e-9] + gamma <= 1e-10)


def test_highest_return_portfolio_fills_assets_by_expected_return() -> None:
    mu = np.array([0.05, 0.2, 0.1, 0.15])
    w, last = highest_return_portfolio(mu, np.full(4, 0.1), np.full(4, 0.5))
    np.testing.assert_allclose(w, [0.1, 0.5, 0.1, 0.3])
    assert last == 3


def test_parametric_frontier_respects_sector_limits_and_matches_single_solves() -> None:
    mu, cov = _market()
    names = list(mu.index)
    top3 = list(mu.sort_values(ascending=False).index[:3])
    constraints = PortfolioConstraints(
        sectors={a: "top" for a in top3}, sector_limits={"top": (0.0, 0.5)}
    )
    frontier = efficient_frontier(mu, cov, OptimizeSpec(constraints=constraints), n_points=6)
    assert frontier.method == "parametric"
    frame = frontier.weights_frame()
    assert frame[top3].sum(axis=1).max() <= 0.5 + 1e-7
    assert frame[top3].sum(axis=1).iloc[-1] == pytest.approx(0.5, abs=1e-7)
    target = frontier.target_returns[3]
    plan = optimize_portfolio(
        mu,
        cov,
        OptimizeSpec(objective="target_return", target_return=target, constraints=constraints),
    )
    assert frontier.volatilities[3] == pytest.approx(plan.volatility, abs=1e-7)
    assert list(frame.columns) == names


def test_long_short_frontier_with_leverage_limit_keeps_gross_exposure() -> None:
    mu, cov = _market()
    constraints = PortfolioConstraints(long_only=False, leverage=1.6)
    frontier = efficient_frontier(mu, cov, OptimizeSpec(constraints=constraints), n_points=8)
    gross = np.abs(np.array(frontier.weights)).sum(axis=1)
    assert gross.max() <= 1.6 + 1e-7
    assert gross[-1] == pytest.approx(1.6, abs=1e-6)
    assert frontier.expected_returns[-1] > float(mu.max())  # shorting funds more of the best asset


def test_frontier_with_costs_reports_net_returns() -> None:
    mu, cov = _market()
    constraints = PortfolioConstraints(
        current_weights={"S0": 1.0}, transaction_cost_rate=0.01, max_turnover=1.0
    )
    frontier = efficient_frontier(mu, cov, OptimizeSpec(constraints=constraints), n_points=5)
    w = np.array(frontier.weights)
    start = np.zeros(len(mu))
    start[0] = 1.0
    net = w @ mu.to_numpy() - 0.01 * np.abs(w - start).sum(axis=1)
    np.testing.assert_allclose(frontier.expected_returns, net, atol=1e-12)
    assert np.abs(w - start).sum(axis=1).max() <= 1.0 + 1e-7
    assert any("net of transaction costs" in note for note in frontier.notes)


def test_auto_method_picks_exact_for_bounds_only_and_parametric_otherwise() -> None:
    mu, cov = _market()
    assert efficient_frontier(mu, cov, n_points=5, method="auto").method == "exact"
    spec = OptimizeSpec(
        constraints=PortfolioConstraints(sectors={"S0": "x"}, sector_limits={"x": (0.0, 0.1)})
    )
    assert efficient_frontier(mu, cov, spec, n_points=5, method="auto").method == "parametric"


def test_exact_frontier_handles_short_positions_within_bounds() -> None:
    mu, cov = _market(n=5)
    spec = OptimizeSpec(
        constraints=PortfolioConstraints(long_only=False, weight_bounds=(-0.5, 1.0))
    )
    exact = efficient_frontier(mu, cov, spec, n_points=10, method="exact")
    parametric = efficient_frontier(mu, cov, spec, n_points=10, method="parametric")
    assert min(min(w) for w in exact.weights) == pytest.approx(-0.5)
    np.testing.assert_allclose(exact.volatilities, parametric.volatilities, atol=1e-7)


def test_singular_covariance_fails_exact_and_auto_falls_back_to_parametric() -> None:
    """A and B are perfectly correlated with equal variance but different returns, so both
    come free between their bounds: the KKT rows of the two are the same numbers, and the
    elimination cancels them exactly (an asset that merely copies another, returns included,
    never comes free, and whether roundoff frees it differs between LAPACK builds)."""
    names = ["A", "B", "C"]
    mu = pd.Series([0.12, 0.08, 0.05], index=names)
    cov = pd.DataFrame(
        [[0.04, 0.04, 0.0], [0.04, 0.04, 0.0], [0.0, 0.0, 0.01]], index=names, columns=names
    )
    with pytest.raises(OptimizationError, match="singular"):
        efficient_frontier(mu, cov, n_points=5, method="exact")
    frontier = efficient_frontier(mu, cov, n_points=5, method="auto")
    assert frontier.method == "parametric"
    assert any("critical line failed" in note for note in frontier.notes)
    # the end points are known: all in C-and-A minimum variance, and all in A
    assert frontier.volatilities[-1] == pytest.approx(0.2, abs=1e-6)
    assert frontier.volatilities[0] == pytest.approx(np.sqrt(0.04 * 0.01 / 0.05), abs=1e-6)


def test_exact_method_refuses_constraints_beyond_bounds() -> None:
    mu, cov = _market()
    spec = OptimizeSpec(
        constraints=PortfolioConstraints(sectors={"S0": "x"}, sector_limits={"x": (0.0, 0.1)})
    )
    with pytest.raises(
        InvalidSpecError, match="method='exact' handles the budget and weight bounds only"
    ):
        efficient_frontier(mu, cov, spec, method="exact")


def test_targets_below_minimum_variance_give_it_and_targets_above_the_top_raise() -> None:
    mu, cov = _market()
    for method in ("exact", "parametric"):
        frontier = efficient_frontier(mu, cov, target_returns=[0.0, 0.1], method=method)
        mv = optimize_portfolio(mu, cov, OptimizeSpec(objective="min_variance"))
        assert frontier.volatilities[0] == pytest.approx(mv.volatility, abs=1e-8)
        assert any("below the minimum-variance return" in note for note in frontier.notes)
        with pytest.raises(InfeasiblePortfolioError, match=r"target return 0\.5 is above"):
            efficient_frontier(mu, cov, target_returns=[0.5], method=method)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_points": 1}, "n_points must be an integer >= 2"),
        ({"n_points": 2.5}, "n_points must be an integer >= 2"),
        ({"method": "cla"}, "method must be"),
        ({"target_returns": []}, "non-empty list of finite numbers"),
        ({"target_returns": [float("nan")]}, "non-empty list of finite numbers"),
    ],
)
def test_bad_frontier_arguments_raise_invalid_spec(kwargs: dict[str, object], message: str) -> None:
    mu, cov = _market()
    with pytest.raises(InvalidSpecError, match=message):
        efficient_frontier(mu, cov, **kwargs)  # type: ignore[arg-type]


def test_infeasible_constraints_raise_before_any_frontier_point() -> None:
    mu, cov = _market()
    spec = OptimizeSpec(constraints=PortfolioConstraints(weight_bounds=(0.0, 0.1)))
    with pytest.raises(InfeasiblePortfolioError, match="weight bounds"):
        efficient_frontier(mu, cov, spec)


def test_plot_frontier_writes_a_png_with_marked_portfolios(tmp_path: Path) -> None:
    mu, cov = _market()
    frontier = efficient_frontier(mu, cov, n_points=20, method="exact")
    plan = optimize_portfolio(mu, cov, OptimizeSpec(objective="max_sharpe"))
    path = tmp_path / "frontier.png"
    plot_frontier(
        frontier,
        path,
        portfolios={"max Sharpe": plan, "equal weight": plan.baseline, "point": (0.2, 0.1)},
        title="test",
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100
    assert image.shape[1] > 100


# Published frontiers.

ORLIB = Path("portfolio/orlib")


@pytest.mark.realdata
@pytest.mark.parametrize("k", [1, 2, 3])
def test_reproduces_orlib_long_only_frontier_variances(data_dir: Path, k: int) -> None:
    from nqba.finance.orlib import read_orlib_frontier, read_orlib_portfolio

    port = read_orlib_portfolio(data_dir / ORLIB / f"port{k}.txt")
    returns, variances = read_orlib_frontier(data_dir / ORLIB / f"portef{k}.txt")
    picks = np.linspace(0, len(returns) - 1, 9).astype(int)  # spread along the file
    for method in ("exact", "parametric"):
        frontier = efficient_frontier(
            port.mu,
            port.cov,
            target_returns=returns[picks].tolist(),
            method=method,
        )
        ours = np.array(frontier.volatilities) ** 2
        np.testing.assert_allclose(ours, variances[picks], rtol=2.5e-5, err_msg=method)
    # The exact frontier reproduces all 2000 points of the file.
    frontier = efficient_frontier(
        port.mu, port.cov, target_returns=returns.tolist(), method="exact"
    )
    np.testing.assert_allclose(np.array(frontier.volatilities) ** 2, variances, rtol=2.5e-5)


@pytest.mark.realdata
def test_matches_skfolio_frontier_range_on_sp500(data_dir: Path) -> None:
    from nqba.finance.estimators import covariance, expected_returns

    prices = pd.read_csv(
        data_dir / "portfolio/prices/sp500_20assets_1990_2022.csv", index_col=0, parse_dates=True
    )
    mu, cov = expected_returns(prices, "arithmetic"), covariance(prices, "sample")
    for method in ("exact", "parametric"):
        frontier = efficient_frontier(mu, cov, n_points=50, method=method)
        # skfolio 1.12.2 50-point frontier: ann. mean 0.147971-0.320117, vol 0.159818-0.504521.
        assert round(frontier.expected_returns[-1], 6) == 0.320117
        assert frontier.volatilities[-1] == pytest.approx(0.504521, abs=1e-6)
        assert frontier.volatilities[0] == pytest.approx(0.159804, abs=1e-6)  # min variance
        at_low_end = efficient_frontier(mu, cov, target_returns=[0.147971], method=method)
        assert at_low_end.volatilities[0] == pytest.approx(0.159818, abs=1e-6)


@pytest.mark.realdata
def test_frontier_reproduces_pypfopt_efficient_return(data_dir: Path) -> None:
    from nqba.finance.estimators import covariance, expected_returns

    prices = pd.read_csv(
        data_dir / "portfolio/prices/pypfopt_stock_prices_1989_2018.csv",
        index_col=0,
        parse_dates=True,
    )
    mu, cov = expected_returns(prices, "cagr"), covariance(prices, "sample")
    for method in ("exact", "parametric"):
        frontier = efficient_frontier(mu, cov, target_returns=[0.25], method=method)
        assert frontier.volatilities[0] == pytest.approx(0.18723269942026335, abs=1e-6)
    exact = efficient_frontier(mu, cov, n_points=50, method="exact")
    assert exact.volatilities[0] == pytest.approx(0.15915084514118694, abs=1e-8)  # min volatility
