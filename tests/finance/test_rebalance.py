"""Rebalancing to target weights: whole lots, fees from cash, exact minimum tracking error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nqba.finance.errors import FinanceError, InvalidDataError, InvalidSpecError
from nqba.finance.rebalance import (
    MIP_ABS_GAP,
    MIP_REL_GAP,
    TIE_BREAK,
    RebalancePlan,
    allocation_tracking_error,
    rebalance,
)

README_WEIGHTS = {
    "MA": 0.35349,
    "FB": 0.20603,
    "PFE": 0.1957,
    "BABA": 0.07315,
    "AAPL": 0.0689,
    "AMZN": 0.04033,
    "GOOG": 0.03835,
    "BBY": 0.01324,
    "SBUX": 0.01082,
}
"""Max-Sharpe weights printed in the PyPortfolioOpt README (see the prices README)."""

README_GREEDY = {
    "GOOG": 1,
    "AAPL": 4,
    "FB": 12,
    "BABA": 4,
    "BBY": 2,
    "MA": 20,
    "PFE": 54,
    "SBUX": 1,
}
"""PyPortfolioOpt README: DiscreteAllocation(...).greedy_portfolio() for $10,000."""


def _check_accounting(plan: RebalancePlan, holdings: dict[str, float], cash: float) -> None:
    """Every dollar is accounted for: positions + cash + fees = value before trading."""
    prices = {t.asset: t.price for t in plan.trades}
    bought = sum(t.value for t in plan.trades if t.side == "buy")
    sold = sum(t.value for t in plan.trades if t.side == "sell")
    assert plan.cash_left == pytest.approx(cash - bought + sold - plan.total_fees, abs=1e-9)
    assert plan.cash_left >= 0
    for trade in plan.trades:
        before = holdings.get(trade.asset, 0.0)
        change = trade.shares if trade.side == "buy" else -trade.shares
        assert plan.holdings[trade.asset] == pytest.approx(before + change)
        assert trade.value == pytest.approx(trade.shares * prices[trade.asset])
    assert plan.value_after == pytest.approx(plan.value_before - plan.total_fees)


def _allowed_gap(objective: float) -> float:
    """The gap at which the plan counts as proven optimal (rebalance's stopping rule)."""
    return max(MIP_REL_GAP * objective, MIP_ABS_GAP)


def _brute_force(
    holdings: np.ndarray,
    cash: float,
    prices: np.ndarray,
    weights: np.ndarray,
    lots: np.ndarray,
    fee_rate: float,
    *,
    allow_short: bool,
) -> tuple[float, float]:
    """Smallest (objective, tracking error) over every lot vector in a box that holds the optimum.

    The box: buy at most twice what all cash plus all holdings could pay for, sell at most the
    holdings (or, short, as much again as the buys).
    """
    value = float(prices @ holdings + cash)
    lot_value = prices * lots
    max_buy = np.floor(2 * value / lot_value).astype(int) + 1
    max_sell = np.floor(holdings / lots).astype(int)
    if allow_short:
        max_sell = max_sell + max_buy
    grids = np.meshgrid(
        *[np.arange(-s, b + 1) for s, b in zip(max_sell, max_buy, strict=True)], indexing="ij"
    )
    t = np.stack([g.ravel() for g in grids], axis=1).astype(float)
    traded = np.abs(t) @ lot_value
    feasible = cash - t @ lot_value - fee_rate * traded >= -1e-9
    final = holdings + t * lots
    te = np.abs(prices * final - weights * value).sum(axis=1) / value
    objective = np.where(feasible, te + TIE_BREAK * traded / value, np.inf)
    best = int(np.argmin(objective))
    return float(objective[best]), float(te[best])


def test_fresh_allocation_buys_whole_shares_closest_to_target() -> None:
    plan = rebalance({}, 1000.0, {"A": 100.0, "B": 30.0}, {"A": 0.5, "B": 0.5})
    # 5 A and 17 B would cost 1010; 16 B leave B 20 under its 500 target.
    assert dict(plan.holdings) == {"A": 5.0, "B": 16.0}
    assert plan.cash_left == pytest.approx(1000 - 500 - 480)
    assert plan.tracking_error == pytest.approx((0 + 20) / 1000)
    assert plan.tracking_error_before == pytest.approx(1.0)
    assert plan.proven_optimal
    assert plan.lower_bound <= plan.tracking_error + 1e-12


def test_plan_matches_brute_force_on_random_tiny_cases() -> None:
    rng = np.random.default_rng(7)
    for case in range(40):
        n = 3
        prices = rng.uniform(5.0, 60.0, n).round(2)
        lots = rng.choice([1, 1, 2, 5], n)
        holdings = (rng.integers(0, 4, n) * rng.choice([1, 2, 3], n)).astype(float)
        cash = round(float(rng.uniform(0.0, 150.0)), 2)
        weights = rng.dirichlet(np.ones(n))
        if case % 4 == 0:
            weights[rng.integers(n)] = 0.0
            weights /= weights.sum()
        fee_rate = [0.0, 0.001, 0.01, 0.05][case % 4]
        names = [f"X{i}" for i in range(n)]
        plan = rebalance(
            dict(zip(names, holdings, strict=True)),
            cash,
            dict(zip(names, prices, strict=True)),
            dict(zip(names, weights, strict=True)),
            lot_sizes=dict(zip(names, (int(x) for x in lots), strict=True)),
            fee_rate=fee_rate,
        )
        best_objective, best_te = _brute_force(
            holdings, cash, prices, weights, lots, fee_rate, allow_short=False
        )
        objective = plan.tracking_error + TIE_BREAK * plan.traded_value / plan.value_before
        # Optimal within the stopping gap, never better than the enumeration.
        allowed = best_objective + _allowed_gap(best_objective)
        assert best_objective - 1e-12 <= objective <= allowed, case
        assert plan.tracking_error <= best_te + 2 * TIE_BREAK, case
        assert plan.proven_optimal
        assert plan.lower_bound <= plan.tracking_error + 1e-9
        assert all(t.shares % lots[names.index(t.asset)] == 0 for t in plan.trades)
        assert (plan.holdings >= 0).all()
        _check_accounting(plan, dict(zip(names, holdings, strict=True)), cash)


def test_plan_matches_brute_force_with_shorts_allowed() -> None:
    rng = np.random.default_rng(11)
    for case in range(15):
        prices = rng.uniform(10.0, 50.0, 2).round(2)
        holdings = rng.integers(0, 3, 2).astype(float)
        cash = round(float(rng.uniform(0.0, 60.0)), 2)
        weights = np.array([1.3, -0.3]) if case % 2 else np.array([-0.2, 1.2])
        plan = rebalance(
            {"L": holdings[0], "S": holdings[1]},
            cash,
            {"L": prices[0], "S": prices[1]},
            {"L": weights[0], "S": weights[1]},
            fee_rate=0.002,
            allow_short=True,
        )
        best_objective, _ = _brute_force(
            holdings, cash, prices, weights, np.ones(2), 0.002, allow_short=True
        )
        objective = plan.tracking_error + TIE_BREAK * plan.traded_value / plan.value_before
        allowed = best_objective + _allowed_gap(best_objective)
        assert best_objective - 1e-12 <= objective <= allowed, case
        assert plan.cash_left >= 0


def test_two_hundred_assets_are_solved_to_proven_optimality() -> None:
    rng = np.random.default_rng(3)
    names = [f"S{i}" for i in range(200)]
    prices = pd.Series(np.exp(rng.uniform(np.log(5.0), np.log(2000.0), 200)), index=names)
    weights = pd.Series(rng.dirichlet(np.ones(200)), index=names)
    plan = rebalance({}, 200_000.0, prices, weights, fee_rate=0.001, time_limit=5.0)
    assert plan.proven_optimal
    assert plan.status == "optimal"
    # Baseline: round every target share count down (always affordable with 0.1 % fees).
    floor_shares = np.floor(weights * 200_000.0 / prices / 1.001)
    floor_left = 200_000.0 - float((floor_shares * prices).sum() * 1.001)
    baseline = allocation_tracking_error(floor_shares, floor_left, prices, weights)
    assert plan.tracking_error < baseline
    assert plan.lower_bound <= plan.tracking_error


def test_short_target_or_holding_is_refused_unless_allowed() -> None:
    with pytest.raises(InvalidSpecError, match="allow_short"):
        rebalance({}, 100.0, {"A": 1.0, "B": 1.0}, {"A": 1.5, "B": -0.5})
    with pytest.raises(InvalidDataError, match="allow_short"):
        rebalance({"A": -3}, 100.0, {"A": 1.0}, {"A": 1.0})
    plan = rebalance({}, 100.0, {"A": 1.0, "B": 1.0}, {"A": 1.5, "B": -0.5}, allow_short=True)
    assert plan.holdings["A"] == 150
    assert plan.holdings["B"] == -50
    assert plan.tracking_error == pytest.approx(0.0, abs=1e-12)


def test_lot_sizes_trade_only_whole_lots_and_keep_odd_lots() -> None:
    plan = rebalance(
        {"A": 250.0, "B": 0.0},
        0.0,
        {"A": 10.0, "B": 10.0},
        {"A": 0.0, "B": 1.0},
        lot_sizes={"A": 100, "B": 100},
    )
    assert [(t.asset, t.side, t.shares) for t in plan.trades] == [
        ("A", "sell", 200),
        ("B", "buy", 200),
    ]
    assert plan.holdings["A"] == 50
    assert any("odd lots" in note for note in plan.notes)


def test_fee_is_paid_from_cash_and_cash_is_never_overdrawn() -> None:
    free = rebalance({}, 1000.0, {"A": 100.0}, {"A": 1.0})
    assert free.holdings["A"] == 10
    assert free.cash_left == pytest.approx(0.0)
    charged = rebalance({}, 1000.0, {"A": 100.0}, {"A": 1.0}, fee_rate=0.005)
    # Ten shares would cost 1000 + 5 in fees, more than the 1000 of cash.
    assert charged.holdings["A"] == 9
    assert charged.total_fees == pytest.approx(4.5)
    assert charged.cash_left == pytest.approx(1000 - 900 - 4.5)
    assert charged.trades[0].fee == pytest.approx(4.5)


def test_sells_overweight_asset_to_fund_underweight_one() -> None:
    plan = rebalance(
        {"A": 10.0, "B": 0.0}, 0.0, {"A": 50.0, "B": 25.0}, {"A": 0.5, "B": 0.5}, fee_rate=0.001
    )
    sides = {t.asset: (t.side, t.shares) for t in plan.trades}
    assert sides["A"] == ("sell", 5)
    # Selling 5 A raises 250 - 0.25 fee; 9 B cost 225 + 0.225; a 10th would overdraw.
    assert sides["B"] == ("buy", 9)
    _check_accounting(plan, {"A": 10.0, "B": 0.0}, 0.0)
    assert plan.tracking_error < plan.tracking_error_before


def test_no_trade_when_holdings_are_already_on_target() -> None:
    plan = rebalance(
        {"A": 4.0, "B": 10.0}, 3.0, {"A": 50.0, "B": 20.0}, {"A": 0.5, "B": 0.5}, fee_rate=0.001
    )
    assert plan.trades == ()
    assert plan.total_fees == 0
    assert plan.cash_left == 3.0


def test_assets_held_but_not_in_target_are_sold() -> None:
    plan = rebalance({"OLD": 3.0}, 0.0, {"OLD": 20.0, "NEW": 10.0}, {"NEW": 1.0})
    assert [(t.asset, t.side, t.shares) for t in plan.trades] == [
        ("OLD", "sell", 3),
        ("NEW", "buy", 6),
    ]
    assert plan.target_weights["OLD"] == 0.0


def test_weights_within_tolerance_are_rescaled_to_sum_to_one() -> None:
    plan = rebalance({}, 100.0, {"A": 1.0, "B": 1.0}, {"A": 0.50004, "B": 0.50004})
    assert plan.target_weights.sum() == pytest.approx(1.0)
    assert dict(plan.holdings) == {"A": 50.0, "B": 50.0}


def test_numpy_inputs_name_assets_a0_a1() -> None:
    plan = rebalance(np.array([0.0, 2.0]), 10.0, np.array([5.0, 5.0]), np.array([0.5, 0.5]))
    assert dict(plan.holdings) == {"A0": 2.0, "A1": 2.0}
    assert plan.tracking_error == pytest.approx(0.0)


def test_trades_frame_lists_shares_price_value_and_fee() -> None:
    plan = rebalance({}, 1000.0, {"A": 100.0, "B": 30.0}, {"A": 0.5, "B": 0.5}, fee_rate=0.01)
    frame = plan.trades_frame()
    assert list(frame.columns) == ["asset", "side", "shares", "price", "value", "fee"]
    assert frame["fee"].sum() == pytest.approx(plan.total_fees)
    assert (frame["value"] == frame["shares"] * frame["price"]).all()


def test_allocation_tracking_error_agrees_with_plan_without_fees() -> None:
    prices = {"A": 37.0, "B": 11.0, "C": 83.0}
    target = {"A": 0.2, "B": 0.3, "C": 0.5}
    plan = rebalance({}, 1234.0, prices, target)
    score = allocation_tracking_error(dict(plan.holdings), plan.cash_left, prices, target)
    assert score == pytest.approx(plan.tracking_error)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"target_weights": {"A": 0.5, "Z": 0.5}}, InvalidSpecError, "unknown asset.*Z"),
        ({"prices": {"A": -1.0, "B": 2.0}}, InvalidDataError, "positive.*A=-1"),
        ({"prices": {"A": 0.0, "B": 2.0}}, InvalidDataError, "positive.*A=0"),
        ({"prices": {"A": float("nan"), "B": 2.0}}, InvalidDataError, "positive"),
        ({"target_weights": {"A": 0.5, "B": 0.4}}, InvalidSpecError, "sum to 0.9"),
        ({"cash": -5.0}, InvalidDataError, "cash is -5"),
        ({"lot_sizes": 0}, InvalidSpecError, "lot size.*>= 1"),
        ({"lot_sizes": {"A": 2.5}}, InvalidSpecError, "lot size for A"),
        ({"lot_sizes": {"Q": 10}}, InvalidSpecError, "unknown asset.*Q"),
        ({"fee_rate": -0.01}, InvalidSpecError, "fee_rate"),
        ({"fee_rate": 1.5}, InvalidSpecError, "fee_rate"),
        ({"holdings": {"C": 3.0}}, InvalidDataError, "no price for held asset.*C"),
        ({"holdings": {"A": float("inf")}}, InvalidDataError, "not finite"),
        ({"target_weights": {}}, InvalidSpecError, "empty"),
        ({"cash": 0.0}, InvalidDataError, "nothing to allocate"),
    ],
)
def test_bad_input_raises_typed_error_naming_the_problem(
    kwargs: dict[str, object], error: type[FinanceError], message: str
) -> None:
    args: dict[str, object] = {
        "holdings": {},
        "cash": 100.0,
        "prices": {"A": 1.0, "B": 2.0},
        "target_weights": {"A": 0.5, "B": 0.5},
    }
    args.update(kwargs)
    with pytest.raises(error, match=message):
        rebalance(**args)  # type: ignore[arg-type]


@pytest.mark.realdata
def test_pyportfolioopt_readme_allocation_is_beaten_on_tracking_error(data_dir: Path) -> None:
    prices = pd.read_csv(
        data_dir / "portfolio" / "prices" / "pypfopt_stock_prices_1989_2018.csv",
        index_col=0,
        parse_dates=True,
    )
    last = prices.iloc[-1]
    greedy_left = 10_000 - sum(last[a] * n for a, n in README_GREEDY.items())
    assert greedy_left == pytest.approx(11.89, abs=0.005)  # the README's "funds remaining"
    greedy_te = allocation_tracking_error(README_GREEDY, greedy_left, last, README_WEIGHTS)

    plan = rebalance({}, 10_000.0, last, README_WEIGHTS)
    assert plan.proven_optimal
    assert plan.tracking_error <= greedy_te
    assert plan.lower_bound <= plan.tracking_error + 1e-12
    # Measured: 0.099828 against the greedy allocation's 0.130521 (same metric, same prices).
    assert plan.tracking_error == pytest.approx(0.099828, abs=1e-6)
    assert greedy_te == pytest.approx(0.130521, abs=1e-6)
    _check_accounting(plan, {}, 10_000.0)
