"""Risk figures of a return series or a weighted portfolio, each named with its convention.

Inputs are periodic *simple* returns (a pd.Series, or a DataFrame of asset returns with
weights). Conventions, stated once here and in each function:

- Portfolio returns: ``r_p,t = sum_i w_i r_i,t``, weights held constant (rebalanced every
  period) and used as given, not rescaled to sum to one.
- Volatility: sample standard deviation (divisor ``T - 1``) times ``sqrt(periods_per_year)``.
- Sharpe: ``(mean(r) * periods_per_year - rf) / volatility``, ``rf`` an annual rate.
- Sortino: the same excess return over the annualised downside deviation
  ``sqrt(mean(min(r_t - rf / periods_per_year, 0) ** 2)) * sqrt(periods_per_year)``; the mean
  runs over all ``T`` periods (lower partial moment of order 2, target = the per-period
  risk-free rate).
- Historical VaR at ``level``: ``-quantile(r, 1 - level)`` with numpy's default linear
  interpolation between order statistics. Historical CVaR: ``-mean`` of the worst
  ``k = ceil((1 - level) * T)`` returns (no fractional tail weighting).
- Parametric (normal) VaR and CVaR: ``mu - sigma * z`` with ``mu`` the mean and ``sigma`` the
  sample standard deviation of the returns, ``z`` the normal ``level`` quantile; CVaR uses
  ``sigma * pdf(z) / (1 - level)``. All four are one-period losses, positive when a loss.
- Max drawdown, compounded: ``max_t (1 - W_t / max_{s<=t} W_s)`` with wealth
  ``W_t = prod_{s<=t} (1 + r_s)`` and ``W_0 = 1`` before the first return.
  Uncompounded: ``max_t (max_{s<=t} C_s - C_t)`` with ``C_t = sum_{s<=t} r_s`` and ``C_0 = 0``.
- Beta and correlation to a benchmark: ``cov(r, b) / var(r_b)`` and Pearson's correlation on
  the dates both series share.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import norm

from nqba.finance.errors import InvalidDataError, InvalidSpecError

_CEIL_SLACK = 1e-9  # (1 - 0.95) * 100 is 5.000000000000004 in floating point; ceil must give 5


def _as_series(returns: Any, *, what: str = "returns", min_length: int = 2) -> pd.Series:
    if isinstance(returns, pd.DataFrame):
        if returns.shape[1] != 1:
            raise InvalidDataError(
                f"{what} must be one series; got a table of {returns.shape[1]} columns "
                f"(use portfolio_returns to combine assets)"
            )
        returns = returns.iloc[:, 0]
    if isinstance(returns, pd.Series):
        series = returns
    else:
        array = np.asarray(returns)
        if array.ndim != 1:
            raise InvalidDataError(f"{what} must be one-dimensional, got shape {array.shape}")
        series = pd.Series(array)
    try:
        series = series.astype(float)
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"{what} hold values that are not numbers") from exc
    missing = series.isna().to_numpy()
    if missing.any():
        raise InvalidDataError(
            f"{what} hold {int(missing.sum())} missing value(s), the first at "
            f"{series.index[np.flatnonzero(missing)[0]]}; drop or fill them first"
        )
    if not np.isfinite(series.to_numpy()).all():
        raise InvalidDataError(f"{what} hold infinite values")
    if len(series) < min_length:
        raise InvalidDataError(f"{what} need at least {min_length} periods, got {len(series)}")
    return series


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise InvalidSpecError(f"confidence level must lie strictly between 0 and 1, got {level}")


def _check_periods(periods_per_year: int) -> None:
    if periods_per_year < 1:
        raise InvalidSpecError(
            f"periods_per_year must be a positive integer, got {periods_per_year}"
        )


def _weights(weights: Any, what: str = "weights") -> pd.Series:
    if isinstance(weights, pd.Series):
        series = weights.copy()
        series.index = [str(i) for i in series.index]
    else:
        array = np.asarray(weights, dtype=float)
        if array.ndim != 1:
            raise InvalidDataError(f"{what} must be one-dimensional, got shape {array.shape}")
        series = pd.Series(array, index=[f"A{i}" for i in range(array.size)])
    try:
        series = series.astype(float)
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"{what} hold values that are not numbers") from exc
    if series.empty:
        raise InvalidDataError(f"{what} are empty")
    if not np.isfinite(series.to_numpy()).all():
        raise InvalidDataError(f"{what} hold NaN or infinite values")
    if series.index.duplicated().any():
        raise InvalidDataError(
            f"{what} name an asset twice: {series.index[series.index.duplicated()].tolist()}"
        )
    return series


def _returns_frame(returns: Any) -> pd.DataFrame:
    if isinstance(returns, pd.DataFrame):
        frame = returns.copy()
        frame.columns = [str(c) for c in frame.columns]
    else:
        array = np.asarray(returns, dtype=float)
        if array.ndim != 2:
            raise InvalidDataError(
                f"asset returns must be 2-D (periods x assets), got shape {array.shape}"
            )
        frame = pd.DataFrame(array, columns=[f"A{i}" for i in range(array.shape[1])])
    try:
        return frame.astype(float)
    except (TypeError, ValueError) as exc:
        raise InvalidDataError("asset returns hold values that are not numbers") from exc


def _held_rows(returns: pd.DataFrame, weights: pd.Series) -> tuple[pd.DataFrame, pd.Series, int]:
    """Columns of the held assets, rows where all of them have a return, weights aligned."""
    unknown = [a for a in weights.index if a not in returns.columns]
    if unknown:
        raise InvalidDataError(
            f"weights name asset(s) {unknown} that the returns do not have; "
            f"returns have {list(returns.columns)}"
        )
    held = weights[weights != 0.0]
    if held.empty:
        raise InvalidDataError("every weight is zero; there is no portfolio")
    sub = returns[list(held.index)]
    complete = sub.notna().all(axis=1).to_numpy()
    return sub.loc[complete], held, int((~complete).sum())


def portfolio_returns(returns: pd.DataFrame, weights: pd.Series) -> pd.Series:
    """Returns of a constant-weight portfolio, ``sum_i w_i r_i,t`` (rebalanced every period).

    Weights are matched to the columns by asset name (numpy input: A0, A1, ...) and used as
    given. An asset the weights do not name has weight 0. Periods in which a held asset
    (nonzero weight) has no return, such as before a late listing, are left out.
    """
    frame = _returns_frame(returns)
    w = _weights(weights)
    rows, held, _ = _held_rows(frame, w)
    if rows.empty:
        raise InvalidDataError(
            f"no period in which every held asset ({list(held.index)}) has a return"
        )
    values = rows.to_numpy() @ held.to_numpy()
    return pd.Series(values, index=rows.index, name="portfolio_return")


def annualized_volatility(returns: pd.Series, *, periods_per_year: int = 252) -> float:
    """Sample standard deviation (divisor T - 1) of the returns times sqrt(periods_per_year)."""
    _check_periods(periods_per_year)
    r = _as_series(returns)
    return float(r.std(ddof=1) * math.sqrt(periods_per_year))


def sharpe_ratio(
    returns: pd.Series, *, risk_free_rate: float = 0.0, periods_per_year: int = 252
) -> float:
    """``(mean(r) * periods_per_year - risk_free_rate) / annualised volatility``.

    ``risk_free_rate`` is annual. Zero volatility makes the ratio undefined and is refused.
    """
    _check_periods(periods_per_year)
    r = _as_series(returns)
    vol = float(r.std(ddof=1) * math.sqrt(periods_per_year))
    if vol == 0.0:
        raise InvalidDataError("returns have zero volatility; the Sharpe ratio is undefined")
    return float((r.mean() * periods_per_year - risk_free_rate) / vol)


def downside_deviation(
    returns: pd.Series, *, risk_free_rate: float = 0.0, periods_per_year: int = 252
) -> float:
    """``sqrt(mean(min(r_t - rf / periods_per_year, 0) ** 2) * periods_per_year)`` over all T."""
    _check_periods(periods_per_year)
    r = _as_series(returns).to_numpy()
    shortfall = np.minimum(r - risk_free_rate / periods_per_year, 0.0)
    return float(math.sqrt(float(np.mean(shortfall**2)) * periods_per_year))


def sortino_ratio(
    returns: pd.Series, *, risk_free_rate: float = 0.0, periods_per_year: int = 252
) -> float:
    """``(mean(r) * periods_per_year - rf) / downside_deviation`` (module docstring).

    Downside deviation: root mean square over *all* T periods of the shortfall below the
    per-period risk-free rate ``rf / periods_per_year``. With no period below it the ratio is
    ``inf`` (a positive excess return) and the call is refused otherwise.
    """
    r = _as_series(returns)
    excess = float(r.mean() * periods_per_year - risk_free_rate)
    dd = downside_deviation(r, risk_free_rate=risk_free_rate, periods_per_year=periods_per_year)
    if dd == 0.0:
        if excess > 0.0:
            return math.inf
        raise InvalidDataError(
            "returns never fall below the risk-free rate and do not "
            "exceed it either; the Sortino ratio is undefined"
        )
    return excess / dd


def max_drawdown(returns: pd.Series, *, compounded: bool) -> float:
    """Largest fall from a running peak, as a positive number (0 if the series never falls).

    ``compounded=True``: ``max_t 1 - W_t / max_{s<=t} W_s``, wealth ``W_t = prod(1 + r)`` from
    ``W_0 = 1``. ``compounded=False``: ``max_t max_{s<=t} C_s - C_t`` on the cumulative sum
    ``C_t`` of the returns from ``C_0 = 0`` (skfolio's default).
    """
    r = _as_series(returns, min_length=1).to_numpy()
    if compounded:
        wealth = np.concatenate(([1.0], np.cumprod(1.0 + r)))
        peak = np.maximum.accumulate(wealth)  # >= W_0 = 1, never zero
        return float((1.0 - wealth / peak).max())
    level = np.concatenate(([0.0], np.cumsum(r)))
    return float((np.maximum.accumulate(level) - level).max())


def historical_var(returns: pd.Series, level: float = 0.95) -> float:
    """``-quantile(r, 1 - level)``, numpy linear interpolation: the one-period loss not
    exceeded with probability ``level`` in the sample."""
    _check_level(level)
    r = _as_series(returns, min_length=1).to_numpy()
    return float(-np.quantile(r, 1.0 - level, method="linear"))


def tail_count(periods: int, level: float) -> int:
    """``ceil((1 - level) * periods)``, the number of worst returns historical CVaR averages."""
    _check_level(level)
    return max(1, math.ceil((1.0 - level) * periods - _CEIL_SLACK))


def historical_cvar(returns: pd.Series, level: float = 0.95) -> float:
    """``-mean`` of the ``ceil((1 - level) * T)`` worst returns (no fractional tail weight)."""
    r = _as_series(returns, min_length=1).to_numpy()
    k = tail_count(r.size, level)
    return float(-np.sort(r)[:k].mean())


def parametric_var(returns: pd.Series, level: float = 0.95) -> float:
    """Normal VaR: ``-(mean - std * z_level)``, sample mean and std (divisor T - 1)."""
    _check_level(level)
    r = _as_series(returns)
    z = float(norm.ppf(level))
    return float(-(r.mean() - r.std(ddof=1) * z))


def parametric_cvar(returns: pd.Series, level: float = 0.95) -> float:
    """Normal CVaR: ``-(mean - std * pdf(z_level) / (1 - level))``."""
    _check_level(level)
    r = _as_series(returns)
    z = float(norm.ppf(level))
    return float(-(r.mean() - r.std(ddof=1) * float(norm.pdf(z)) / (1.0 - level)))


def _aligned(returns: Any, benchmark: Any) -> pd.DataFrame:
    r = _as_series(returns, min_length=1)
    b = _as_series(benchmark, what="benchmark returns", min_length=1)
    both = pd.concat([r.rename("r"), b.rename("b")], axis=1, join="inner")
    if len(both) < 3:
        raise InvalidDataError(
            f"returns and benchmark share {len(both)} date(s); need at least 3 (give both "
            f"series the same kind of index: dates, or positions for numpy arrays)"
        )
    return both


def beta(returns: pd.Series, benchmark: pd.Series) -> float:
    """``cov(r, b) / var(b)`` on the dates both series share (benchmark = its simple returns)."""
    both = _aligned(returns, benchmark)
    var_b = float(both["b"].var(ddof=1))
    if var_b == 0.0:
        raise InvalidDataError("benchmark returns are constant; beta is undefined")
    return float(both["r"].cov(both["b"], ddof=1) / var_b)


def correlation(returns: pd.Series, benchmark: pd.Series) -> float:
    """Pearson correlation of the returns with the benchmark's on their shared dates."""
    both = _aligned(returns, benchmark)
    if float(both["b"].std()) == 0.0 or float(both["r"].std()) == 0.0:
        raise InvalidDataError("a constant series has no correlation")
    return float(both["r"].corr(both["b"]))


def risk_contributions(
    weights: pd.Series, cov: pd.DataFrame, *, fractional: bool = False
) -> pd.Series:
    """Euler risk contributions ``w_i (C w)_i / sqrt(w' C w)``; they sum to the volatility.

    ``cov`` is in the units wanted (annualised covariance gives annualised volatility). With
    ``fractional=True`` each is divided by the volatility, so they sum to one. Assets in
    ``cov`` that the weights do not name have weight 0.
    """
    w = _weights(weights)
    if isinstance(cov, pd.DataFrame):
        matrix = cov.astype(float)
        matrix.index = [str(i) for i in matrix.index]
        matrix.columns = [str(c) for c in matrix.columns]
    else:
        array = np.asarray(cov, dtype=float)
        names = [f"A{i}" for i in range(array.shape[0])] if array.ndim == 2 else []
        matrix = pd.DataFrame(array, index=names, columns=names[: array.shape[-1]])
    if matrix.shape[0] != matrix.shape[1] or list(matrix.index) != list(matrix.columns):
        raise InvalidDataError("covariance must be square with the same assets on both axes")
    unknown = [a for a in w.index if a not in matrix.index]
    if unknown:
        raise InvalidDataError(f"weights name asset(s) {unknown} missing from the covariance")
    full = w.reindex(matrix.index, fill_value=0.0)
    c = matrix.to_numpy()
    if not np.isfinite(c).all():
        raise InvalidDataError("covariance holds NaN or infinite entries")
    marginal = c @ full.to_numpy()
    variance = float(full.to_numpy() @ marginal)
    if variance <= 0.0:
        raise InvalidDataError(
            f"portfolio variance w'Cw is {variance:.3g}; risk contributions need a positive one"
        )
    vol = math.sqrt(variance)
    contrib = full.to_numpy() * marginal / vol
    if fractional:
        contrib = contrib / vol
    name = "risk_contribution_fraction" if fractional else "risk_contribution"
    return pd.Series(contrib, index=matrix.index, name=name)


def worst_periods(returns: pd.Series, *, n: int = 5, window: int = 1) -> pd.DataFrame:
    """The ``n`` worst non-overlapping windows of ``window`` consecutive periods, worst first.

    A window's return is compounded, ``prod(1 + r) - 1``. Windows are picked greedily: the
    worst, then the worst that shares no period with one already picked. Fewer than ``n`` rows
    come back when the series has no more disjoint windows. Columns: ``start``, ``end``
    (index labels of the first and last period), ``compounded_return``.
    """
    if n < 1:
        raise InvalidSpecError(f"n must be at least 1, got {n}")
    if window < 1:
        raise InvalidSpecError(f"window must be at least 1 period, got {window}")
    r = _as_series(returns, min_length=1)
    if window > len(r):
        raise InvalidDataError(f"window of {window} periods is longer than the {len(r)} returns")
    if window == 1:
        window_returns = r.to_numpy()  # exact, without the round trip through 1 + r
    else:
        windows = np.lib.stride_tricks.sliding_window_view(1.0 + r.to_numpy(), window)
        window_returns = windows.prod(axis=1) - 1.0
    used = np.zeros(len(r), dtype=bool)
    picked: list[int] = []
    for start in np.argsort(window_returns, kind="stable"):
        if not used[start : start + window].any():
            picked.append(int(start))
            used[start : start + window] = True
            if len(picked) == n:
                break
    table = pd.DataFrame(
        {
            "start": [r.index[i] for i in picked],
            "end": [r.index[i + window - 1] for i in picked],
            "compounded_return": [float(window_returns[i]) for i in picked],
        }
    )
    table.index = pd.RangeIndex(1, len(picked) + 1, name="rank")
    return table


class WorstPeriod(BaseModel):
    """One of the worst windows of a return series."""

    model_config = ConfigDict(frozen=True)

    start: str = Field(description="first period of the window (date or position)")
    end: str = Field(description="last period of the window")
    compounded_return: float = Field(description="prod(1 + r) - 1 over the window")


class RiskReport(BaseModel):
    """Every risk figure of one portfolio; each field's description states its convention."""

    model_config = ConfigDict(frozen=True)

    start: str = Field(description="first period used (date or position)")
    end: str = Field(description="last period used")
    periods: int = Field(description="number T of portfolio returns used")
    periods_left_out: int = Field(
        description="periods dropped because a held asset had no return (e.g. late listing)"
    )
    periods_per_year: int = Field(description="annualisation factor")
    confidence_level: float = Field(description="VaR/CVaR confidence level, e.g. 0.95")
    risk_free_rate_annual: float = Field(description="annual risk-free rate for Sharpe/Sortino")
    weights_sum: float = Field(description="sum of the weights as given (not rescaled)")
    mean_return_annualized_arithmetic: float = Field(
        description="mean periodic simple return x periods_per_year"
    )
    return_annualized_compound: float = Field(
        description="prod(1 + r) ** (periods_per_year / T) - 1 (CAGR of the constant-weight "
        "portfolio)"
    )
    volatility_annualized: float = Field(
        description="sample std of returns (divisor T - 1) x sqrt(periods_per_year)"
    )
    sharpe_ratio_annualized: float = Field(
        description="(mean x periods_per_year - rf) / volatility_annualized"
    )
    downside_deviation_annualized: float = Field(
        description="sqrt(mean over all T of min(r - rf / periods_per_year, 0)^2) x "
        "sqrt(periods_per_year)"
    )
    sortino_ratio_annualized: float = Field(
        description="(mean x periods_per_year - rf) / downside_deviation_annualized; inf if "
        "no period falls below the target"
    )
    var_historical_one_period: float = Field(
        description="-quantile(r, 1 - level), numpy linear interpolation; positive = loss"
    )
    cvar_historical_one_period: float = Field(
        description="-mean of the ceil((1 - level) T) worst returns"
    )
    var_parametric_normal_one_period: float = Field(
        description="-(mean - std z_level), normal distribution with sample mean and std"
    )
    cvar_parametric_normal_one_period: float = Field(
        description="-(mean - std pdf(z_level) / (1 - level)), normal distribution"
    )
    max_drawdown_compounded: float = Field(
        description="max of 1 - W_t / running peak, W_t = prod(1 + r) from W_0 = 1"
    )
    max_drawdown_uncompounded: float = Field(
        description="max of running peak - C_t, C_t = cumulative sum of r from C_0 = 0"
    )
    beta_to_benchmark: float | None = Field(
        default=None, description="cov(r, r_b) / var(r_b) on shared dates; None without one"
    )
    correlation_to_benchmark: float | None = Field(
        default=None, description="Pearson correlation with the benchmark returns"
    )
    benchmark_periods: int | None = Field(
        default=None, description="periods shared with the benchmark"
    )
    risk_contribution_annualized: dict[str, float] = Field(
        description="w_i (C w)_i / sqrt(w' C w), C = sample covariance of the used periods x "
        "periods_per_year; sums to volatility_annualized"
    )
    risk_contribution_fraction: dict[str, float] = Field(
        description="risk_contribution_annualized / volatility_annualized; sums to 1"
    )
    worst_periods_one_period: list[WorstPeriod] = Field(
        description="the worst single-period returns, worst first"
    )
    notes: list[str] = Field(default_factory=list, description="what the figures rest on")


def _label(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return str(value.date()) if value == value.normalize() else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def assess_risk(
    returns: pd.DataFrame,
    weights: pd.Series,
    *,
    benchmark: pd.Series | None = None,
    level: float = 0.95,
    risk_free_rate: float = 0.0,
    periods_per_year: int = 252,
) -> RiskReport:
    """All figures of the constant-weight portfolio ``weights`` over the asset ``returns``.

    ``returns`` are periodic simple returns per asset; ``benchmark`` the benchmark's simple
    returns (not prices). See :class:`RiskReport` for each figure's convention.
    """
    _check_level(level)
    _check_periods(periods_per_year)
    frame = _returns_frame(returns)
    w = _weights(weights)
    rows, held, left_out = _held_rows(frame, w)
    if len(rows) < 2:
        raise InvalidDataError(
            f"need at least two periods in which every held asset has a return, got {len(rows)}"
        )
    r = pd.Series(rows.to_numpy() @ held.to_numpy(), index=rows.index, name="portfolio_return")
    notes: list[str] = []
    if left_out:
        notes.append(f"left out {left_out} period(s) in which a held asset had no return")
    total = float(w.sum())
    if abs(total - 1.0) > 1e-9:
        notes.append(f"weights sum to {total:.6g}, not 1; figures use them as given")

    cov = rows.cov(ddof=1) * periods_per_year
    contrib = risk_contributions(held, cov)
    fraction = contrib / float(contrib.sum())
    all_contrib = {a: float(contrib.get(a, 0.0)) for a in w.index}
    all_fraction = {a: float(fraction.get(a, 0.0)) for a in w.index}

    growth = float(np.prod(1.0 + r.to_numpy()))
    cagr = growth ** (periods_per_year / len(r)) - 1.0 if growth > 0 else -1.0  # -1: all lost
    beta_value: float | None = None
    corr_value: float | None = None
    shared: int | None = None
    if benchmark is not None:
        beta_value = beta(r, benchmark)
        corr_value = correlation(r, benchmark)
        shared = len(_aligned(r, benchmark))
        if shared < len(r):
            notes.append(
                f"beta and correlation use the {shared} of {len(r)} periods the benchmark shares"
            )
    worst = worst_periods(r, n=5, window=1)
    return RiskReport(
        start=_label(r.index[0]),
        end=_label(r.index[-1]),
        periods=len(r),
        periods_left_out=left_out,
        periods_per_year=periods_per_year,
        confidence_level=level,
        risk_free_rate_annual=risk_free_rate,
        weights_sum=total,
        mean_return_annualized_arithmetic=float(r.mean() * periods_per_year),
        return_annualized_compound=float(cagr),
        volatility_annualized=annualized_volatility(r, periods_per_year=periods_per_year),
        sharpe_ratio_annualized=sharpe_ratio(
            r, risk_free_rate=risk_free_rate, periods_per_year=periods_per_year
        ),
        downside_deviation_annualized=downside_deviation(
            r, risk_free_rate=risk_free_rate, periods_per_year=periods_per_year
        ),
        sortino_ratio_annualized=sortino_ratio(
            r, risk_free_rate=risk_free_rate, periods_per_year=periods_per_year
        ),
        var_historical_one_period=historical_var(r, level),
        cvar_historical_one_period=historical_cvar(r, level),
        var_parametric_normal_one_period=parametric_var(r, level),
        cvar_parametric_normal_one_period=parametric_cvar(r, level),
        max_drawdown_compounded=max_drawdown(r, compounded=True),
        max_drawdown_uncompounded=max_drawdown(r, compounded=False),
        beta_to_benchmark=beta_value,
        correlation_to_benchmark=corr_value,
        benchmark_periods=shared,
        risk_contribution_annualized=all_contrib,
        risk_contribution_fraction=all_fraction,
        worst_periods_one_period=[
            WorstPeriod(
                start=_label(row.start),
                end=_label(row.end),
                compounded_return=float(row.compounded_return),
            )
            for row in worst.itertuples()
        ],
        notes=notes,
    )
