"""Walk-forward backtest: re-optimise on a trailing window, trade with costs, drift in between.

Conventions (one place; the functions below refer to them):

- Schedule. Row ``t0 = window - 1`` is the first rebalance, then every ``rebalance_every``
  rows, never on the last row. At a rebalance on row ``t`` the strategy sees rows
  ``t - window + 1 .. t`` only (prices up to and including that close) and the trades fill at
  the close of row ``t``. Nothing after row ``t`` is passed to it.
- Offered assets. The strategy is offered only the assets with a price on every row of its
  window, so an asset listed late (leading NaNs) joins at the first rebalance whose window it
  fills; the same set is used for the built-in equal-weight portfolio. Prices may have NaN
  only before an asset's first price; gaps and trailing NaN are refused.
- Costs. A rebalance from position values ``v_i`` (value ``V`` before trading) to weights
  ``w`` pays ``fee_rate`` times the traded value, out of the portfolio, so the value after
  trading ``V'`` solves ``V' = V - fee_rate * sum_i |w_i V' - v_i|``, solved exactly (Newton's
  method on a convex piecewise-linear equation; unique while ``fee_rate * sum |w_i| < 1``).
- Turnover. At a rebalance, one-way turnover is ``sum_i |w_i V' - v_i| / (2 V)``, half the
  traded value over the value before trading, so the cost is ``2 * turnover * fee_rate * V``.
  The first rebalance buys from cash (one-way turnover ``0.5 / (1 + fee_rate)``); the summary
  figures (``avg_turnover`` per rebalance, ``total_turnover`` summed) leave it out; the costs
  keep it.
- Drift. Between rebalances the holdings (shares) are fixed and weights drift with prices.
- Curves. Each equity curve starts on the first rebalance date at ``initial_value``, the
  capital before the first purchase; that purchase's cost shows in the first period's return.
  Every later point is the value at that close after any trading. The benchmark curve is
  ``initial_value * B_t / B_t0`` on the same dates.
- Metrics, on the period returns of each curve (``T`` periods, ``T`` = rows after ``t0``):
  total return ``prod(1 + r) - 1``; annualised return ``(1 + total) ** (ppy / T) - 1``;
  volatility, Sharpe and compounded max drawdown from :mod:`nqba.finance.risk` (sample std
  times sqrt(ppy); ``(mean * ppy - rf) / vol``; ``max 1 - W / running max W``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nqba.finance.errors import FinanceError, InvalidDataError, InvalidSpecError
from nqba.finance.risk import annualized_volatility, max_drawdown, sharpe_ratio

__all__ = [
    "WEIGHT_SUM_TOLERANCE",
    "BacktestResult",
    "Strategy",
    "equal_weight_strategy",
    "walk_forward",
]

Strategy = Callable[[pd.DataFrame], pd.Series]
"""Trailing price window (rows = dates, columns = offered assets) -> target weights."""

WEIGHT_SUM_TOLERANCE = 1e-6
"""A strategy's weights must sum to 1 within this; they are then rescaled to sum to 1."""

METRIC_COLUMNS = [
    "total_return",
    "annualized_return",
    "annualized_volatility",
    "sharpe_ratio",
    "max_drawdown",
    "avg_turnover",
    "total_turnover",
    "total_costs",
    "rebalances",
]


def equal_weight_strategy(window: pd.DataFrame) -> pd.Series:
    """Weight ``1 / n`` on each of the ``n`` assets offered in the window."""
    n = window.shape[1]
    return pd.Series(np.full(n, 1.0 / n), index=window.columns, name="weight")


