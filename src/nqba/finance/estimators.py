"""Expected returns and covariance matrices from daily prices, each method named by what it does.

All estimates come from simple returns (:func:`nqba.finance.data.simple_returns`) and are
annualised with ``periods_per_year`` (252 for daily prices). Each asset uses its own history:
a late-listed asset's mean covers its listed days only, and the sample covariance of two assets
covers the days both have returns (pairwise), as PyPortfolioOpt's ``mean_historical_return``
and ``sample_cov`` do; with the same prices the figures agree with them.

Expected return methods (``ReturnMethod``), per asset, over its ``T`` returns ``r_t``:

``arithmetic``
    ``mean(r) * periods_per_year``.
``cagr``
    Compound annual growth: ``prod(1 + r) ** (periods_per_year / T) - 1``.
``ewma``
    Exponentially weighted mean daily return, annualised arithmetically:
    ``periods_per_year * sum_t w_t r_t / sum_t w_t`` with ``w_t = (1 - a) ** (N - 1 - t)``,
    ``a = 2 / (span + 1)``, ``t`` the row position and ``N`` the number of rows (the newest
    row weighs 1; missing rows weigh nothing but still age the older ones). This is pandas'
    ``ewm(span=span, adjust=True).mean()`` at the last row, and PyPortfolioOpt's
    ``ema_historical_return(..., compounding=False)``.

Covariance methods (``CovarianceMethod``):

``sample``
    Pairwise sample covariance (divisor ``n - 1`` over the ``n`` days both assets have
    returns) times ``periods_per_year``. Pairwise estimates need not form a positive
    semidefinite matrix; :func:`repair_psd` then clips the negative eigenvalues and warns.
``ledoit_wolf``
    scikit-learn's ``LedoitWolf`` (shrinkage towards a scaled identity) fitted on the
    *complete* rows only, the days on which every asset has a return, times
    ``periods_per_year``. With late listings that is the period since the last listing.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf

from nqba.finance.data import as_price_frame, simple_returns
from nqba.finance.errors import InvalidDataError, InvalidSpecError

ReturnMethod = Literal["arithmetic", "cagr", "ewma"]
CovarianceMethod = Literal["sample", "ledoit_wolf"]

PSD_RELATIVE_TOLERANCE = 1e-12
"""An eigenvalue below ``-PSD_RELATIVE_TOLERANCE * max |eigenvalue|`` counts as negative."""

SYMMETRY_RELATIVE_TOLERANCE = 1e-8
"""A matrix whose asymmetry exceeds this fraction of its largest entry is refused."""


class NonPsdCovarianceWarning(UserWarning):
    """A covariance matrix had negative eigenvalues and was changed to the nearest PSD one.

    ``min_eigenvalue`` is the most negative eigenvalue before the repair; ``max_abs_change``
    and ``frobenius_change`` measure how far the entries moved.
    """

    def __init__(
        self,
        message: str,
        *,
        min_eigenvalue: float,
        num_negative: int,
        max_abs_change: float,
        frobenius_change: float,
    ) -> None:
        super().__init__(message)
        self.min_eigenvalue = min_eigenvalue
        self.num_negative = num_negative
        self.max_abs_change = max_abs_change
        self.frobenius_change = frobenius_change


def _check_periods(periods_per_year: int) -> None:
    if periods_per_year < 1:
        raise InvalidSpecError(
            f"periods_per_year must be a positive integer, got {periods_per_year}"
        )


def _returns(prices: pd.DataFrame) -> pd.DataFrame:
    frame = as_price_frame(prices)
    if len(frame) < 2:
        raise InvalidDataError(f"need at least two rows of prices, got {len(frame)}")
    bad = [str(c) for c in frame.columns if (frame[c].dropna() <= 0).any()]
    if bad:
        raise InvalidDataError(f"prices must be positive; asset(s) {bad} have a price <= 0")
    returns = simple_returns(frame)
    counts = returns.count()
    empty = [str(c) for c in frame.columns if c not in counts.index or counts[c] == 0]
    if empty:
        raise InvalidDataError(
            f"asset(s) {empty} have no return (fewer than two consecutive prices); "
            f"drop them or give more history"
        )
    if not np.isfinite(returns.to_numpy()[~np.isnan(returns.to_numpy())]).all():
        raise InvalidDataError("prices produce infinite returns; check for zero prices")
    return returns


def expected_returns(
    prices: pd.DataFrame,
    method: ReturnMethod = "cagr",
    *,
    periods_per_year: int = 252,
    span: int = 500,
) -> pd.Series:
    """Annualised expected return per asset by ``method`` (see the module docstring)."""
    _check_periods(periods_per_year)
    if method not in get_args(ReturnMethod):
        raise InvalidSpecError(
            f"unknown expected-return method {method!r}; choose one of {get_args(ReturnMethod)}"
        )
    returns = _returns(prices)
    if method == "arithmetic":
        mu = returns.mean() * periods_per_year
    elif method == "cagr":
        growth = (1.0 + returns).prod()
        if (growth <= 0).any():
            lost = [str(c) for c in growth.index[growth <= 0]]
            raise InvalidDataError(f"asset(s) {lost} lost everything; CAGR is undefined")
        mu = growth ** (periods_per_year / returns.count()) - 1.0
    else:
        if span < 1:
            raise InvalidSpecError(f"span must be at least 1, got {span}")
        mu = returns.ewm(span=span, adjust=True).mean().iloc[-1] * periods_per_year
    mu = mu.astype(float)
    mu.name = f"expected_return_{method}"
    return mu


def covariance(
    prices: pd.DataFrame,
    method: CovarianceMethod = "sample",
    *,
    periods_per_year: int = 252,
) -> pd.DataFrame:
    """Annualised covariance of the assets' simple returns by ``method`` (module docstring)."""
    _check_periods(periods_per_year)
    if method not in get_args(CovarianceMethod):
        raise InvalidSpecError(
            f"unknown covariance method {method!r}; choose one of {get_args(CovarianceMethod)}"
        )
    returns = _returns(prices)
    if method == "sample":
        cov = returns.cov(min_periods=2) * periods_per_year
        missing = np.argwhere(np.isnan(cov.to_numpy()))
        if missing.size:
            i, j = missing[0]
            raise InvalidDataError(
                f"assets {cov.index[i]!r} and {cov.columns[j]!r} share fewer than two days "
                f"with returns; their covariance cannot be estimated"
            )
    else:
        complete = returns.dropna(how="any")
        if len(complete) < 2:
            latest = returns.apply(lambda s: s.first_valid_index()).idxmax()
            raise InvalidDataError(
                f"Ledoit-Wolf needs at least two days on which every asset has a return, "
                f"found {len(complete)}; the latest listing is {latest!r}"
            )
        fitted = LedoitWolf().fit(complete.to_numpy())
        cov = pd.DataFrame(
            fitted.covariance_ * periods_per_year, index=returns.columns, columns=returns.columns
        )
    repaired = repair_psd(cov)
    return repaired


