"""Expected returns and covariances against independent numpy formulas and published figures."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nqba.finance.data import load_prices
from nqba.finance.errors import InvalidDataError, InvalidSpecError
from nqba.finance.estimators import (
    NonPsdCovarianceWarning,
    covariance,
    expected_returns,
    repair_psd,
)

PRICES = Path("portfolio") / "prices"


def _cvxpy() -> Any:
    """cvxpy, imported only by the realdata tests that need it (its typed exports trip mypy)."""
    return importlib.import_module("cvxpy")


def _prices_from_returns(returns: np.ndarray, start: float = 100.0) -> pd.DataFrame:
    """Prices whose simple returns are ``returns`` (NaN = no price; leading/trailing only)."""
    rows, cols = returns.shape
    prices = np.full((rows + 1, cols), np.nan)
    for j in range(cols):
        valid = np.flatnonzero(~np.isnan(returns[:, j]))
        first, last = valid[0], valid[-1]
        prices[first, j] = start
        prices[first + 1 : last + 2, j] = start * np.cumprod(1.0 + returns[first : last + 1, j])
    index = pd.bdate_range("2020-01-01", periods=rows + 1)
    return pd.DataFrame(prices, index=index, columns=[f"S{j}" for j in range(cols)])


@pytest.fixture
def late_listed() -> tuple[pd.DataFrame, np.ndarray]:
    """Three assets, 300 days; S2 lists on day 120. Returns (prices, returns with NaN)."""
    rng = np.random.default_rng(7)
    cov = np.array([[1.0, 0.3, 0.2], [0.3, 2.0, -0.4], [0.2, -0.4, 1.5]]) * 1e-4
    returns = rng.multivariate_normal([5e-4, 2e-4, 8e-4], cov, size=300)
    returns[:120, 2] = np.nan
    return _prices_from_returns(returns), returns


def _pairwise_cov(returns: np.ndarray) -> np.ndarray:
    n = returns.shape[1]
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            both = ~np.isnan(returns[:, i]) & ~np.isnan(returns[:, j])
            out[i, j] = np.cov(returns[both, i], returns[both, j], ddof=1)[0, 1]
    return out


def test_arithmetic_mean_is_own_history_mean_times_periods(
    late_listed: tuple[pd.DataFrame, np.ndarray],
) -> None:
    prices, returns = late_listed
    mu = expected_returns(prices, "arithmetic", periods_per_year=252)
    expected = [np.mean(returns[~np.isnan(returns[:, j]), j]) * 252 for j in range(3)]
    np.testing.assert_allclose(mu.to_numpy(), expected, rtol=1e-12)
    assert list(mu.index) == ["S0", "S1", "S2"]


def test_cagr_compounds_over_each_assets_own_returns(
    late_listed: tuple[pd.DataFrame, np.ndarray],
) -> None:
    prices, returns = late_listed
    mu = expected_returns(prices, "cagr", periods_per_year=12)
    for j in range(3):
        own = returns[~np.isnan(returns[:, j]), j]
        growth = prices.iloc[-1, j] / prices.iloc[:, j].dropna().iloc[0]
        assert mu.iloc[j] == pytest.approx(growth ** (12 / own.size) - 1, rel=1e-10)
        assert mu.iloc[j] == pytest.approx(np.prod(1 + own) ** (12 / own.size) - 1, rel=1e-10)


def test_ewma_weights_decay_by_row_position(
    late_listed: tuple[pd.DataFrame, np.ndarray],
) -> None:
    prices, returns = late_listed
    span = 60
    mu = expected_returns(prices, "ewma", span=span, periods_per_year=252)
    alpha = 2 / (span + 1)
    age = np.arange(returns.shape[0])[::-1]  # newest row age 0
    for j in range(3):
        valid = ~np.isnan(returns[:, j])
        w = (1 - alpha) ** age[valid]
        assert mu.iloc[j] == pytest.approx(252 * w @ returns[valid, j] / w.sum(), rel=1e-10)


def test_ewma_with_short_span_follows_recent_returns() -> None:
    returns = np.column_stack([np.r_[np.full(50, -0.01), np.full(50, 0.01)], np.full(100, 0.0)])
    mu = expected_returns(_prices_from_returns(returns), "ewma", span=5, periods_per_year=1)
    assert mu.iloc[0] == pytest.approx(0.01, rel=1e-6)


def test_sample_covariance_is_pairwise_and_annualised(
    late_listed: tuple[pd.DataFrame, np.ndarray],
) -> None:
    prices, returns = late_listed
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonPsdCovarianceWarning)
        cov = covariance(prices, "sample", periods_per_year=252)
    np.testing.assert_allclose(cov.to_numpy(), _pairwise_cov(returns) * 252, rtol=1e-10)
    assert list(cov.index) == list(cov.columns) == ["S0", "S1", "S2"]


def _ledoit_wolf(x: np.ndarray) -> np.ndarray:
    """Ledoit and Wolf (2004), shrinkage of the MLE covariance towards mu * I, in numpy."""
    n, p = x.shape
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / n
    mu = np.trace(s) / p
    d2 = np.sum((s - mu * np.eye(p)) ** 2)
    b2_bar = sum(np.sum((np.outer(row, row) - s) ** 2) for row in xc) / n**2
    shrink = float(min(b2_bar, d2) / d2)
    return np.asarray(shrink * mu * np.eye(p) + (1 - shrink) * s)


def test_ledoit_wolf_uses_complete_rows_and_matches_the_published_formula(
    late_listed: tuple[pd.DataFrame, np.ndarray],
) -> None:
    prices, returns = late_listed
    cov = covariance(prices, "ledoit_wolf", periods_per_year=252)
    complete = returns[~np.isnan(returns).any(axis=1)]
    assert complete.shape[0] == 180
    np.testing.assert_allclose(cov.to_numpy(), _ledoit_wolf(complete) * 252, rtol=1e-9)
    mle = np.cov(complete, rowvar=False, ddof=0) * 252
    shrinkage = 1 - cov.iloc[0, 1] / mle[0, 1]
    assert 0.05 < shrinkage < 1  # it did shrink (0.109 here), so the formula is exercised


def test_ledoit_wolf_shrinks_a_few_days_of_many_assets_towards_the_identity() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0, 0.01, size=(15, 10))
    prices = _prices_from_returns(returns)
    lw = covariance(prices, "ledoit_wolf").to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonPsdCovarianceWarning)
        sample = covariance(prices, "sample").to_numpy()
    off = ~np.eye(10, dtype=bool)
    assert np.abs(lw[off]).sum() < np.abs(sample[off]).sum()
    assert np.linalg.eigvalsh(lw).min() > 0


def _non_psd_returns() -> np.ndarray:
    """A tracks B, C mirrors A, but on the few days B and C share they move together."""
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.01, 60)
    r = np.column_stack([a, a + rng.normal(0, 0.001, 60), -a + rng.normal(0, 0.001, 60)])
    r[25:31, 1] = rng.normal(0, 0.03, 6)
    r[25:31, 2] = r[25:31, 1]
    r[31:, 1] = np.nan  # B ends
    r[:25, 2] = np.nan  # C lists late
    return r


def test_pairwise_sample_covariance_that_is_not_psd_is_clipped_with_a_warning() -> None:
    returns = _non_psd_returns()
    raw = _pairwise_cov(returns) * 252
    values, vectors = np.linalg.eigh(raw)
    assert values.min() < 0  # the pairwise estimate really is indefinite
    with pytest.warns(NonPsdCovarianceWarning, match="not positive semidefinite") as record:
        cov = covariance(_prices_from_returns(returns), "sample")
    warning = record[0].message
    assert isinstance(warning, NonPsdCovarianceWarning)
    assert warning.min_eigenvalue == pytest.approx(values.min(), rel=1e-9)
    assert warning.num_negative == 1
    expected = vectors @ np.diag(np.clip(values, 0, None)) @ vectors.T
    np.testing.assert_allclose(cov.to_numpy(), expected, rtol=1e-9, atol=1e-15)
    assert warning.frobenius_change == pytest.approx(np.linalg.norm(expected - raw), rel=1e-6)
    assert warning.frobenius_change == pytest.approx(-values.min(), rel=1e-6)
    assert np.linalg.eigvalsh(cov.to_numpy()).min() > -1e-12 * values.max()


def test_repair_psd_returns_psd_input_unchanged_without_warning() -> None:
    matrix = np.array([[2.0, 0.5], [0.5, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert repair_psd(matrix) is matrix
        frame = pd.DataFrame(matrix, index=["x", "y"], columns=["x", "y"])
        assert repair_psd(frame) is frame


def test_repair_psd_keeps_labels_and_reports_the_change() -> None:
    matrix = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    frame = pd.DataFrame(matrix, index=list("abc"), columns=list("abc"))
    with pytest.warns(NonPsdCovarianceWarning, match=r"most negative -0\.8"):
        fixed = repair_psd(frame)
    assert isinstance(fixed, pd.DataFrame)
    assert list(fixed.index) == list("abc")
    assert np.linalg.eigvalsh(fixed.to_numpy()).min() > -1e-12


def test_repair_psd_refuses_asymmetric_and_non_square_matrices() -> None:
    with pytest.raises(InvalidDataError, match="not symmetric"):
        repair_psd(np.array([[1.0, 0.5], [0.1, 1.0]]))
    with pytest.raises(InvalidDataError, match="square"):
        repair_psd(np.ones((2, 3)))
    with pytest.raises(InvalidDataError, match="NaN"):
        repair_psd(np.array([[1.0, np.nan], [np.nan, 1.0]]))


def test_numpy_prices_get_positional_names() -> None:
    prices = np.array([[1.0, 2.0], [1.1, 2.2], [1.21, 2.2]])
    mu = expected_returns(prices, "arithmetic", periods_per_year=1)
    assert list(mu.index) == ["A0", "A1"]
    np.testing.assert_allclose(mu.to_numpy(), [0.1, 0.05])


def test_unknown_methods_and_bad_prices_are_refused() -> None:
    prices = pd.DataFrame({"A": [1.0, 2.0, 3.0], "B": [1.0, 1.5, 2.0]})
    with pytest.raises(InvalidSpecError, match="cagr"):
        expected_returns(prices, "geometric")  # type: ignore[arg-type]
    with pytest.raises(InvalidSpecError, match="ledoit_wolf"):
        covariance(prices, "shrunk")  # type: ignore[arg-type]
    with pytest.raises(InvalidDataError, match="positive"):
        expected_returns(pd.DataFrame({"A": [1.0, 0.0, 1.0], "B": [1.0, 1.0, 1.0]}))
    with pytest.raises(InvalidDataError, match="'B'"):
        expected_returns(pd.DataFrame({"A": [1.0, 2.0, 3.0], "B": [np.nan, np.nan, 1.0]}))


def test_covariance_refuses_assets_without_shared_days() -> None:
    returns = np.full((10, 2), np.nan)
    returns[:5, 0] = 0.01 * np.arange(5)
    returns[6:, 1] = 0.02 * np.arange(4)
    with pytest.raises(InvalidDataError, match="share fewer than two days"):
        covariance(_prices_from_returns(returns))
    with pytest.raises(InvalidDataError, match="Ledoit-Wolf needs"):
        covariance(_prices_from_returns(returns), "ledoit_wolf")


@pytest.mark.realdata
def test_cagr_and_sample_cov_reproduce_pypfopt_min_volatility(data_dir: Path) -> None:
    """PyPortfolioOpt's published min_volatility() tuple, with our estimators and cvxpy."""
    cp = _cvxpy()
    prices = load_prices(data_dir / PRICES / "pypfopt_stock_prices_1989_2018.csv").prices
    mu = expected_returns(prices, "cagr")
    cov = covariance(prices, "sample")
    w = cp.Variable(len(mu))
    problem = cp.Problem(
        cp.Minimize(cp.quad_form(w, cp.psd_wrap(cov.to_numpy()))), [cp.sum(w) == 1, w >= 0]
    )
    problem.solve(solver=cp.CLARABEL)
    weights = np.asarray(w.value)
    ret = float(mu.to_numpy() @ weights)
    vol = float(np.sqrt(weights @ cov.to_numpy() @ weights))
    published = (0.15056821399482578, 0.15915084514118694, 0.8204054077060996)
    assert ret == pytest.approx(published[0], abs=1e-5)
    assert vol == pytest.approx(published[1], abs=1e-5)
    assert (ret - 0.02) / vol == pytest.approx(published[2], abs=1e-5)


@pytest.mark.realdata
def test_estimators_equal_pypfopt_functions_on_late_listed_prices(data_dir: Path) -> None:
    """Same numbers as pypfopt's mean_historical_return, sample_cov, ema (arithmetic)."""
    from pypfopt import expected_returns as pypfopt_returns
    from pypfopt import risk_models

    path = data_dir / PRICES / "pypfopt_stock_prices_1989_2018.csv"
    raw = pd.read_csv(path, parse_dates=True, index_col=0)
    prices = load_prices(path).prices
    pd.testing.assert_series_equal(
        expected_returns(prices, "cagr"),
        pypfopt_returns.mean_historical_return(raw),
        check_names=False,
        rtol=1e-12,
    )
    pd.testing.assert_series_equal(
        expected_returns(prices, "ewma", span=500),
        pypfopt_returns.ema_historical_return(raw, span=500, compounding=False),
        check_names=False,
        rtol=1e-12,
    )
    pd.testing.assert_frame_equal(
        covariance(prices, "sample"), risk_models.sample_cov(raw), check_names=False, rtol=1e-12
    )
