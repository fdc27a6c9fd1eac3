"""Walk-forward backtest: past-only windows, costs, drift, late listings, metrics, baselines."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from nqba.finance.backtest import BacktestResult, equal_weight_strategy, walk_forward
from nqba.finance.errors import FinanceError, InvalidDataError, InvalidSpecError


def _prices(rows: int = 120, assets: int = 4, seed: int = 0) -> pd.DataFrame:
    """Geometric random walks with business-day dates."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0004, 0.015, size=(rows, assets))
    levels = 50.0 * np.exp(np.cumsum(steps, axis=0))
    dates = pd.bdate_range("2020-01-01", periods=rows)
    return pd.DataFrame(levels, index=dates, columns=[f"S{i}" for i in range(assets)])


def _numpy_equal_weight(
    prices: np.ndarray, *, window: int, every: int, fee: float, initial: float
) -> np.ndarray:
    """Equal weight over fully-priced assets, in shares, each cost solved by root finding."""
    rows, assets = prices.shape
    t0 = window - 1
    curve = np.full(rows, np.nan)
    curve[t0] = initial
    shares = np.zeros(assets)
    cash = initial
    rebalances = list(range(t0, rows - 1, every))
    for k, row in enumerate(rebalances):
        held = np.nan_to_num(shares * prices[row])
        before = cash + held.sum()
        offered = ~np.isnan(prices[row - window + 1 : row + 1]).any(axis=0)
        target = offered / offered.sum()

        def gap(
            after: float,
            held: np.ndarray = held,
            target: np.ndarray = target,
            before: float = before,
        ) -> float:
            return float(after - before + fee * np.abs(target * after - held).sum())

        after = brentq(gap, 0.0, before, xtol=1e-14, rtol=1e-15) if fee else before
        shares = np.where(offered, target * after / np.where(offered, prices[row], 1.0), 0.0)
        cash = 0.0
        if k:
            curve[row] = after
        end = rebalances[k + 1] if k + 1 < len(rebalances) else rows - 1
        for t in range(row + 1, end + 1):
            curve[t] = float(np.nansum(shares * prices[t]))
    return curve[t0:]


def test_constant_weights_rebalanced_every_period_earn_the_weighted_return() -> None:
    prices = _prices()
    weights = pd.Series([0.4, 0.3, 0.2, 0.1], index=prices.columns)
    result = walk_forward(prices, lambda w: weights, window=5, rebalance_every=1)
    asset_returns = prices.pct_change().iloc[5:].to_numpy()
    expected = asset_returns @ weights.to_numpy()
    np.testing.assert_allclose(result.returns()["strategy"].to_numpy(), expected, atol=1e-13)