@dataclass(frozen=True)
class BacktestResult:
    """Equity curves, the weights chosen at each rebalance and a metrics table.

    ``metrics`` has one row per curve (``strategy``, ``equal_weight``, and ``benchmark`` when
    one was given) and the columns of :data:`METRIC_COLUMNS`; ``total_costs`` is the sum over
    rebalances of fees over the value before trading (the return lost to costs, uncompounded).
    ``turnover`` and ``costs`` have one row per rebalance (one-way turnover, and fees in
    currency). See the module docstring for every convention.
    """

    strategy_equity: pd.Series
    equal_weight_equity: pd.Series
    benchmark_equity: pd.Series | None
    weights: pd.DataFrame
    turnover: pd.DataFrame
    costs: pd.DataFrame
    metrics: pd.DataFrame
    rebalance_dates: pd.Index
    window: int
    rebalance_every: int
    fee_rate: float
    initial_value: float
    periods_per_year: int
    risk_free_rate: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def equity(self) -> pd.DataFrame:
        """All equity curves side by side, one column per portfolio."""
        curves = {"strategy": self.strategy_equity, "equal_weight": self.equal_weight_equity}
        if self.benchmark_equity is not None:
            curves["benchmark"] = self.benchmark_equity
        return pd.DataFrame(curves)

    def returns(self) -> pd.DataFrame:
        """Period simple returns of every curve (the first period holds the entry cost)."""
        return self.equity().pct_change().iloc[1:]


def _label(when: object) -> str:
    """A date as YYYY-MM-DD (midnight timestamps), anything else as printed."""
    if isinstance(when, pd.Timestamp) and when == when.normalize():
        return str(when.strftime("%Y-%m-%d"))
    return str(when)


@dataclass
class _Run:
    equity: np.ndarray
    weights: np.ndarray
    turnover: np.ndarray
    costs: np.ndarray
    cost_drag: np.ndarray


