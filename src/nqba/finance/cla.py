"""Markowitz's critical line algorithm, and exact single portfolios read off its corners.

With only the budget and per-asset bounds, the minimum-variance weights for a target return
are piecewise affine in that return (and in the multiplier lambda of the return), changing
pieces only at corner portfolios where an asset reaches or leaves a bound. The corners are
found by solving one small linear system each; every frontier portfolio is then an exact
interpolation between two of them, with no iterative solver tolerance. From the corners this
module also reads the single portfolios the optimizer's objectives ask for: minimum variance,
maximum utility, maximum Sharpe, a target return and a target volatility.
"""

from __future__ import annotations

import math

import numpy as np

from nqba.finance.errors import OptimizationError


def highest_return_portfolio(
    mu: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, int]:
    """Max mu'w s.t. sum(w) = 1, lower <= w <= upper, by filling assets in order of mu.

    Returns the weights and the index of the asset that completes the budget (between its
    bounds or at its maximum). Assumes sum(lower) <= 1 <= sum(upper).
    """
    w = lower.astype(float).copy()
    remaining = 1.0 - float(w.sum())
    order = np.argsort(-mu, kind="stable")
    for i in order:
        room = float(upper[i] - lower[i])
        if room >= remaining:
            w[i] += remaining
            return w, int(i)
        w[i] = upper[i]
        remaining -= room
    return w, int(order[-1])


def _next_event(
    events: list[tuple[float, int, str]], lam: float, last_changed: int
) -> tuple[float, int, str]:
    """The event with the largest multiplier in (0, lam]; (0, -1, "") when there is none.

    The asset changed by the previous event may not change back at the same multiplier,
    which would cycle when two events coincide.
    """
    best: tuple[float, int, str] = (0.0, -1, "")
    tol = 0.0 if math.isinf(lam) else 1e-12 * max(1.0, abs(lam))
    for cand, asset, kind in events:
        if not math.isfinite(cand) or cand <= best[0] or cand > lam + tol:
            continue
        if asset == last_changed and cand >= lam - tol:
            continue
        best = (cand, asset, kind)
    return best