def test_equal_weight_matches_independent_share_simulation_with_fees() -> None:
    prices = _prices(rows=150, assets=5, seed=3)
    result = walk_forward(
        prices, equal_weight_strategy, window=10, rebalance_every=7, fee_rate=0.002
    )
    expected = _numpy_equal_weight(prices.to_numpy(), window=10, every=7, fee=0.002, initial=1.0)
    np.testing.assert_allclose(result.equal_weight_equity.to_numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(result.strategy_equity.to_numpy(), expected, rtol=1e-12)


def test_buy_and_hold_matches_closed_form() -> None:
    prices = _prices(rows=80, assets=3, seed=5)
    fee = 0.01
    result = walk_forward(
        prices, equal_weight_strategy, window=20, rebalance_every=1000, fee_rate=fee,
        initial_value=100.0,
    )  # fmt: skip
    assert len(result.rebalance_dates) == 1
    p = prices.to_numpy()
    # Buying from cash: value V' plus fee * V' equals the capital, so V' = 100 / (1 + fee).
    expected = 100.0 / (1 + fee) * (p[19:] / p[19]).mean(axis=1)
    expected[0] = 100.0
    np.testing.assert_allclose(result.strategy_equity.to_numpy(), expected, rtol=1e-13)


def test_rebalance_cost_and_turnover_match_hand_computation() -> None:
    prices = pd.DataFrame(
        {"A": [1.0, 1.0, 2.0, 2.0, 2.0], "B": [1.0] * 5},
        index=pd.bdate_range("2021-03-01", periods=5),
    )
    fee = 0.01
    result = walk_forward(prices, equal_weight_strategy, window=2, rebalance_every=2, fee_rate=fee)
    invested = 1.0 / (1.0 + fee)
    # On row 3 the holdings are worth (invested, invested / 2); going back to 50/50 sells
    # invested / 4 of A and buys as much B (to first order): traded value invested / 2.
    assert list(result.rebalance_dates) == list(prices.index[[1, 3]])
    assert result.costs["strategy"].to_numpy() == pytest.approx(
        [fee * invested, fee * invested / 2], rel=1e-12
    )
    assert result.turnover["strategy"].to_numpy() == pytest.approx(
        [invested / 2, (invested / 2) / (2 * 1.5 * invested)], rel=1e-12
    )
    assert result.strategy_equity.iloc[-1] == pytest.approx((1.5 - fee / 2) * invested)
    assert result.metrics.loc["strategy", "avg_turnover"] == pytest.approx(1 / 6)
    # Costs as a fraction of the value before each trade: fee * invested / 1, then
    # (fee * invested / 2) / (1.5 * invested).
    assert result.metrics.loc["strategy", "total_costs"] == pytest.approx(fee * invested + fee / 3)


def test_strategy_sees_only_the_trailing_window_up_to_the_rebalance_date() -> None:
    prices = _prices(rows=60)
    seen: list[pd.DataFrame] = []

    def recorder(window: pd.DataFrame) -> pd.Series:
        seen.append(window)
        return equal_weight_strategy(window)

    result = walk_forward(prices, recorder, window=15, rebalance_every=10)
    assert len(seen) == len(result.rebalance_dates) == 5
    for window, date in zip(seen, result.rebalance_dates, strict=True):
        assert len(window) == 15
        assert window.index[-1] == date
        assert (window.index <= date).all()
        pd.testing.assert_frame_equal(window, prices.loc[:date].iloc[-15:])


def test_changing_future_prices_leaves_past_decisions_and_equity_unchanged() -> None:
    prices = _prices(rows=200, assets=5, seed=9)

    def momentum(window: pd.DataFrame) -> pd.Series:
        gain = window.iloc[-1] / window.iloc[0]
        return gain / gain.sum()

    cutoff = prices.index[120]
    altered = prices.copy()
    shock = np.random.default_rng(1).uniform(0.5, 2.0, size=altered.loc[cutoff:].iloc[1:].shape)
    altered.loc[altered.index > cutoff] *= shock
    base = walk_forward(prices, momentum, window=30, rebalance_every=10, fee_rate=0.001)
    moved = walk_forward(altered, momentum, window=30, rebalance_every=10, fee_rate=0.001)
    past = base.rebalance_dates[base.rebalance_dates <= cutoff]
    pd.testing.assert_frame_equal(base.weights.loc[past], moved.weights.loc[past])
    pd.testing.assert_series_equal(
        base.strategy_equity.loc[:cutoff], moved.strategy_equity.loc[:cutoff]
    )
    later = base.rebalance_dates[base.rebalance_dates > cutoff]
    assert not np.allclose(base.weights.loc[later], moved.weights.loc[later])


def test_late_listed_asset_is_offered_once_its_window_is_complete() -> None:
    prices = _prices(rows=90, assets=3, seed=2)
    prices.iloc[:33, 2] = np.nan  # S2 listed on row 33
    offered: dict[pd.Timestamp, list[str]] = {}

    def recorder(window: pd.DataFrame) -> pd.Series:
        assert not window.isna().any().any()
        offered[window.index[-1]] = list(window.columns)
        return equal_weight_strategy(window)

    result = walk_forward(prices, recorder, window=10, rebalance_every=5)
    for row, date in zip(range(9, 89, 5), result.rebalance_dates, strict=True):
        expected = ["S0", "S1", "S2"] if row - 9 >= 33 else ["S0", "S1"]
        assert offered[date] == expected
    first_with_s2 = prices.index[44]  # window rows 35..44 is the first one starting >= 33
    assert result.equal_weight_equity.loc[first_with_s2] > 0
    assert result.weights.loc[first_with_s2, "S2"] == pytest.approx(1 / 3)
    assert result.weights.loc[prices.index[39], "S2"] == 0.0
    label = f"S2 offered from {first_with_s2:%Y-%m-%d} (late listing)"
    assert label in result.notes
    np.testing.assert_allclose(
        result.equal_weight_equity.to_numpy(),
        _numpy_equal_weight(prices.to_numpy(), window=10, every=5, fee=0.0, initial=1.0),
        rtol=1e-12,
    )


def test_metrics_follow_the_stated_formulas() -> None:
    prices = _prices(rows=300, assets=4, seed=4)

    def inverse_price(window: pd.DataFrame) -> pd.Series:
        raw = 1.0 / window.iloc[-1]
        return raw / raw.sum()

    result = walk_forward(
        prices, inverse_price, window=20, rebalance_every=15, fee_rate=0.003,
        initial_value=1000.0, periods_per_year=252, risk_free_rate=0.02,
    )  # fmt: skip
    equity = result.strategy_equity.to_numpy()
    r = equity[1:] / equity[:-1] - 1
    total = equity[-1] / 1000.0 - 1
    vol = r.std(ddof=1) * math.sqrt(252)
    wealth = np.concatenate(([1.0], np.cumprod(1 + r)))
    drawdown = (1 - wealth / np.maximum.accumulate(wealth)).max()
    row = result.metrics.loc["strategy"]
    assert row["total_return"] == pytest.approx(total, rel=1e-12)
    assert row["annualized_return"] == pytest.approx((1 + total) ** (252 / r.size) - 1)
    assert row["annualized_volatility"] == pytest.approx(vol, rel=1e-12)
    assert row["sharpe_ratio"] == pytest.approx((r.mean() * 252 - 0.02) / vol, rel=1e-12)
    assert row["max_drawdown"] == pytest.approx(drawdown, rel=1e-12)
    turnover = result.turnover["strategy"].to_numpy()
    assert row["avg_turnover"] == pytest.approx(turnover[1:].mean())
    assert row["total_turnover"] == pytest.approx(turnover[1:].sum())
    values_before = result.strategy_equity.loc[result.rebalance_dates].to_numpy().copy()
    values_before[1:] += result.costs["strategy"].to_numpy()[1:]  # the curve is post-trade
    assert row["total_costs"] == pytest.approx(
        (result.costs["strategy"].to_numpy() / values_before).sum(), rel=1e-12
    )
    assert row["rebalances"] == len(result.rebalance_dates)
    assert list(result.metrics.index) == ["strategy", "equal_weight"]


def test_benchmark_curve_is_the_rescaled_level_series() -> None:
    prices = _prices(rows=50)
    levels = pd.Series(np.linspace(100.0, 150.0, 50), index=prices.index)
    result = walk_forward(
        prices, equal_weight_strategy, window=10, rebalance_every=5, benchmark=levels,
        initial_value=2.0,
    )  # fmt: skip
    assert result.benchmark_equity is not None
    expected = 2.0 * levels.iloc[9:] / levels.iloc[9]
    np.testing.assert_allclose(result.benchmark_equity.to_numpy(), expected.to_numpy())
    assert result.metrics.loc["benchmark", "total_return"] == pytest.approx(
        150 / levels.iloc[9] - 1
    )
    assert list(result.equity().columns) == ["strategy", "equal_weight", "benchmark"]
    with pytest.raises(InvalidDataError, match="benchmark has no positive level on 5"):
        walk_forward(
            prices, equal_weight_strategy, window=10, rebalance_every=5, benchmark=levels.iloc[:-5]
        )


def _bad_prices(kind: str) -> pd.DataFrame:
    prices = _prices(rows=40, assets=3)
    if kind == "gap":
        prices.iloc[20, 1] = np.nan
    elif kind == "negative":
        prices.iloc[5, 0] = -1.0
    elif kind == "unsorted":
        prices = prices.iloc[::-1]
    elif kind == "empty_column":
        prices["S2"] = np.nan
    return prices


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("gap", "S1 has no price on 2020-01-29 after its first price"),
        ("negative", "positive"),
        ("unsorted", "increasing"),
        ("empty_column", "without any price: S2"),
    ],
)
def test_bad_prices_raise_typed_error(kind: str, message: str) -> None:
    with pytest.raises(InvalidDataError, match=message):
        walk_forward(_bad_prices(kind), equal_weight_strategy, window=5, rebalance_every=5)