def _check_prices(prices: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Validated float prices and the row of each asset's first price."""
    if not isinstance(prices, pd.DataFrame):
        raise InvalidDataError(f"prices must be a pandas DataFrame, got {type(prices).__name__}")
    if prices.shape[1] == 0 or prices.shape[0] < 2:
        raise InvalidDataError(
            f"prices have {prices.shape[0]} rows and {prices.shape[1]} columns; "
            "need at least two dates and one asset"
        )
    if prices.index.has_duplicates or not prices.index.is_monotonic_increasing:
        raise InvalidDataError("prices' index must be strictly increasing dates; sort it first")
    frame = prices.copy()
    frame.columns = [str(c) for c in frame.columns]
    if frame.columns.has_duplicates:
        raise InvalidDataError("prices name an asset twice; give each column a distinct name")
    try:
        frame = frame.astype(float)
    except (TypeError, ValueError) as exc:
        raise InvalidDataError("prices hold values that are not numbers") from exc
    values = frame.to_numpy()
    present = ~np.isnan(values)
    if np.isinf(values).any() or (values[present] <= 0).any():
        raise InvalidDataError("prices must be positive and finite where present")
    first = np.argmax(present, axis=0)
    empty = ~present.any(axis=0)
    if empty.any():
        raise InvalidDataError(f"assets without any price: {', '.join(frame.columns[empty])}")
    rows = np.arange(len(frame))[:, None]
    holes = ~present & (rows >= first[None, :])
    if holes.any():
        col = int(np.flatnonzero(holes.any(axis=0))[0])
        row = int(np.flatnonzero(holes[:, col])[0])
        raise InvalidDataError(
            f"asset {frame.columns[col]} has no price on {_label(frame.index[row])} after its "
            "first price; only leading gaps (late listing) are allowed: fill gaps "
            "(e.g. load_prices(max_gap_fill=...)) or drop delisted assets"
        )
    return frame, first


def _target(
    raw: object, offered: list[str], when: object, columns: pd.Index
) -> tuple[np.ndarray, float]:
    """Strategy output as a weight vector over all columns, and its gross exposure."""
    if isinstance(raw, pd.Series | Mapping):
        weights = {str(k): v for k, v in raw.items()}
    else:
        raise InvalidSpecError(
            f"the strategy returned {type(raw).__name__} at {when}; return a pd.Series of "
            "weights indexed by asset"
        )
    extra = sorted(set(weights) - set(offered))
    if extra:
        raise InvalidSpecError(
            f"the strategy gave weights at {when} for assets it was not offered: "
            f"{', '.join(extra)} (only assets with a price on every row of the window are)"
        )
    vector = np.zeros(len(columns))
    position = {name: i for i, name in enumerate(columns)}
    for name, value in weights.items():
        try:
            vector[position[name]] = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidSpecError(
                f"the strategy's weight for {name} at {when} is not a number: {value!r}"
            ) from exc
    if not np.isfinite(vector).all():
        raise InvalidSpecError(f"the strategy returned NaN or infinite weights at {when}")
    total = float(vector.sum())
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise InvalidSpecError(
            f"the strategy's weights sum to {total:.8g} at {when}, not 1 "
            f"(tolerance {WEIGHT_SUM_TOLERANCE:g}); a backtest keeps no cash, so rescale them"
        )
    vector /= total
    return vector, float(np.abs(vector).sum())


def _value_after_costs(
    value: float, positions: np.ndarray, target: np.ndarray, fee: float
) -> float:
    """The root V' of ``g(X) = X - V + fee * sum |target X - positions|`` (module docstring).

    g is convex, piecewise linear and increasing (slope >= 1 - fee * sum |target| > 0), and
    g(V) >= 0, so Newton's method from V descends onto the root in at most one step per kink.
    """
    if fee == 0.0:
        return value
    after = value
    for _ in range(2 * target.size + 10):
        excess = after - value + fee * float(np.abs(target * after - positions).sum())
        if excess <= 1e-15 * value:
            break
        slope = 1.0 + fee * float((target * np.sign(target * after - positions)).sum())
        after -= excess / slope
    return after


def _simulate(
    prices: np.ndarray,
    rebalance_rows: list[int],
    targets: list[np.ndarray],
    fee_rate: float,
    initial_value: float,
    dates: pd.Index,
) -> _Run:
    t0 = rebalance_rows[0]
    T = prices.shape[0]
    equity = np.empty(T - t0)
    equity[0] = initial_value
    shares = np.zeros(prices.shape[1])
    cash = initial_value
    turnover = np.empty(len(rebalance_rows))
    costs = np.empty(len(rebalance_rows))
    cost_drag = np.empty(len(rebalance_rows))
    ends = [*rebalance_rows[1:], T - 1]
    for k, (row, target) in enumerate(zip(rebalance_rows, targets, strict=True)):
        held = shares != 0
        positions = np.zeros_like(shares)
        positions[held] = shares[held] * prices[row, held]
        value = cash + float(positions.sum())
        if not value > 0:
            raise InvalidDataError(
                f"portfolio value is {value:.6g} on {_label(dates[row])}; after a total loss the "
                "returns are undefined (reduce leverage or short exposure)"
            )
        after = _value_after_costs(value, positions, target, fee_rate)
        if not after > 0:
            raise InvalidSpecError(
                f"trading costs on {_label(dates[row])} exceed the portfolio value; lower fee_rate"
            )
        traded = float(np.abs(target * after - positions).sum())
        turnover[k] = traded / (2.0 * value)
        costs[k] = value - after
        cost_drag[k] = costs[k] / value
        cash = 0.0
        invest = target != 0
        shares = np.zeros_like(shares)
        shares[invest] = target[invest] * after / prices[row, invest]
        if k > 0:
            equity[row - t0] = after
        end = ends[k]
        segment = prices[row + 1 : end + 1][:, invest] @ shares[invest]
        equity[row + 1 - t0 : end + 1 - t0] = segment
    if not (equity > 0).all():
        bad = int(np.flatnonzero(equity <= 0)[0]) + t0
        raise InvalidDataError(
            f"portfolio value fell to {equity[bad - t0]:.6g} on {_label(dates[bad])}; after a "
            "total loss the returns are undefined (reduce leverage or short exposure)"
        )
    return _Run(
        equity=equity,
        weights=np.array(targets),
        turnover=turnover,
        costs=costs,
        cost_drag=cost_drag,
    )


def _metrics(
    equity: pd.Series,
    *,
    turnover: np.ndarray | None,
    cost_drag: np.ndarray | None,
    initial_value: float,
    periods_per_year: int,
    risk_free_rate: float,
) -> dict[str, float]:
    returns = equity.pct_change().iloc[1:]
    periods = len(returns)
    total = float(equity.iloc[-1] / initial_value - 1.0)
    try:
        sharpe = sharpe_ratio(
            returns, risk_free_rate=risk_free_rate, periods_per_year=periods_per_year
        )
    except FinanceError:
        sharpe = math.nan  # zero volatility, or a single period
    try:
        volatility = annualized_volatility(returns, periods_per_year=periods_per_year)
    except FinanceError:
        volatility = math.nan
    later = turnover[1:] if turnover is not None else None
    return {
        "total_return": total,
        "annualized_return": float((1.0 + total) ** (periods_per_year / periods) - 1.0),
        "annualized_volatility": volatility,
        "sharpe_ratio": sharpe,
        "max_drawdown": max_drawdown(returns, compounded=True),
        "avg_turnover": float(later.mean()) if later is not None and later.size else math.nan,
        "total_turnover": float(later.sum()) if later is not None else math.nan,
        "total_costs": float(cost_drag.sum()) if cost_drag is not None else 0.0,
        "rebalances": float(turnover.size) if turnover is not None else 0.0,
    }


def walk_forward(
    prices: pd.DataFrame,
    strategy: Strategy,
    *,
    window: int,
    rebalance_every: int,
    fee_rate: float = 0.0,
    initial_value: float = 1.0,
    benchmark: pd.Series | None = None,
    periods_per_year: int = 252,
    risk_free_rate: float = 0.0,
) -> BacktestResult:
    """Backtest ``strategy`` walking forward over ``prices``, next to equal weight.

    ``prices``: one column per asset, rows in date order, NaN only before an asset's first
    price. ``strategy`` gets the trailing ``window`` rows of the offered assets at each
    rebalance and returns weights summing to 1. ``benchmark``: price or index levels (not
    returns) covering every date from the first rebalance on. Conventions: module docstring.
    """
    frame, first = _check_prices(prices)
    for name, number in (("window", window), ("rebalance_every", rebalance_every)):
        if isinstance(number, bool) or not isinstance(number, int | np.integer):
            raise InvalidSpecError(f"{name} must be a whole number of rows, got {number!r}")
    if window < 2:
        raise InvalidSpecError(f"window is {window}; it must hold at least 2 rows of prices")
    if rebalance_every < 1:
        raise InvalidSpecError(f"rebalance_every is {rebalance_every}; it must be at least 1")
    if window >= len(frame):
        raise InvalidSpecError(
            f"window of {window} rows leaves no period to trade in {len(frame)} rows of prices; "
            "shorten the window or give a longer history"
        )
    if not (math.isfinite(fee_rate) and 0.0 <= fee_rate < 1.0):
        raise InvalidSpecError(f"fee_rate is {fee_rate:g}; it must be in [0, 1), e.g. 0.001")
    if not (math.isfinite(initial_value) and initial_value > 0):
        raise InvalidSpecError(f"initial_value is {initial_value:g}; it must be positive")
    if periods_per_year < 1:
        raise InvalidSpecError(f"periods_per_year is {periods_per_year}; it must be >= 1")

    values = frame.to_numpy()
    columns = frame.columns
    dates = frame.index
    t0 = window - 1
    rows = list(range(t0, len(frame) - 1, rebalance_every))
    strategy_targets: list[np.ndarray] = []
    equal_targets: list[np.ndarray] = []
    notes: list[str] = []
    offered_before: set[str] = set()
    for row in rows:
        start = row - window + 1
        mask = first <= start
        offered = [str(c) for c in columns[mask]]
        if not offered:
            raise InvalidDataError(
                f"no asset has a price on every row of the window ending {_label(dates[row])}; "
                "shorten the window or start the prices later"
            )
        joined = sorted(set(offered) - offered_before)
        if offered_before and joined:
            notes.append(f"{', '.join(joined)} offered from {_label(dates[row])} (late listing)")
        offered_before |= set(offered)
        view = frame.iloc[start : row + 1, np.flatnonzero(mask)].copy()
        target, gross = _target(strategy(view), offered, _label(dates[row]), columns)
        if fee_rate * gross >= 1.0:
            raise InvalidSpecError(
                f"fee_rate x gross exposure is {fee_rate * gross:.3g} at {_label(dates[row])}; "
                "costs would exceed the trades (lower the fee rate or the leverage)"
            )
        strategy_targets.append(target)
        equal = np.where(mask, 1.0 / mask.sum(), 0.0)
        equal_targets.append(equal)
    never = [str(c) for c in columns if str(c) not in offered_before]
    if never:
        notes.append(f"never offered (history shorter than the window): {', '.join(never)}")

    run = _simulate(values, rows, strategy_targets, fee_rate, initial_value, dates)
    equal_run = _simulate(values, rows, equal_targets, fee_rate, initial_value, dates)
    curve_dates = dates[t0:]
    strategy_equity = pd.Series(run.equity, index=curve_dates, name="strategy")
    equal_equity = pd.Series(equal_run.equity, index=curve_dates, name="equal_weight")

    benchmark_equity: pd.Series | None = None
    if benchmark is not None:
        if not isinstance(benchmark, pd.Series):
            raise InvalidDataError("benchmark must be a pandas Series of price or index levels")
        levels = benchmark.astype(float).reindex(curve_dates)
        missing = levels.isna().to_numpy() | ~(levels.to_numpy() > 0)
        if missing.any():
            first_missing = _label(curve_dates[int(np.argmax(missing))])
            raise InvalidDataError(
                f"benchmark has no positive level on {int(missing.sum())} of the "
                f"{len(curve_dates)} backtest dates, the first {first_missing}; "
                "align it to the prices' dates (e.g. reindex and forward-fill)"
            )
        benchmark_equity = pd.Series(
            initial_value * levels.to_numpy() / levels.iloc[0], index=curve_dates, name="benchmark"
        )

    def metrics(
        equity: pd.Series, turnover: np.ndarray | None, cost_drag: np.ndarray | None
    ) -> dict[str, float]:
        return _metrics(
            equity,
            turnover=turnover,
            cost_drag=cost_drag,
            initial_value=initial_value,
            periods_per_year=periods_per_year,
            risk_free_rate=risk_free_rate,
        )

    table = {
        "strategy": metrics(strategy_equity, run.turnover, run.cost_drag),
        "equal_weight": metrics(equal_equity, equal_run.turnover, equal_run.cost_drag),
    }
    if benchmark_equity is not None:
        table["benchmark"] = metrics(benchmark_equity, None, None)
    rebalance_dates = dates[rows]
    return BacktestResult(
        strategy_equity=strategy_equity,
        equal_weight_equity=equal_equity,
        benchmark_equity=benchmark_equity,
        weights=pd.DataFrame(run.weights, index=rebalance_dates, columns=columns),
        turnover=pd.DataFrame(
            {"strategy": run.turnover, "equal_weight": equal_run.turnover}, index=rebalance_dates
        ),
        costs=pd.DataFrame(
            {"strategy": run.costs, "equal_weight": equal_run.costs}, index=rebalance_dates
        ),
        metrics=pd.DataFrame.from_dict(table, orient="index")[METRIC_COLUMNS],
        rebalance_dates=rebalance_dates,
        window=window,
        rebalance_every=rebalance_every,
        fee_rate=fee_rate,
        initial_value=initial_value,
        periods_per_year=periods_per_year,
        risk_free_rate=risk_free_rate,
        notes=tuple(notes),
    )