def repair_psd(cov: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
    """The nearest PSD matrix (Frobenius norm) by clipping negative eigenvalues to zero.

    Returns ``cov`` itself when no eigenvalue is below ``-PSD_RELATIVE_TOLERANCE`` times the
    largest absolute one; otherwise emits :class:`NonPsdCovarianceWarning` with the most
    negative eigenvalue and the size of the change. Refuses non-square, non-finite or clearly
    asymmetric input.
    """
    frame: Any = cov if isinstance(cov, pd.DataFrame) else None
    matrix = np.asarray(cov if frame is None else frame.to_numpy(), dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise InvalidDataError(
            f"covariance must be a non-empty square matrix, got shape {matrix.shape}"
        )
    if frame is not None and not frame.index.equals(frame.columns):
        raise InvalidDataError(
            "covariance rows and columns must name the same assets in the same order"
        )
    if not np.isfinite(matrix).all():
        raise InvalidDataError("covariance holds NaN or infinite entries")
    scale = float(np.abs(matrix).max())
    asymmetry = float(np.abs(matrix - matrix.T).max())
    if asymmetry > SYMMETRY_RELATIVE_TOLERANCE * max(scale, np.finfo(float).tiny):
        raise InvalidDataError(
            f"covariance is not symmetric (largest |C - C^T| entry {asymmetry:.3g} against "
            f"largest entry {scale:.3g})"
        )
    symmetric = (matrix + matrix.T) / 2.0
    eigenvalues, vectors = np.linalg.eigh(symmetric)
    tolerance = PSD_RELATIVE_TOLERANCE * max(float(np.abs(eigenvalues).max()), 0.0)
    negative = eigenvalues < -tolerance
    if not negative.any():
        return cov
    clipped = np.clip(eigenvalues, 0.0, None)
    fixed = (vectors * clipped) @ vectors.T
    fixed = (fixed + fixed.T) / 2.0
    change = fixed - matrix
    max_abs_change = float(np.abs(change).max())
    frobenius_change = float(np.linalg.norm(change))
    min_eigenvalue = float(eigenvalues.min())
    warnings.warn(
        NonPsdCovarianceWarning(
            f"covariance matrix is not positive semidefinite: {int(negative.sum())} negative "
            f"eigenvalue(s), the most negative {min_eigenvalue:.6g}; clipped them to zero, "
            f"which changed entries by at most {max_abs_change:.6g} (Frobenius norm of the "
            f"change {frobenius_change:.6g}, {frobenius_change / np.linalg.norm(matrix):.3g} "
            f"of the matrix's)",
            min_eigenvalue=min_eigenvalue,
            num_negative=int(negative.sum()),
            max_abs_change=max_abs_change,
            frobenius_change=frobenius_change,
        ),
        stacklevel=2,
    )
    if frame is not None:
        return pd.DataFrame(fixed, index=frame.index, columns=frame.columns)
    return fixed