def _late(window: pd.DataFrame) -> pd.Series:
    return pd.Series({"S0": 0.5, "LATE": 0.5})


@pytest.mark.parametrize(
    ("strategy", "kwargs", "error", "message"),
    [
        (equal_weight_strategy, {"window": 40}, InvalidSpecError, "leaves no period"),
        (equal_weight_strategy, {"window": 1}, InvalidSpecError, "at least 2 rows"),
        (equal_weight_strategy, {"window": 5.0}, InvalidSpecError, "whole number"),
        (equal_weight_strategy, {"rebalance_every": 0}, InvalidSpecError, "at least 1"),
        (equal_weight_strategy, {"fee_rate": -0.1}, InvalidSpecError, "fee_rate"),
        (equal_weight_strategy, {"initial_value": 0.0}, InvalidSpecError, "initial_value"),
        (_late, {}, InvalidSpecError, "not offered: LATE"),
        (lambda w: pd.Series(0.3, index=w.columns), {}, InvalidSpecError, "sum to 0.9 at"),
        (lambda w: pd.Series(np.nan, index=w.columns), {}, InvalidSpecError, "NaN"),
        (lambda w: [0.25] * 4, {}, InvalidSpecError, "returned list"),
    ],
)
def test_bad_settings_or_strategy_output_raise_typed_error(
    strategy: object, kwargs: dict[str, object], error: type[FinanceError], message: str
) -> None:
    prices = _prices(rows=40, assets=3)
    prices["LATE"] = np.nan
    prices.iloc[30:, 3] = 10.0
    args: dict[str, object] = {"window": 5, "rebalance_every": 5}
    args.update(kwargs)
    with pytest.raises(error, match=message):
        walk_forward(prices, strategy, **args)  # type: ignore[arg-type]