def critical_line(
    mu: np.ndarray, cov: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Corner portfolios of min w'Sw s.t. sum(w) = 1, lower <= w <= upper, over all returns.

    Returns (lambdas, weights), ordered by decreasing expected return: weights[k] is the k-th
    corner portfolio, optimal for min w'Sw/2 - lambda mu'w at lambda = lambdas[k] (the first
    corner, the highest-return portfolio, stays optimal for every larger lambda; the last,
    the minimum-variance portfolio, has lambda 0). Between two consecutive corners the frontier
    weights are the affine interpolation (in expected return) of the two.
    """
    n = len(mu)
    w, top = highest_return_portfolio(mu, lower, upper)
    free = np.zeros(n, dtype=bool)
    free[top] = True
    lambdas: list[float] = [math.inf]
    corners: list[np.ndarray] = [w.copy()]
    lam = math.inf
    last_changed = -1
    for _ in range(10 * n + 10):
        f_idx = np.flatnonzero(free)
        b_idx = np.flatnonzero(~free)
        nf = len(f_idx)
        if nf == 0:
            raise OptimizationError(
                "critical line: every asset sits at a bound (degenerate bounds); use "
                "method='parametric'"
            )
        # KKT on the free assets: S_FF w_F + gamma 1 = lam mu_F - S_FB w_B, 1'w_F = 1 - 1'w_B.
        cov_f, cov_b = cov[f_idx], cov[b_idx]  # rows; np.ix_ costs more than it saves here
        kkt = np.zeros((nf + 1, nf + 1))
        kkt[:nf, :nf] = cov_f[:, f_idx]
        kkt[:nf, nf] = 1.0
        kkt[nf, :nf] = 1.0
        w_b = w[b_idx]
        rhs = np.zeros((nf + 1, 2))
        rhs[:nf, 0] = -cov_f[:, b_idx] @ w_b
        rhs[nf, 0] = 1.0 - float(w_b.sum())
        rhs[:nf, 1] = mu[f_idx]
        try:
            sol = np.linalg.solve(kkt, rhs)
        except np.linalg.LinAlgError as exc:
            raise OptimizationError(
                "critical line: the covariance is singular on the assets between their bounds "
                f"(positions {[int(i) for i in f_idx][:8]}); use method='parametric'"
            ) from exc
        a, b = sol[:nf, 0], sol[:nf, 1]  # w_F(lam) = a + lam b
        g0, g1 = sol[nf, 0], sol[nf, 1]  # gamma(lam) = g0 + lam g1
        # Gradient of the bounded assets: c + lam d; >= 0 at a lower bound, <= 0 at an upper.
        cov_bf = cov_b[:, f_idx]
        c = cov_bf @ a + cov_b[:, b_idx] @ w_b + g0
        d = cov_bf @ b - mu[b_idx] + g1
        events: list[tuple[float, int, str]] = []
        b_tiny = 1e-13 * float(np.max(np.abs(b)))
        for j, i in enumerate(f_idx):  # a free asset reaches a bound as lam falls
            if b[j] > b_tiny:
                events.append(((lower[i] - a[j]) / b[j], int(i), "lower"))
            elif b[j] < -b_tiny:
                events.append(((upper[i] - a[j]) / b[j], int(i), "upper"))
        d_tiny = 1e-13 * float(np.max(np.abs(d), initial=0.0))
        for j, i in enumerate(b_idx):  # a bounded asset's gradient changes sign: it frees up
            if upper[i] - lower[i] <= 1e-15:
                continue
            at_lower = w[i] <= lower[i] + 0.5 * (upper[i] - lower[i])
            if (at_lower and d[j] > d_tiny) or (not at_lower and d[j] < -d_tiny):
                events.append((-c[j] / d[j], int(i), "free"))
        best_lam, best_asset, best_kind = _next_event(events, lam, last_changed)
        if best_asset < 0:  # no event before lam = 0: the last piece ends at min variance
            w[f_idx] = a
            lambdas.append(0.0)
            corners.append(w.copy())
            break
        lam = best_lam
        w[f_idx] = a + lam * b
        if best_kind == "free":
            free[best_asset] = True
        else:
            w[best_asset] = lower[best_asset] if best_kind == "lower" else upper[best_asset]
            free[best_asset] = False
        last_changed = best_asset
        if np.max(np.abs(w - corners[-1])) > 1e-15:
            lambdas.append(lam)
            corners.append(w.copy())
        else:  # same portfolio (e.g. the first asset entering at the top): keep one copy
            lambdas[-1] = lam
    else:
        raise OptimizationError("critical line did not reach the minimum-variance portfolio")
    return np.array(lambdas), np.array(corners)


def interpolate_corners(corners: np.ndarray, mu: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Frontier weights at each target return, affine between neighbouring corners."""
    returns = corners @ mu  # decreasing
    out = np.empty((len(targets), corners.shape[1]))
    for t, target in enumerate(targets):
        if target >= returns[0]:
            out[t] = corners[0]
            continue
        if target <= returns[-1]:
            out[t] = corners[-1]
            continue
        k = int(np.searchsorted(-returns, -target, side="right")) - 1  # returns[k] >= target
        k = min(max(k, 0), len(returns) - 2)
        hi, lo = returns[k], returns[k + 1]
        theta = 0.0 if hi - lo <= 0.0 else (target - lo) / (hi - lo)
        out[t] = corners[k + 1] + theta * (corners[k] - corners[k + 1])
    return out


def _segment_terms(lo: np.ndarray, hi: np.ndarray, cov: np.ndarray) -> tuple[float, float, float]:
    """(A, B, C) with variance(lo + t (hi - lo)) = A + 2 B t + C t^2."""
    d = hi - lo
    s_lo = cov @ lo
    return float(lo @ s_lo), float(d @ s_lo), float(d @ cov @ d)


def utility_portfolio(lambdas: np.ndarray, corners: np.ndarray, risk_aversion: float) -> np.ndarray:
    """argmax mu'w - risk_aversion/2 w'Sw: the frontier point at lambda = 1/risk_aversion."""
    lam = 1.0 / risk_aversion
    if len(corners) == 1 or lam >= lambdas[1]:
        return np.array(corners[0], dtype=float)
    k = int(np.searchsorted(-lambdas, -lam, side="right")) - 1  # lambdas[k] >= lam
    k = min(max(k, 1), len(corners) - 2)
    hi, lo = lambdas[k], lambdas[k + 1]
    theta = 0.0 if hi - lo <= 0.0 else (lam - lo) / (hi - lo)
    return np.asarray(corners[k + 1] + theta * (corners[k] - corners[k + 1]), dtype=float)


def sharpe_portfolio(
    corners: np.ndarray, mu: np.ndarray, cov: np.ndarray, risk_free_rate: float
) -> np.ndarray | None:
    """argmax (mu'w - rf) / sqrt(w'Sw) on the frontier; None when no point beats rf.

    On each piece lo + t (hi - lo) the ratio has one stationary point, where
    (r_hi - r_lo)(A + B t) = (r_lo - rf + (r_hi - r_lo) t)(B + C t) is linear in t.
    """
    best_w: np.ndarray | None = None
    best = -math.inf
    for k in range(len(corners) - 1, 0, -1):
        lo, hi = corners[k], corners[k - 1]
        a, b, c = _segment_terms(lo, hi, cov)
        r_lo, dr = float(mu @ lo) - risk_free_rate, float(mu @ (hi - lo))
        candidates = [0.0, 1.0]
        slope = dr * b - r_lo * c
        if abs(slope) > 0.0:
            t = (r_lo * b - dr * a) / slope
            if 0.0 < t < 1.0:
                candidates.append(t)
        for t in candidates:
            variance = a + 2.0 * b * t + c * t * t
            excess = r_lo + dr * t
            if variance <= 0.0 or excess <= 0.0:
                continue
            ratio = excess / math.sqrt(variance)
            if ratio > best:
                best, best_w = ratio, lo + t * (hi - lo)
    if best_w is None and len(corners) == 1:
        w = corners[0]
        if float(mu @ w) > risk_free_rate and float(w @ cov @ w) > 0.0:
            best_w = np.array(w, dtype=float)
    return best_w


def risk_portfolio(
    corners: np.ndarray, mu: np.ndarray, cov: np.ndarray, target_volatility: float
) -> np.ndarray | None:
    """argmax mu'w s.t. sqrt(w'Sw) <= target on the frontier; None below the minimum volatility."""
    target_var = target_volatility**2
    vols = np.einsum("ij,jk,ik->i", corners, cov, corners)
    if target_var < vols[-1] * (1.0 - 1e-12):
        return None
    if target_var >= vols[0]:
        return np.array(corners[0], dtype=float)
    for k in range(len(corners) - 1, 0, -1):  # from minimum variance up
        if vols[k - 1] < target_var:
            continue
        lo, hi = corners[k], corners[k - 1]
        a, b, c = _segment_terms(lo, hi, cov)
        # c t^2 + 2 b t + (a - target_var) = 0: the larger root lies in [0, 1].
        if c <= 0.0:
            t = 0.0 if b == 0.0 else (target_var - a) / (2.0 * b)
        else:
            disc = max(b * b - c * (a - target_var), 0.0)
            t = (-b + math.sqrt(disc)) / c
        return np.asarray(lo + min(max(t, 0.0), 1.0) * (hi - lo), dtype=float)
    return np.array(corners[-1], dtype=float)
