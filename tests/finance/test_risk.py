"""Risk figures against hand-computed values, independent numpy formulas and measured figures."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nqba.finance.data import load_prices, simple_returns
from nqba.finance.errors import InvalidDataError, InvalidSpecError
from nqba.finance.estimators import covariance, expected_returns
from nqba.finance.risk import (
    RiskReport,
    annualized_volatility,
    assess_risk,
    beta,
    correlation,
    historical_cvar,
    historical_var,
    max_drawdown,
    parametric_cvar,
    parametric_var,
    portfolio_returns,
    risk_contributions,
    sharpe_ratio,
    sortino_ratio,
    worst_periods,
)

PRICES = Path("portfolio") / "prices"


def _cvxpy() -> Any:
    """cvxpy, imported only by the realdata tests that need it (its typed exports trip mypy)."""
    return importlib.import_module("cvxpy")


Z_95 = 1.6448536269514722  # standard normal 95 % quantile (tables)
PDF_Z_95 = 0.10313564037537128  # standard normal density at Z_95


@pytest.fixture
def asset_returns() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    cov = np.array([[1.0, 0.4, 0.1], [0.4, 1.5, 0.2], [0.1, 0.2, 0.8]]) * 1e-4
    values = rng.multivariate_normal([4e-4, 3e-4, 1e-4], cov, size=400)
    frame = pd.DataFrame(
        values, index=pd.bdate_range("2021-01-04", periods=400), columns=list("XYZ")
    )
    frame.iloc[:30, 2] = np.nan  # Z lists late
    return frame


def test_portfolio_returns_are_the_weighted_sum_and_skip_unlisted_days(
    asset_returns: pd.DataFrame,
) -> None:
    weights = pd.Series({"X": 0.5, "Z": 0.5})
    r = portfolio_returns(asset_returns, weights)
    assert len(r) == 370  # the 30 days before Z lists are left out
    expected = 0.5 * asset_returns["X"].iloc[30:] + 0.5 * asset_returns["Z"].iloc[30:]
    np.testing.assert_allclose(r.to_numpy(), expected.to_numpy(), rtol=1e-14)
    only_x = portfolio_returns(asset_returns, pd.Series({"X": 1.0}))
    assert len(only_x) == 400  # an unheld asset's missing days do not matter


def test_portfolio_returns_refuse_unknown_assets(asset_returns: pd.DataFrame) -> None:
    with pytest.raises(InvalidDataError, match="'Q'"):
        portfolio_returns(asset_returns, pd.Series({"X": 0.5, "Q": 0.5}))
    with pytest.raises(InvalidDataError, match="zero"):
        portfolio_returns(asset_returns, pd.Series({"X": 0.0}))


def test_volatility_sharpe_and_sortino_follow_their_stated_formulas() -> None:
    r = pd.Series([0.02, -0.01, 0.03, -0.02])
    std = np.std(r.to_numpy(), ddof=1)
    assert annualized_volatility(r) == pytest.approx(std * math.sqrt(252), rel=1e-14)
    assert sharpe_ratio(r, risk_free_rate=0.1) == pytest.approx(
        (0.005 * 252 - 0.1) / (std * math.sqrt(252)), rel=1e-12
    )
    downside = math.sqrt((0.01**2 + 0.02**2) / 4 * 252)  # mean over all 4 periods
    assert sortino_ratio(r) == pytest.approx(0.005 * 252 / downside, rel=1e-12)
    target = 0.0252 / 252  # per-period risk-free rate
    shortfall = np.minimum(r.to_numpy() - target, 0)
    assert sortino_ratio(r, risk_free_rate=0.0252) == pytest.approx(
        (0.005 * 252 - 0.0252) / math.sqrt(np.mean(shortfall**2) * 252), rel=1e-12
    )


def test_sortino_without_losses_is_infinite_and_flat_sharpe_is_refused() -> None:
    assert sortino_ratio(pd.Series([0.01, 0.02, 0.0])) == math.inf
    with pytest.raises(InvalidDataError, match="zero volatility"):
        sharpe_ratio(pd.Series([0.01, 0.01, 0.01]))


def test_max_drawdown_compounded_and_uncompounded_by_hand() -> None:
    r = pd.Series([0.1, -0.2, 0.05, -0.1, 0.3])
    # wealth 1, 1.1, 0.88, 0.924, 0.8316, 1.08108: worst 1 - 0.8316 / 1.1
    assert max_drawdown(r, compounded=True) == pytest.approx(1 - 0.8316 / 1.1, rel=1e-12)
    # cumulative sums 0, .1, -.1, -.05, -.15, .15: worst .1 - (-.15)
    assert max_drawdown(r, compounded=False) == pytest.approx(0.25, rel=1e-12)


def test_max_drawdown_counts_a_loss_from_the_starting_value() -> None:
    r = pd.Series([-0.1, 0.05])
    assert max_drawdown(r, compounded=True) == pytest.approx(0.1)
    assert max_drawdown(r, compounded=False) == pytest.approx(0.1)
    assert max_drawdown(pd.Series([0.01, 0.02]), compounded=True) == 0.0


def test_historical_var_interpolates_and_cvar_averages_the_worst_ceil_tail() -> None:
    r = pd.Series(-np.arange(1, 21) / 100.0).sample(frac=1.0, random_state=1)
    # numpy linear quantile at 0.05 of 20 points: position 0.95 between -0.20 and -0.19
    assert historical_var(r, 0.95) == pytest.approx(0.1905, rel=1e-12)
    assert historical_var(r, 0.90) == pytest.approx(0.181, rel=1e-12)
    assert historical_cvar(r, 0.95) == pytest.approx(0.20, rel=1e-12)  # ceil(1) = 1 worst
    # (1 - 0.9) * 20 is 2.0000000000000004 in floating point; the tail is still 2 returns
    assert historical_cvar(r, 0.90) == pytest.approx(0.195, rel=1e-12)
    assert historical_cvar(r, 0.96) == pytest.approx(0.20, rel=1e-12)  # ceil(0.8) = 1


def test_parametric_var_and_cvar_use_normal_quantile_with_sample_moments() -> None:
    r = pd.Series([0.01, -0.01, 0.02, -0.02, 0.005])
    mean, std = float(np.mean(r)), float(np.std(r, ddof=1))
    assert parametric_var(r, 0.95) == pytest.approx(-(mean - std * Z_95), rel=1e-12)
    assert parametric_cvar(r, 0.95) == pytest.approx(-(mean - std * PDF_Z_95 / 0.05), rel=1e-12)


def test_levels_outside_zero_one_are_refused() -> None:
    r = pd.Series([0.01, -0.01])
    for level in (0.0, 1.0, 95.0):
        with pytest.raises(InvalidSpecError):
            historical_var(r, level)


def test_series_with_missing_values_are_refused_with_the_first_position() -> None:
    with pytest.raises(InvalidDataError, match="missing value"):
        historical_var(pd.Series([0.01, np.nan, 0.02]))


def test_beta_and_correlation_use_only_shared_dates() -> None:
    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2022-01-03", periods=250)
    market = pd.Series(rng.normal(0, 0.01, 250), index=dates)
    asset = (1.3 * market + rng.normal(0, 0.004, 250)).iloc[50:]
    shuffled = market.sample(frac=1.0, random_state=2)  # order must not matter
    shared = market.iloc[50:].to_numpy()
    expected = np.cov(asset.to_numpy(), shared, ddof=1)[0, 1] / np.var(shared, ddof=1)
    assert beta(asset, shuffled) == pytest.approx(expected, rel=1e-12)
    assert correlation(asset, shuffled) == pytest.approx(
        np.corrcoef(asset.to_numpy(), shared)[0, 1], rel=1e-12
    )
    assert 1.2 < beta(asset, market) < 1.4


def test_beta_refuses_series_without_shared_dates() -> None:
    a = pd.Series([0.01, 0.02, 0.03], index=pd.bdate_range("2022-01-03", periods=3))
    b = pd.Series([0.01, 0.02, 0.03])
    with pytest.raises(InvalidDataError, match="share 0 date"):
        beta(a, b)


def test_risk_contributions_sum_to_volatility_and_fractions_to_one() -> None:
    cov = pd.DataFrame(
        [[0.04, 0.01, 0.0, 0.02], [0.01, 0.09, 0.02, 0.0], [0.0, 0.02, 0.16, 0.0],
         [0.02, 0.0, 0.0, 0.05]],
        index=list("ABCD"),
        columns=list("ABCD"),
    )  # fmt: skip
    w = pd.Series({"A": 0.5, "B": 0.3, "C": 0.2})  # D not held
    rc = risk_contributions(w, cov)
    full = np.array([0.5, 0.3, 0.2, 0.0])
    c = cov.to_numpy()
    vol = math.sqrt(full @ c @ full)
    np.testing.assert_allclose(rc.to_numpy(), full * (c @ full) / vol, rtol=1e-14)
    assert rc.sum() == pytest.approx(vol, rel=1e-14)
    assert rc["D"] == 0.0
    fraction = risk_contributions(w, cov, fractional=True)
    assert fraction.sum() == pytest.approx(1.0, rel=1e-14)


def test_equal_weights_on_identical_independent_assets_share_risk_equally() -> None:
    rc = risk_contributions(np.array([0.25] * 4), np.eye(4) * 0.04, fractional=True)
    np.testing.assert_allclose(rc.to_numpy(), [0.25] * 4)
    assert list(rc.index) == ["A0", "A1", "A2", "A3"]


def test_worst_periods_are_disjoint_compounded_windows_worst_first() -> None:
    r = pd.Series([0.01, -0.05, -0.04, 0.02, -0.03, 0.01], index=list("abcdef"))
    table = worst_periods(r, n=3, window=2)
    # windows: ab -0.0405, bc -0.088, cd -0.0208, de -0.0106, ef -0.0203; bc then ef are
    # the only disjoint ones, so 2 rows come back although 3 were asked for
    assert table["start"].tolist() == ["b", "e"]
    assert table["end"].tolist() == ["c", "f"]
    np.testing.assert_allclose(table["compounded_return"], [0.95 * 0.96 - 1, 0.97 * 1.01 - 1])
    daily = worst_periods(r, n=2)
    assert daily["start"].tolist() == ["b", "c"]
    assert daily["compounded_return"].tolist() == [-0.05, -0.04]


def test_worst_periods_refuse_a_window_longer_than_the_series() -> None:
    with pytest.raises(InvalidDataError, match="longer"):
        worst_periods(pd.Series([0.01, 0.02]), window=3)


def test_assess_risk_report_matches_each_function_and_reconciles(
    asset_returns: pd.DataFrame,
) -> None:
    weights = pd.Series({"X": 0.5, "Y": 0.3, "Z": 0.2})
    bench = asset_returns["X"] * 0.9 + asset_returns["Y"] * 0.1
    report = assess_risk(asset_returns, weights, benchmark=bench, risk_free_rate=0.01)
    assert isinstance(report, RiskReport)
    r = portfolio_returns(asset_returns, weights)
    assert report.periods == 370
    assert report.periods_left_out == 30
    assert report.start == "2021-02-15"
    assert report.volatility_annualized == annualized_volatility(r)
    assert report.sharpe_ratio_annualized == sharpe_ratio(r, risk_free_rate=0.01)
    assert report.sortino_ratio_annualized == sortino_ratio(r, risk_free_rate=0.01)
    assert report.var_historical_one_period == historical_var(r)
    assert report.cvar_historical_one_period == historical_cvar(r)
    assert report.var_parametric_normal_one_period == parametric_var(r)
    assert report.cvar_parametric_normal_one_period == parametric_cvar(r)
    assert report.max_drawdown_compounded == max_drawdown(r, compounded=True)
    assert report.max_drawdown_uncompounded == max_drawdown(r, compounded=False)
    assert report.beta_to_benchmark == beta(r, bench)
    assert report.benchmark_periods == 370
    assert report.mean_return_annualized_arithmetic == pytest.approx(r.mean() * 252)
    assert report.return_annualized_compound == pytest.approx(
        np.prod(1 + r.to_numpy()) ** (252 / 370) - 1
    )
    contributions = report.risk_contribution_annualized
    assert sum(contributions.values()) == pytest.approx(report.volatility_annualized, rel=1e-12)
    assert sum(report.risk_contribution_fraction.values()) == pytest.approx(1.0, rel=1e-12)
    assert report.worst_periods_one_period[0].compounded_return == r.min()
    assert any("left out 30" in n for n in report.notes)
    json.loads(report.model_dump_json())  # serialisable for the API


def test_assess_risk_without_benchmark_leaves_beta_empty_and_notes_weight_sum(
    asset_returns: pd.DataFrame,
) -> None:
    report = assess_risk(asset_returns, pd.Series({"X": 0.6, "Y": 0.3}))
    assert report.beta_to_benchmark is None
    assert report.correlation_to_benchmark is None
    assert report.weights_sum == pytest.approx(0.9)
    assert any("sum to 0.9" in n for n in report.notes)


# Real data: skfolio's max-Sharpe portfolio on sp500_20assets (figures in the prices README).
README_MAX_SHARPE_WEIGHTS = {
    "UNH": 0.2149, "MSFT": 0.1369, "JNJ": 0.1252, "PG": 0.1043, "AAPL": 0.1015, "BBY": 0.0988,
    "PEP": 0.0695, "HD": 0.0550, "RRC": 0.0525, "LLY": 0.0397, "AMD": 0.0009, "WMT": 0.0007,
}  # fmt: skip
README_FIGURES = {  # measured with skfolio's unrounded weights (prices README)
    "var95": 0.018309,
    "cvar95": 0.028004,
    "drawdown_uncompounded": 0.589822,
    "drawdown_compounded": 0.482084,
    "beta": 0.904248,
}


def _sp500(data_dir: Path) -> tuple[pd.DataFrame, pd.Series]:
    assets = load_prices(data_dir / PRICES / "sp500_20assets_1990_2022.csv").prices
    index = load_prices(data_dir / PRICES / "sp500_index_1990_2022.csv", min_assets=1).prices
    return assets, simple_returns(index)["SP500"]


@pytest.mark.realdata
def test_readme_max_sharpe_weights_reproduce_risk_figures_within_rounding(
    data_dir: Path,
) -> None:
    """The README weights are rounded to 4 decimals and sum to 0.9999, used as given.

    Measured here, rounding moves the figures by at most 3.3e-4 relative (VaR 0.0183033 vs
    0.018309; CVaR 0.0280021, drawdowns 0.5898087 and 0.4820735, beta 0.9041856), so the
    tolerance is 1e-3 relative.
    """
    assets, market = _sp500(data_dir)
    report = assess_risk(
        simple_returns(assets), pd.Series(README_MAX_SHARPE_WEIGHTS), benchmark=market
    )
    assert report.periods == 8312
    rel = 1e-3
    assert report.var_historical_one_period == pytest.approx(README_FIGURES["var95"], rel=rel)
    assert report.cvar_historical_one_period == pytest.approx(README_FIGURES["cvar95"], rel=rel)
    assert report.max_drawdown_uncompounded == pytest.approx(
        README_FIGURES["drawdown_uncompounded"], rel=rel
    )
    assert report.max_drawdown_compounded == pytest.approx(
        README_FIGURES["drawdown_compounded"], rel=rel
    )
    assert report.beta_to_benchmark == pytest.approx(README_FIGURES["beta"], rel=rel)


@pytest.mark.realdata
def test_exact_max_sharpe_weights_reproduce_skfolio_risk_figures(data_dir: Path) -> None:
    """Max Sharpe (mean x 252, sample cov x 252, rf 0, long-only) solved here with cvxpy.

    Its Sharpe ratio is skfolio's to the printed precision (1.151219); its mean 0.2299289 and
    vol 0.1997264 differ from skfolio's 0.229926 and 0.199724 by 2.9e-6 and 2.4e-6, the
    optimum being flat. skfolio's own weights carry its solver's error (the README finds
    pyportfolioopt's within 3.4e-5 of them). Measured here, this optimum (it agrees to 5e-8
    with the solution of the KKT system on its 12-asset support) gives VaR95 0.0183061 (2.9e-6
    from the README), CVaR95 0.0280039, drawdowns 0.5898526 (3.1e-5 from 0.589822) and
    0.4821004 (1.6e-5), beta 0.9042659 (1.8e-5). Hence 1e-5 for VaR and CVaR and 5e-5 for the
    drawdowns and beta, which follow the weights more closely.
    """
    cp = _cvxpy()
    assets, market = _sp500(data_dir)
    mu = expected_returns(assets, "arithmetic").to_numpy()
    cov = covariance(assets, "sample").to_numpy()
    y = cp.Variable(len(mu))
    problem = cp.Problem(cp.Minimize(cp.quad_form(y, cp.psd_wrap(cov))), [mu @ y == 1, y >= 0])
    problem.solve(solver=cp.CLARABEL)
    raw = np.clip(np.asarray(y.value), 0.0, None)
    weights = pd.Series(raw / raw.sum(), index=assets.columns)
    # Sharpe is flat at its maximum: skfolio's point sits 2.9e-6 lower in mean, 2.4e-6 in vol
    assert float(mu @ weights) == pytest.approx(0.229926, abs=5e-6)
    assert math.sqrt(weights @ cov @ weights) == pytest.approx(0.199724, abs=5e-6)
    rounded = weights[weights > 1e-4].round(4)
    assert rounded.to_dict() == pytest.approx(README_MAX_SHARPE_WEIGHTS, abs=1.01e-4)

    report = assess_risk(simple_returns(assets), weights, benchmark=market)
    assert report.sharpe_ratio_annualized == pytest.approx(1.151219, abs=1e-6)
    assert report.var_historical_one_period == pytest.approx(README_FIGURES["var95"], abs=1e-5)
    assert report.cvar_historical_one_period == pytest.approx(README_FIGURES["cvar95"], abs=1e-5)
    assert report.max_drawdown_uncompounded == pytest.approx(
        README_FIGURES["drawdown_uncompounded"], abs=5e-5
    )
    assert report.max_drawdown_compounded == pytest.approx(
        README_FIGURES["drawdown_compounded"], abs=5e-5
    )
    assert report.beta_to_benchmark == pytest.approx(README_FIGURES["beta"], abs=5e-5)