def _sp500(data_dir: Path) -> tuple[pd.DataFrame, pd.Series]:
    folder = data_dir / "portfolio" / "prices"
    prices = pd.read_csv(folder / "sp500_20assets_1990_2022.csv", index_col=0, parse_dates=True)
    index = pd.read_csv(folder / "sp500_index_1990_2022.csv", index_col=0, parse_dates=True)
    return prices.loc["2015":"2019"], index["SP500"]


@pytest.mark.realdata
def test_sp500_equal_weight_matches_numpy_and_tracks_the_index(data_dir: Path) -> None:
    prices, index = _sp500(data_dir)
    result: BacktestResult = walk_forward(
        prices, equal_weight_strategy, window=63, rebalance_every=21, fee_rate=0.001,
        benchmark=index,
    )  # fmt: skip
    expected = _numpy_equal_weight(prices.to_numpy(), window=63, every=21, fee=0.001, initial=1.0)
    np.testing.assert_allclose(result.equal_weight_equity.to_numpy(), expected, rtol=1e-12)
    pd.testing.assert_series_equal(
        result.strategy_equity, result.equal_weight_equity, check_names=False
    )

    levels = index.loc[result.strategy_equity.index].to_numpy()
    index_returns = levels[1:] / levels[:-1] - 1
    bench = result.metrics.loc["benchmark"]
    assert bench["total_return"] == pytest.approx(levels[-1] / levels[0] - 1, rel=1e-12)
    assert bench["annualized_volatility"] == pytest.approx(
        index_returns.std(ddof=1) * math.sqrt(252), rel=1e-12
    )
    # Twenty large S&P 500 members against the index, daily: measured correlation 0.928,
    # beta 0.965; loose bounds, as a sanity check that the dates and returns line up.
    daily = result.returns()
    assert daily["equal_weight"].corr(daily["benchmark"]) > 0.9
    beta = np.cov(daily["equal_weight"], daily["benchmark"])[0, 1] / daily["benchmark"].var()
    assert 0.8 < beta < 1.2
    assert result.metrics.loc["equal_weight", "avg_turnover"] < 0.05


@pytest.mark.realdata
def test_sp500_buy_and_hold_equal_weight_matches_closed_form(data_dir: Path) -> None:
    prices, _ = _sp500(data_dir)
    result = walk_forward(
        prices, equal_weight_strategy, window=2, rebalance_every=len(prices), fee_rate=0.001
    )
    p = prices.to_numpy()
    expected = (p[1:] / p[1]).mean(axis=1) / 1.001
    expected[0] = 1.0
    np.testing.assert_allclose(result.equal_weight_equity.to_numpy(), expected, rtol=1e-12)
