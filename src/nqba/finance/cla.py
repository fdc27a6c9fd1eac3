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
from numba import njit

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


_OK, _SINGULAR, _DEGENERATE, _NO_END = 0, 1, 2, 3


def critical_line(
    mu: np.ndarray, cov: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Corner portfolios of min w'Sw s.t. sum(w) = 1, lower <= w <= upper, over all returns.

    Returns (lambdas, weights), ordered by decreasing expected return: weights[k] is the k-th
    corner portfolio, optimal for min w'Sw/2 - lambda mu'w at lambda = lambdas[k] (the first
    corner, the highest-return portfolio, stays optimal for every larger lambda; the last,
    the minimum-variance portfolio, has lambda 0). Between two consecutive corners the frontier
    weights are the affine interpolation (in expected return) of the two. The walk runs in a
    numba kernel: NumPy's per-call overhead made it most of a small decision's time.
    """
    n = len(mu)
    w, top = highest_return_portfolio(mu, lower, upper)
    status, count, lambdas, corners, free = _walk(
        np.ascontiguousarray(mu, dtype=np.float64),
        np.ascontiguousarray(cov, dtype=np.float64),
        np.ascontiguousarray(lower, dtype=np.float64),
        np.ascontiguousarray(upper, dtype=np.float64),
        w,
        top,
        10 * n + 10,
    )
    if status == _SINGULAR:
        raise OptimizationError(
            "critical line: the covariance is singular on the assets between their bounds "
            f"(positions {[int(i) for i in np.flatnonzero(free)][:8]}); use method='parametric'"
        )
    if status == _DEGENERATE:
        raise OptimizationError(
            "critical line: every asset sits at a bound (degenerate bounds); use "
            "method='parametric'"
        )
    if status == _NO_END:
        raise OptimizationError("critical line did not reach the minimum-variance portfolio")
    return lambdas[:count].copy(), corners[:count].copy()


@njit(cache=True)
def _solve_kkt(kkt: np.ndarray, rhs: np.ndarray) -> bool:
    """Solve ``kkt x = rhs`` in place (rhs becomes x) by Gaussian elimination with partial
    pivoting, as LAPACK's gesv; False when a pivot is exactly zero (singular)."""
    m = kkt.shape[0]
    for col in range(m):
        pivot = col
        for r in range(col + 1, m):
            if abs(kkt[r, col]) > abs(kkt[pivot, col]):
                pivot = r
        if kkt[pivot, col] == 0.0:
            return False
        if pivot != col:
            for c in range(m):
                kkt[col, c], kkt[pivot, c] = kkt[pivot, c], kkt[col, c]
            for c in range(rhs.shape[1]):
                rhs[col, c], rhs[pivot, c] = rhs[pivot, c], rhs[col, c]
        for r in range(col + 1, m):
            f = kkt[r, col] / kkt[col, col]
            if f != 0.0:
                for c in range(col, m):
                    kkt[r, c] -= f * kkt[col, c]
                for c in range(rhs.shape[1]):
                    rhs[r, c] -= f * rhs[col, c]
    for col in range(m - 1, -1, -1):
        for c in range(rhs.shape[1]):
            acc = rhs[col, c]
            for k in range(col + 1, m):
                acc -= kkt[col, k] * rhs[k, c]
            rhs[col, c] = acc / kkt[col, col]
    return True


@njit(cache=True)
def _walk(
    mu: np.ndarray,
    cov: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    w: np.ndarray,
    top: int,
    max_steps: int,
) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """The corners from the highest-return portfolio ``w`` (asset ``top`` free) down to the
    minimum-variance one: (status, count, lambdas, corners, free assets at the end).

    Each step solves the KKT system of the free assets, S_FF w_F + gamma 1 = lam mu_F - S_FB
    w_B and 1'w_F = 1 - 1'w_B, for w_F(lam) = a + lam b, and moves lam down to the next event:
    the largest multiplier in (0, lam] at which a free asset reaches a bound or a bounded
    one's gradient c + lam d changes sign (it comes free). The asset changed by the previous
    event may not change back at the same multiplier, which would cycle when two coincide.
    """
    n = mu.shape[0]
    free = np.zeros(n, dtype=np.bool_)
    free[top] = True
    lambdas = np.empty(max_steps + 2)
    corners = np.empty((max_steps + 2, n))
    lambdas[0] = np.inf
    corners[0] = w
    count = 1
    lam = np.inf
    last_changed = -1
    for _ in range(max_steps):
        f_idx = np.flatnonzero(free)
        b_idx = np.flatnonzero(~free)
        nf, nb = f_idx.shape[0], b_idx.shape[0]
        if nf == 0:
            return _DEGENERATE, count, lambdas, corners, free
        kkt = np.zeros((nf + 1, nf + 1))
        rhs = np.zeros((nf + 1, 2))
        budget = 1.0
        for j in range(nb):
            budget -= w[b_idx[j]]
        for p in range(nf):
            i = f_idx[p]
            for q in range(nf):
                kkt[p, q] = cov[i, f_idx[q]]
            kkt[p, nf] = 1.0
            kkt[nf, p] = 1.0
            acc = 0.0
            for j in range(nb):
                acc += cov[i, b_idx[j]] * w[b_idx[j]]
            rhs[p, 0] = -acc
            rhs[p, 1] = mu[i]
        rhs[nf, 0] = budget
        if not _solve_kkt(kkt, rhs):
            return _SINGULAR, count, lambdas, corners, free
        a, b = rhs[:nf, 0], rhs[:nf, 1]  # w_F(lam) = a + lam b
        g0, g1 = rhs[nf, 0], rhs[nf, 1]  # gamma(lam) = g0 + lam g1
        tol = 0.0 if np.isinf(lam) else 1e-12 * max(1.0, abs(lam))
        best_lam, best_asset, best_kind = 0.0, -1, 0  # kind: 1 lower, 2 upper, 3 free
        b_max = 0.0
        for p in range(nf):
            b_max = max(b_max, abs(b[p]))
        b_tiny = 1e-13 * b_max
        for p in range(nf):  # a free asset reaches a bound as lam falls
            i = f_idx[p]
            kind = 0
            cand = 0.0
            if b[p] > b_tiny:
                cand, kind = (lower[i] - a[p]) / b[p], 1
            elif b[p] < -b_tiny:
                cand, kind = (upper[i] - a[p]) / b[p], 2
            if kind == 0 or not np.isfinite(cand) or cand <= best_lam or cand > lam + tol:
                continue
            if i == last_changed and cand >= lam - tol:
                continue
            best_lam, best_asset, best_kind = cand, i, kind
        c = np.empty(nb)
        d = np.empty(nb)
        d_max = 0.0
        for j in range(nb):  # bounded assets' gradient: >= 0 at a lower bound, <= 0 at an upper
            i = b_idx[j]
            cj, dj = g0, g1 - mu[i]
            for p in range(nf):
                cj += cov[i, f_idx[p]] * a[p]
                dj += cov[i, f_idx[p]] * b[p]
            for k in range(nb):
                cj += cov[i, b_idx[k]] * w[b_idx[k]]
            c[j], d[j] = cj, dj
            d_max = max(d_max, abs(dj))
        d_tiny = 1e-13 * d_max
        for j in range(nb):  # a bounded asset's gradient changes sign: it frees up
            i = b_idx[j]
            if upper[i] - lower[i] <= 1e-15:
                continue
            at_lower = w[i] <= lower[i] + 0.5 * (upper[i] - lower[i])
            if not ((at_lower and d[j] > d_tiny) or (not at_lower and d[j] < -d_tiny)):
                continue
            cand = -c[j] / d[j]
            if not np.isfinite(cand) or cand <= best_lam or cand > lam + tol:
                continue
            if i == last_changed and cand >= lam - tol:
                continue
            best_lam, best_asset, best_kind = cand, i, 3
        if best_asset < 0:  # no event before lam = 0: the last piece ends at min variance
            for p in range(nf):
                w[f_idx[p]] = a[p]
            lambdas[count] = 0.0
            corners[count] = w
            return _OK, count + 1, lambdas, corners, free
        lam = best_lam
        for p in range(nf):
            w[f_idx[p]] = a[p] + lam * b[p]
        if best_kind == 3:
            free[best_asset] = True
        else:
            w[best_asset] = lower[best_asset] if best_kind == 1 else upper[best_asset]
            free[best_asset] = False
        last_changed = best_asset
        moved = 0.0
        for i in range(n):
            moved = max(moved, abs(w[i] - corners[count - 1, i]))
        if moved > 1e-15:
            lambdas[count] = lam
            corners[count] = w
            count += 1
        else:  # same portfolio (e.g. the first asset entering at the top): keep one copy
            lambdas[count - 1] = lam
    return _NO_END, count, lambdas, corners, free


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
