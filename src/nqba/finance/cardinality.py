"""Cardinality-constrained mean-variance portfolios (Chang et al. 2000), selected by the engine.

Model: minimise ``λ wᵀΣw - (1-λ) μᵀw`` over long-only weights with ``Σ w = 1``, exactly ``k``
(or at most ``k``) assets held, and ``min_weight <= w_i <= max_weight`` for every held asset.

The search has four steps, each timed in the plan:

1. selection: the engine (``nqba.engine.solve`` with the ``constrained`` sampler, whose swap
   moves keep the cardinality group satisfied) samples the equal-weight selection model
   (:func:`selection_model`), a binary quadratic model over "hold asset i";
2. weights: each candidate support gets its optimal weights from a small QP (a primal
   active-set method over the k held assets, compiled with numba);
3. local search: swap (and, for "at most k", add/drop) moves, each re-solving the k-asset QP,
   from the engine's supports and from the rounded convex relaxation;
4. bound: the perspective relaxation gives a valid lower bound. Its diagonal share D (Σ - D
   stays PSD) is ``0.99·λ_min(correlation)·diag(Σ)``, or a greedy maximal diagonal when that
   gives the stronger root bound. A best-first branch and bound on it, with reduced-cost
   fixing from its duals and QP enumeration of small subtrees, proves the optimum when it
   finishes in the time budget; problems with few supports are enumerated outright.

``proven_optimal`` is true only when enumeration or the branch and bound closed the gap to
:data:`OPTIMALITY_TOLERANCE` (relative to the objective scale); otherwise ``lower_bound`` and
``gap`` say how far from optimal the answer can be at most.

Measured on OR-Library port1-3 (k = 5, 10; 20 risk weights each, all proven): the engine's
support alone was optimal at 74 of 120 points (up to 11 % worse elsewhere); local search from
it reached the optimum at 119, and from random supports in 597 of 600 runs. The engine gives a
good start; the local search and the bound make the answer optimal and certain.
"""

from __future__ import annotations

import heapq
import importlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dimod
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from numba import njit

from nqba.engine import solve as engine_solve
from nqba.engine.errors import EngineError
from nqba.finance.errors import (
    InfeasiblePortfolioError,
    InvalidDataError,
    InvalidSpecError,
    OptimizationError,
)

__all__ = [
    "CardinalityPlan",
    "SelectionBaseline",
    "cardinality_frontier",
    "frontier_deviation",
    "optimize_cardinality",
    "selection_model",
    "support_weights",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# clarabel (the conic solver cvxpy installs by default) ships no type information; it is
# called directly because each branch-and-bound node is one small SOCP and cvxpy's
# compilation would cost more than the solve.
_clarabel: Any = importlib.import_module("clarabel")

#: Gap (in units of the objective scale, see :func:`_objective_scale`) below which a bound
#: counts as proving the incumbent optimal; the conic solver is accurate to about 1e-8.
OPTIMALITY_TOLERANCE = 1e-7
#: Proof budget in seconds when ``time_limit`` is None.
DEFAULT_PROOF_SECONDS = 30.0
#: Supports (all sizes counted) up to which the proof enumerates them all instead of branching.
ENUMERATION_MAX_SUPPORTS = 20_000
#: A branch-and-bound node with at most this many completions is enumerated by QP (a few µs
#: each, warm-started) instead of relaxed (about 4 ms for 85 assets). Measured on port2-3
#: (k = 5, 10): 300 -> 3.5 s, 10 000 -> 1.3 s, 100 000 -> 2.2 s for port3 k = 5, λ = 0.99.
SUBTREE_ENUMERATION_MAX = 10_000
#: Engine sampling effort for the selection model: reads and sweeps per read. The equal-weight
#: selection model is easy: on port1-3 (k = 5, 10; 20 risk weights; 3 seeds) 2 reads of 50
#: sweeps never returned a higher energy than 8 reads of 100 sweeps.
ENGINE_NUM_READS = 2
ENGINE_NUM_SWEEPS = 50
#: Local search starts: the best distinct engine supports and the relaxation's rounding; then,
#: only when the root bound does not already certify the result, a few random supports (about
#: 2 ms each for 85 assets). Without them the search missed the optimum at one of 150
#: frontier points (port2, k = 10, λ = 1).
LOCAL_SEARCH_STARTS = 3
LOCAL_SEARCH_RANDOM_STARTS = 3
#: Cap on the QPs one local search may solve (a pass over swaps costs k·(n - k)).
LOCAL_SEARCH_MAX_QPS = 200_000
_DIAGONAL_SHARE = 0.99
_BOUND_MARGIN = 1e-8  # subtracted (relative) from the conic solver's dual objective


@dataclass(frozen=True)
class SelectionBaseline:
    """The engine's answer alone: its lowest-energy support, equally weighted and QP-weighted."""

    support: list[str]
    equal_weight_objective: float
    objective: float
    solver: str
    seconds: float


@dataclass(frozen=True, eq=False)
class CardinalityPlan:
    """A cardinality-constrained portfolio and how sure we are that it is optimal.

    ``weights`` covers every asset (zero off the support). ``objective`` is
    ``risk_weight·variance - (1-risk_weight)·expected_return`` in the units of the inputs
    (per period, not annualised). ``lower_bound`` is a proven bound on the optimum (None when
    the relaxation could not be solved); ``gap = objective - lower_bound`` (absolute) and
    ``relative_gap = gap / |objective|``. ``bound_method`` says where the bound comes from.
    ``baseline`` is the engine-only answer on the same inputs.
    """

    weights: pd.Series
    support: list[str]
    objective: float
    expected_return: float
    variance: float
    lower_bound: float | None
    gap: float | None
    relative_gap: float | None
    proven_optimal: bool
    bound_method: str
    method: str
    timings: dict[str, float]
    notes: list[str]
    baseline: SelectionBaseline
    k: int
    risk_weight: float
    min_weight: float
    max_weight: float
    exact_k: bool
    nodes: int = 0
    engine_info: dict[str, Any] = field(default_factory=dict)


# Input checks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    names: list[str]
    mu: FloatArray
    cov: FloatArray
    corr_min_eig: float
    k: int
    lam: float
    eps: float
    delta: float
    exact_k: bool
    kmin: int  # smallest support size that can hold sum w = 1 within the weight bounds
    kmax: int

    @property
    def n(self) -> int:
        return len(self.mu)


def _as_inputs(mu: Any, cov: Any) -> tuple[list[str], FloatArray, FloatArray, float]:
    """Names, mean vector, covariance matrix and the smallest eigenvalue of the correlation
    matrix; pandas labels are kept and aligned."""
    if isinstance(mu, pd.DataFrame):
        raise InvalidDataError("mu must be one vector of expected returns, not a table")
    names: list[str] | None = [str(x) for x in mu.index] if isinstance(mu, pd.Series) else None
    try:
        # an owned, writable copy: numba compiles read-only arrays as another type
        m = np.array(mu, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidDataError("mu must be numbers (one expected return per asset)") from None
    if m.ndim != 1 or m.size == 0:
        raise InvalidDataError(f"mu must be a non-empty vector; got shape {m.shape}")
    if isinstance(cov, pd.DataFrame):
        rows = [str(x) for x in cov.index]
        cols = [str(x) for x in cov.columns]
        if rows != cols:
            raise InvalidDataError("the covariance's row and column labels differ")
        if names is not None and rows != names:
            if sorted(rows) != sorted(names) or len(set(names)) != len(names):
                raise InvalidDataError(
                    "mu and the covariance name different assets; give both for the same assets"
                )
            cov = cov.loc[list(mu.index), list(mu.index)]
        names = names or rows
    try:
        c = np.asarray(cov, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidDataError("the covariance must be a numeric matrix") from None
    n = m.size
    if c.shape != (n, n):
        raise InvalidDataError(
            f"the covariance must be {n} x {n} for {n} assets; got shape {c.shape}"
        )
    if not np.all(np.isfinite(m)):
        raise InvalidDataError("mu has NaN or infinite entries; drop or fill those assets")
    if not np.all(np.isfinite(c)):
        raise InvalidDataError("the covariance has NaN or infinite entries")
    scale = float(np.abs(c).max()) or 1.0
    if not np.allclose(c, c.T, rtol=0.0, atol=1e-10 * scale):
        raise InvalidDataError("the covariance is not symmetric")
    c = (c + c.T) / 2.0
    var = np.diag(c)
    if np.any(var < 0):
        raise InvalidDataError("the covariance has a negative variance on its diagonal")
    held = var > 0
    zero = ~held
    if zero.any() and np.abs(c[zero]).max() > 1e-12 * scale:
        raise InvalidDataError(
            "the covariance is not positive semidefinite: an asset with zero variance has "
            "nonzero covariances; repair it (nqba.finance.estimators.repair_psd)"
        )
    # Σ is PSD exactly when its correlation matrix is; that one's smallest eigenvalue also sets
    # the diagonal share of the perspective relaxation.
    sd = np.sqrt(var[held])
    corr = c[np.ix_(held, held)] / np.outer(sd, sd) if held.any() else np.zeros((0, 0))
    eig = np.linalg.eigvalsh(corr) if held.any() else np.zeros(1)
    if eig[0] < -1e-10 * max(float(eig[-1]), 1.0):
        raise InvalidDataError(
            f"the covariance is not positive semidefinite (its correlation matrix has "
            f"eigenvalue {eig[0]:.3g}); repair it (nqba.finance.estimators.repair_psd) or "
            "estimate it with shrinkage (method='ledoit_wolf')"
        )
    if names is None:
        names = [f"A{i}" for i in range(n)]
    if len(set(names)) != n:
        raise InvalidDataError("asset names must be unique")
    return names, m, c, float(eig[0])


def _problem(
    mu: Any,
    cov: Any,
    k: Any,
    risk_weight: Any,
    min_weight: Any,
    max_weight: Any,
    exact_k: bool,
) -> _Problem:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InvalidSpecError(
            f"k (the number of assets to hold) must be a positive integer; got {k!r}"
        )
    lam = _finite("risk_weight", risk_weight)
    if not 0.0 <= lam <= 1.0:
        raise InvalidSpecError(
            f"risk_weight must lie in [0, 1] (0: return only, 1: variance only); got {lam}"
        )
    eps = _finite("min_weight", min_weight)
    delta = _finite("max_weight", max_weight)
    if eps < 0:
        raise InvalidSpecError(f"min_weight must be >= 0 (long-only); got {eps}")
    if delta <= 0:
        raise InvalidSpecError(f"max_weight must be > 0; got {delta}")
    if eps > delta:
        raise InvalidSpecError(
            f"min_weight ({eps}) is larger than max_weight ({delta}); swap or change them"
        )
    names, m, c, corr_eig = _as_inputs(mu, cov)
    n = m.size
    k = int(k)
    if exact_k:
        if k > n:
            raise InvalidSpecError(
                f"k = {k} assets asked for, but only {n} are given; lower k to at most {n} "
                "or pass exact_k=False"
            )
        if k * eps > 1.0 + 1e-12:
            raise InfeasiblePortfolioError(
                f"holding exactly {k} assets at min_weight {eps} needs {k * eps:.4g} > 1 of the "
                f"budget; lower min_weight to at most {1.0 / k:.4g} or hold fewer assets"
            )
        if k * delta < 1.0 - 1e-12:
            raise InfeasiblePortfolioError(
                f"{k} assets at max_weight {delta} can hold only {k * delta:.4g} < 1 of the "
                f"budget; raise max_weight to at least {1.0 / k:.4g} or hold more assets"
            )
        return _Problem(names, m, c, corr_eig, k, lam, eps, delta, True, k, k)
    kmin = max(1, math.ceil(1.0 / delta - 1e-12))
    kmax = min(k, n, math.floor(1.0 / eps + 1e-12) if eps > 0 else n)
    if kmin > min(k, n):
        raise InfeasiblePortfolioError(
            f"at max_weight {delta} a portfolio needs at least {kmin} assets, but at most "
            f"{min(k, n)} may be held; raise max_weight to at least {1.0 / min(k, n):.4g} or k"
        )
    if kmin > kmax:
        raise InfeasiblePortfolioError(
            f"at min_weight {eps} at most {kmax} assets fit the budget, but max_weight {delta} "
            f"needs at least {kmin}; lower min_weight or raise max_weight"
        )
    return _Problem(names, m, c, corr_eig, k, lam, eps, delta, False, kmin, kmax)


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidSpecError(f"{name} must be a number; got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidSpecError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(x):
        raise InvalidSpecError(f"{name} must be finite; got {value!r}")
    return x


# The k-asset QP and the combinatorial searches (numba) -------------------------------------


@njit(cache=True)
def _cholesky_solve(A: FloatArray, n: int, B: FloatArray) -> bool:
    """Solve ``A X = B`` on the leading n x n block in place (A becomes its Cholesky factor,
    B the two solution columns); False if A is not positive definite.

    Hand-written because the matrices are tiny (k x k) and numba compiles ``np.linalg`` slowly.
    """
    for j in range(n):
        s = A[j, j]
        for p in range(j):
            s -= A[j, p] * A[j, p]
        if s <= 0.0:
            return False
        A[j, j] = math.sqrt(s)
        for i in range(j + 1, n):
            s = A[i, j]
            for p in range(j):
                s -= A[i, p] * A[j, p]
            A[i, j] = s / A[j, j]
    for c in range(2):
        for i in range(n):
            s = B[i, c]
            for p in range(i):
                s -= A[i, p] * B[p, c]
            B[i, c] = s / A[i, i]
        for i in range(n - 1, -1, -1):
            s = B[i, c]
            for p in range(i + 1, n):
                s -= A[p, i] * B[p, c]
            B[i, c] = s / A[i, i]
    return True


@njit(cache=True)
def _qp(
    S: FloatArray,
    mu: FloatArray,
    idx: IntArray,
    size: int,
    lam: float,
    lo: float,
    hi: float,
    w: FloatArray,
    state: npt.NDArray[np.int8],
    warm: bool,
) -> float:
    """Optimal weights on ``idx[:size]`` (into ``w[:size]``) and the objective; inf if infeasible.

    min lam·wᵀS w - (1-lam)·μᵀw  s.t.  Σw = 1, lo <= w <= hi. Primal active-set method started
    at w = 1/size (feasible whenever the problem is), or, with ``warm``, at the feasible
    ``w[:size]`` whose bounds ``state[:size]`` marks (0 free, -1 at lo, +1 at hi); the final
    active set is left in ``state``. lam = 0 is the greedy linear program. NaN: no convergence.
    """
    if size * lo > 1.0 + 1e-12 or size * hi < 1.0 - 1e-12:
        return np.inf
    g = np.empty(size)
    for a in range(size):
        g[a] = -(1.0 - lam) * mu[idx[a]]
    if lam == 0.0:  # linear: lo everywhere, then the rest to the highest returns first
        for a in range(size):
            w[a] = lo
            state[a] = 0
        left = 1.0 - size * lo
        val = 0.0
        for _ in range(size):
            pick = -1
            for a in range(size):
                if state[a] == 0 and (pick < 0 or g[a] < g[pick]):
                    pick = a
            add = min(hi - lo, left)
            w[pick] += add
            left -= add
            state[pick] = 1
        for a in range(size):
            val += g[a] * w[a]
        return val
    H = np.empty((size, size))
    ridge = 0.0
    for a in range(size):
        for b in range(size):
            H[a, b] = 2.0 * lam * S[idx[a], idx[b]]
        ridge = max(ridge, 1e-13 * H[a, a])
    if not warm:
        for a in range(size):
            w[a] = 1.0 / size
            state[a] = 0
    p = np.zeros(size)
    r = np.empty(size)
    free = np.empty(size, np.int64)
    HF = np.empty((size, size))
    x = np.empty((size, 2))
    for _ in range(50 * size + 100):
        rmax = 0.0
        for a in range(size):
            acc = g[a]
            for b in range(size):
                acc += H[a, b] * w[b]
            r[a] = acc
            rmax = max(rmax, abs(acc))
        nf = 0
        for a in range(size):
            if state[a] == 0:
                free[nf] = a
                nf += 1
        pmax = 0.0
        if nf >= 2:
            for a in range(nf):
                for b in range(nf):
                    HF[a, b] = H[free[a], free[b]]
                HF[a, a] += ridge + 1e-300
                x[a, 0] = r[free[a]]
                x[a, 1] = 1.0
            if not _cholesky_solve(HF, nf, x):
                return np.nan
            s0 = 0.0
            s1 = 0.0
            for a in range(nf):
                s0 += x[a, 0]
                s1 += x[a, 1]
            nu = -s0 / s1
            for a in range(nf):
                p[free[a]] = -(x[a, 0] + nu * x[a, 1])
                pmax = max(pmax, abs(p[free[a]]))
        if pmax > 1e-13:  # move toward the working-set optimum, stopping at the first bound
            alpha = 1.0
            block = -1
            for a in range(nf):
                i = free[a]
                if p[i] < 0.0 and (lo - w[i]) / p[i] < alpha:
                    alpha = (lo - w[i]) / p[i]
                    block = i
                elif p[i] > 0.0 and (hi - w[i]) / p[i] < alpha:
                    alpha = (hi - w[i]) / p[i]
                    block = i
            alpha = max(alpha, 0.0)
            for a in range(nf):
                w[free[a]] += alpha * p[free[a]]
            if block >= 0:
                state[block] = -1 if p[block] < 0.0 else 1
                w[block] = lo if p[block] < 0.0 else hi
            continue
        nu = 0.0  # stationary on the working set: release the most violated bound, if any
        for a in range(nf):
            nu -= r[free[a]]
        nu /= max(nf, 1)
        worst = -1
        worst_v = 1e-12 * (1.0 + rmax)
        for i in range(size):
            v = -(r[i] + nu) if state[i] == -1 else (r[i] + nu if state[i] == 1 else 0.0)
            if v > worst_v:
                worst_v = v
                worst = i
        if worst < 0:
            val = 0.0
            for a in range(size):
                val += 0.5 * w[a] * (r[a] + g[a])
            return val
        state[worst] = 0
    return np.nan


@njit(cache=True)
def _local_search(
    S: FloatArray,
    mu: FloatArray,
    lam: float,
    lo: float,
    hi: float,
    start: IntArray,
    kmin: int,
    kmax: int,
    tol: float,
    max_evals: int,
    supp: IntArray,
    w: FloatArray,
) -> tuple[int, float, int]:
    """First-improvement search over swap (and add/drop when kmin < kmax) moves from ``start``.

    Writes the final support and weights into ``supp[:size]`` and ``w[:size]`` (length kmax)
    and returns (size, objective, QPs solved).
    """
    n = mu.shape[0]
    size = start.shape[0]
    insupp = np.zeros(n, np.bool_)
    for a in range(size):
        supp[a] = start[a]
        insupp[start[a]] = True
    wt = np.empty(kmax)
    st = np.zeros(kmax, np.int8)
    stt = np.zeros(kmax, np.int8)
    trial = np.empty(kmax, np.int64)
    best = _qp(S, mu, supp, size, lam, lo, hi, w, st, False)
    evals = 1
    improved = True
    while improved and evals < max_evals:
        improved = False
        for a in range(size):
            for j in range(n):
                if insupp[j]:
                    continue
                for b in range(size):
                    trial[b] = supp[b]
                    wt[b] = w[b]  # asset j starts with the weight of the asset it replaces
                    stt[b] = st[b]
                trial[a] = j
                obj = _qp(S, mu, trial, size, lam, lo, hi, wt, stt, lam > 0.0)
                evals += 1
                if obj < best - tol:
                    insupp[supp[a]] = False
                    insupp[j] = True
                    best = obj
                    for b in range(size):
                        supp[b] = trial[b]
                        w[b] = wt[b]
                        st[b] = stt[b]
                    improved = True
        for grow in (True, False):  # add one asset, or drop one
            if (grow and size >= kmax) or (not grow and size <= kmin):
                continue
            for c in range(n if grow else size):
                if grow and insupp[c]:
                    continue
                m = 0
                for b in range(size):
                    if grow or b != c:
                        trial[m] = supp[b]
                        m += 1
                if grow:
                    trial[m] = c
                    m += 1
                obj = _qp(S, mu, trial, m, lam, lo, hi, wt, stt, False)
                evals += 1
                if obj < best - tol:
                    if grow:
                        insupp[c] = True
                    else:
                        insupp[supp[c]] = False
                    size = m
                    best = obj
                    for b in range(size):
                        supp[b] = trial[b]
                        w[b] = wt[b]
                        st[b] = stt[b]
                    improved = True
                    break
    return size, best, evals


@njit(cache=True)
def _enumerate(
    S: FloatArray,
    mu: FloatArray,
    lam: float,
    lo: float,
    hi: float,
    base: IntArray,
    pool: IntArray,
    r: int,
    best_supp: IntArray,
    best_w: FloatArray,
) -> tuple[float, int]:
    """The best support ``base`` + r assets of ``pool`` over all C(|pool|, r) choices (first
    in lexicographic order on ties); writes it to ``best_supp`` and its weights to ``best_w``
    and returns (objective, count). inf if no choice is feasible."""
    nb = base.shape[0]
    n = pool.shape[0]
    size = nb + r
    supp = np.empty(size, np.int64)
    for a in range(nb):
        supp[a] = base[a]
    comb = np.arange(r)
    w = np.empty(size)
    st = np.zeros(size, np.int8)
    best = np.inf
    count = 0
    if r > n:
        return best, count
    warm = False  # when only the last asset changed, the new one inherits its weight
    while True:
        for a in range(r):
            supp[nb + a] = pool[comb[a]]
        obj = _qp(S, mu, supp, size, lam, lo, hi, w, st, warm and lam > 0.0)
        count += 1
        if obj < best:
            best = obj
            for a in range(size):
                best_supp[a] = supp[a]
                best_w[a] = w[a]
        i = r - 1
        while i >= 0 and comb[i] == n - r + i:
            i -= 1
        if i < 0:
            break
        comb[i] += 1
        for j in range(i + 1, r):
            comb[j] = comb[j - 1] + 1
        warm = i == r - 1 and obj < np.inf
    return best, count


def support_weights(
    mu: pd.Series | FloatArray,
    cov: pd.DataFrame | FloatArray,
    support: Sequence[str],
    *,
    risk_weight: float,
    min_weight: float = 0.01,
    max_weight: float = 1.0,
) -> pd.Series:
    """Optimal weights (every asset, zero off the support) when exactly ``support`` is held."""
    names, m, c, _ = _as_inputs(mu, cov)
    lam = _finite("risk_weight", risk_weight)
    if not 0.0 <= lam <= 1.0:
        raise InvalidSpecError(f"risk_weight must lie in [0, 1]; got {lam}")
    lo, hi = _finite("min_weight", min_weight), _finite("max_weight", max_weight)
    if not 0.0 <= lo <= hi or hi <= 0.0:
        raise InvalidSpecError(
            f"need 0 <= min_weight <= max_weight and max_weight > 0; got {lo}, {hi}"
        )
    pos = {name: i for i, name in enumerate(names)}
    unknown = [s for s in support if str(s) not in pos]
    if unknown:
        raise InvalidSpecError(f"the support names unknown assets: {unknown[:5]}")
    idx = sorted({pos[str(s)] for s in support})
    if not idx or len(idx) != len(support):
        raise InvalidSpecError("the support must name distinct assets, at least one")
    ix = np.asarray(idx, dtype=np.int64)
    w = np.empty(ix.size)
    st = np.zeros(ix.size, np.int8)
    obj = _qp(c, m, ix, ix.size, lam, lo, hi, w, st, False)
    if math.isnan(obj):
        raise OptimizationError(
            "the weight QP did not converge on this support; the covariance may be badly scaled"
        )
    if not math.isfinite(obj):
        raise InfeasiblePortfolioError(
            f"{ix.size} assets cannot hold the whole budget within weights "
            f"[{min_weight}, {max_weight}]"
        )
    full = np.zeros(len(names))
    full[ix] = w
    return pd.Series(full, index=names, name="weight")


# The engine step ----------------------------------------------------------------------------


def selection_model(
    mu: pd.Series | FloatArray,
    cov: pd.DataFrame | FloatArray,
    k: int,
    *,
    risk_weight: float,
    exact_k: bool = True,
) -> dimod.ConstrainedQuadraticModel:
    """The equal-weight selection model: binary x_i (hold asset i), weights x/k.

    Objective ``λ·xᵀΣx/k² - (1-λ)·μᵀx/k``; constraint ``Σ x = k`` (or ``1 <= Σ x <= k``).
    Variables are the asset positions 0..n-1. Any dimod CQM solver (``nqba.engine.solve``, or
    D-Wave's) takes it.
    """
    prob = _problem(mu, cov, k, risk_weight, 0.0, 1.0, exact_k)
    return _selection_cqm(prob.mu, prob.cov, prob.k, prob.lam, exact_k, 1)


def _selection_bqm(
    mu: FloatArray, cov: FloatArray, k: int, lam: float
) -> dimod.BinaryQuadraticModel:
    """Objective of the equal-weight selection model (without its cardinality constraint)."""
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    linear: Any = lam * np.diag(cov) / k**2 - (1.0 - lam) * mu / k
    bqm.add_linear_from_array(linear)
    if mu.size > 1:
        bqm.add_quadratic_from_dense(np.triu(2.0 * lam * cov / k**2, 1))
    return bqm


def _selection_cqm(
    mu: FloatArray, cov: FloatArray, k: int, lam: float, exact_k: bool, kmin: int
) -> dimod.ConstrainedQuadraticModel:
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(_selection_bqm(mu, cov, k, lam))
    terms = [(i, 1) for i in range(mu.size)]
    if exact_k:
        cqm.add_constraint_from_iterable(terms, "==", k, label="hold exactly k")
    else:
        cqm.add_constraint_from_iterable(terms, "<=", k, label="hold at most k")
        cqm.add_constraint_from_iterable(terms, ">=", kmin, label="hold enough to invest")
    return cqm


@dataclass
class _EngineResult:
    supports: list[IntArray]  # distinct supports of allowed size, lowest surrogate energy first
    solver: str
    seconds: float
    info: dict[str, Any]


def _engine_supports(prob: _Problem, seed: int | None, time_limit: float | None) -> _EngineResult:
    """Sample the selection model with the engine's ``constrained`` sampler.

    The cardinality constraint goes to the sampler as a group (its moves keep the count in
    [kmin, kmax]) rather than through the engine's CQM path, whose model preparation took
    about 17 ms for 85 assets, more than the sampling itself; both paths sample the same model.
    """
    start = time.perf_counter()
    bqm = _selection_bqm(prob.mu, prob.cov, prob.k, prob.lam)
    group = (list(range(prob.n)), prob.kmin, prob.kmax)
    try:
        ss = engine_solve(
            bqm,
            solver="constrained",
            time_limit=time_limit,
            seed=seed,
            num_reads=ENGINE_NUM_READS,
            num_sweeps=ENGINE_NUM_SWEEPS,
            groups=[group],
        )
    except EngineError as e:
        raise OptimizationError(f"the engine could not sample the selection model: {e}") from e
    order = np.asarray(list(ss.variables), dtype=np.int64)
    supports: list[IntArray] = []
    seen: set[tuple[int, ...]] = set()
    for row in ss.record.sample:  # lowest energy first
        s = tuple(sorted(int(v) for v in order[np.nonzero(row)[0]]))
        if prob.kmin <= len(s) <= prob.kmax and s not in seen:
            seen.add(s)
            supports.append(np.asarray(s, dtype=np.int64))
    info = {
        "solver": ss.info.get("solver"),
        "stop_reason": ss.info.get("stop_reason"),
        "num_reads": ENGINE_NUM_READS,
        "num_sweeps": ENGINE_NUM_SWEEPS,
        "best_energy": float(ss.first.energy),
        "distinct_supports": len(supports),
        "timing": ss.info.get("timing"),
    }
    return _EngineResult(supports, str(ss.info.get("solver")), time.perf_counter() - start, info)


# The perspective relaxation ----------------------------------------------------------------


def _objective_scale(prob: _Problem) -> float:
    """Typical size of the objective: λ·mean variance + (1-λ)·mean |return| (> 0)."""
    ref = prob.lam * float(np.mean(np.diag(prob.cov))) + (1.0 - prob.lam) * float(
        np.mean(np.abs(prob.mu))
    )
    return ref if ref > 0 else 1.0


def _diagonal_share(prob: _Problem) -> FloatArray:
    """``d = c·diag(Σ)`` with ``c = 0.99·λ_min(correlation)``: Σ - diag(d) stays PSD."""
    share = max(_DIAGONAL_SHARE * prob.corr_min_eig, 0.0)
    return np.asarray(share * np.diag(prob.cov), dtype=np.float64)


def _greedy_diagonal(cov: FloatArray) -> FloatArray:
    """A maximal diagonal share: raise each d_i in turn (largest variance first) to 90% of
    what keeps Σ - diag(d) PSD, ``1 / ((Σ - D)^-1)_ii``.

    On a factor model (Σ = BBᵀ + Ψ) it recovers most of the idiosyncratic Ψ, which the
    proportional share misses; on the OR-Library sets it is the weaker of the two.
    """
    n = cov.shape[0]
    d = np.zeros(n)
    for i in np.argsort(-np.diag(cov), kind="stable"):
        if cov[i, i] <= 0:
            continue
        try:
            col = np.linalg.solve(cov - np.diag(d), np.eye(n)[:, i])
        except np.linalg.LinAlgError:
            break
        if col[i] > 0:
            d[i] += 0.9 / col[i]
    for _ in range(60):  # guard against rounding: shrink until Σ - D is PSD
        try:
            np.linalg.cholesky(cov - np.diag(d) + 1e-14 * np.abs(cov).max() * np.eye(n))
            return d
        except np.linalg.LinAlgError:
            d *= 0.9
    return np.zeros(n)


@dataclass
class _Relaxation:
    status: str  # "solved", "infeasible", "failed"
    bound: float = -math.inf  # scaled, already lowered by the safety margin
    w: FloatArray = field(default_factory=lambda: np.zeros(0))  # over included + free
    z: FloatArray = field(default_factory=lambda: np.zeros(0))  # over free
    cost_to_include: FloatArray = field(default_factory=lambda: np.zeros(0))
    cost_to_exclude: FloatArray = field(default_factory=lambda: np.zeros(0))


def _upper_triangle(m: int) -> tuple[IntArray, IntArray, IntArray]:
    """Rows, columns and CSC column pointers of the upper triangle of an m x m matrix."""
    cols = np.repeat(np.arange(m), np.arange(1, m + 1))
    starts = np.arange(m) * (np.arange(m) + 1) // 2
    rows = np.arange(cols.size) - np.repeat(starts, np.arange(1, m + 1))
    return rows, cols, np.concatenate([starts, [m * (m + 1) // 2]])


def _relax(
    prob: _Problem,
    d: FloatArray,
    scale: float,
    inc: IntArray,
    free: IntArray,
    *,
    refine: bool = False,
) -> _Relaxation:
    """Perspective relaxation with ``inc`` held and ``free`` undecided (all others out).

    min s·[λ(wᵀ(Σ-D_F)w + Σ_F d_i t_i) - (1-λ)μᵀw]  s.t. Σw = 1, Σz_F (= or <=) k - |inc|,
    ε <= w_inc <= δ, ε z <= w_F <= δ z, 0 <= z <= 1, t_i z_i >= w_i² (rotated cones).
    The duals of z <= 1 and z >= 0 bound what excluding or including a free asset costs.
    Variables: w (inc, then free), z (free), t (free); the matrices are built column by
    column in CSC form, which keeps a node's setup well below the conic solve.
    """
    ni, f = inc.size, free.size
    allv = np.concatenate([inc, free])
    m = ni + f
    nv = m + 2 * f
    lam, eps, delta = prob.lam, prob.eps, prob.delta
    left = prob.kmax - ni
    card_row = bool(f) and not prob.exact_k and left < f
    # rows: 0 budget, [1 count], inc lo/hi, free eps/delta/up/lo, [count <= left], cones
    r_inc = 2 if f and prob.exact_k else 1
    nzero = r_inc
    r_eps = r_inc + 2 * ni
    r_delta, r_up, r_lo = r_eps + f, r_eps + 2 * f, r_eps + 3 * f
    r_card = r_eps + 4 * f
    r_soc = r_card + int(card_row)
    nrows = r_soc + 3 * f
    ki, kf = np.arange(ni), np.arange(f)
    ones_i, ones_f = np.ones(ni), np.ones(f)
    # A, column by column (row indices ascending within each column)
    w_inc_rows = np.stack([np.zeros(ni, np.int64), r_inc + ki, r_inc + ni + ki])
    w_inc_vals = np.stack([ones_i, -ones_i, ones_i])
    w_free_rows = np.stack([np.zeros(f, np.int64), r_eps + kf, r_delta + kf, r_soc + 3 * kf + 2])
    w_free_vals = np.stack([ones_f, -ones_f, ones_f, -2.0 * ones_f])
    z_rows_list = [r_eps + kf, r_delta + kf, r_up + kf, r_lo + kf]
    z_vals_list = [eps * ones_f, -delta * ones_f, ones_f, -ones_f]
    if prob.exact_k:
        z_rows_list.insert(0, np.ones(f, np.int64))
        z_vals_list.insert(0, ones_f)
    if card_row:
        z_rows_list.append(np.full(f, r_card))
        z_vals_list.append(ones_f)
    z_rows_list += [r_soc + 3 * kf, r_soc + 3 * kf + 1]
    z_vals_list += [-ones_f, ones_f]
    z_rows, z_vals = np.stack(z_rows_list), np.stack(z_vals_list)
    t_rows = np.stack([r_soc + 3 * kf, r_soc + 3 * kf + 1])
    t_vals = np.stack([-ones_f, -ones_f])
    counts = np.concatenate(
        [np.full(ni, 3), np.full(f, 4), np.full(f, z_rows.shape[0]), np.full(f, 2)]
    )
    A = sp.csc_matrix(
        (
            np.concatenate(
                [w_inc_vals.T.ravel(), w_free_vals.T.ravel(), z_vals.T.ravel(), t_vals.T.ravel()]
            ),
            np.concatenate(
                [w_inc_rows.T.ravel(), w_free_rows.T.ravel(), z_rows.T.ravel(), t_rows.T.ravel()]
            ),
            np.concatenate([[0], np.cumsum(counts)]),
        ),
        shape=(nrows, nv),
    )
    b = np.zeros(nrows)
    b[0] = 1.0
    if prob.exact_k and f:
        b[1] = left
    b[r_inc : r_inc + ni] = -eps
    b[r_inc + ni : r_inc + 2 * ni] = delta
    b[r_up : r_up + f] = 1.0
    if card_row:
        b[r_card] = left
    # P: the upper triangle of 2·s·λ·(Σ - D_free) on the w block
    rows, cols, ptr = _TRIANGLES.get(m) or _TRIANGLES.setdefault(m, _upper_triangle(m))
    pvals = (2.0 * lam * scale) * prob.cov[allv[rows], allv[cols]]
    diag = ptr[ni + 1 : m + 1] - 1  # the diagonal entry closes each column
    pvals[diag] -= 2.0 * lam * scale * d[free]
    P = sp.csc_matrix((pvals, rows, np.concatenate([ptr, np.full(2 * f, ptr[-1])])), shape=(nv, nv))
    q = np.concatenate([-(1.0 - lam) * scale * prob.mu[allv], np.zeros(f), lam * scale * d[free]])
    cones = [_clarabel.ZeroConeT(nzero)]
    if r_soc > nzero:
        cones.append(_clarabel.NonnegativeConeT(r_soc - nzero))
    cones += [_clarabel.SecondOrderConeT(3)] * f
    settings = _clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_threads = 1
    settings.iterative_refinement_enable = refine  # off: 20-25% faster, same bounds measured
    try:
        sol = _clarabel.DefaultSolver(P, q, A, b, cones, settings).solve()
    except Exception:  # any solver failure leaves the node without a bound
        return _Relaxation("failed")
    status = str(sol.status)
    if status in ("PrimalInfeasible", "AlmostPrimalInfeasible"):
        return _Relaxation("infeasible")
    if status != "Solved" and not refine:
        return _relax(prob, d, scale, inc, free, refine=True)
    if status not in ("Solved", "AlmostSolved"):
        return _Relaxation(f"failed ({status})")
    margin = _BOUND_MARGIN if status == "Solved" else 1e3 * _BOUND_MARGIN
    dual = float(sol.obj_val_dual)
    x = np.asarray(sol.x)
    zd = np.asarray(sol.z)
    return _Relaxation(
        "solved",
        bound=dual - margin * (1.0 + abs(dual)),
        w=x[:m],
        z=np.clip(x[m : m + f], 0.0, 1.0),
        cost_to_include=zd[r_lo : r_lo + f],
        cost_to_exclude=zd[r_up : r_up + f],
    )


_TRIANGLES: dict[int, tuple[IntArray, IntArray, IntArray]] = {}


# Branch and bound ---------------------------------------------------------------------------


@dataclass
class _Search:
    """Best support found so far, in problem positions, with its QP weights and objective."""

    support: IntArray
    weights: FloatArray
    objective: float


@dataclass
class _Proof:
    lower_bound: float | None  # unscaled
    proven: bool
    method: str
    nodes: int
    seconds: float
    note: str = ""


def _leaf(prob: _Problem, supp: IntArray) -> tuple[float, FloatArray]:
    w = np.empty(supp.size)
    st = np.zeros(supp.size, np.int8)
    supp = np.sort(supp)
    obj = _qp(prob.cov, prob.mu, supp, supp.size, prob.lam, prob.eps, prob.delta, w, st, False)
    return float(obj), w


def _branch_and_bound(
    prob: _Problem,
    best: _Search,
    root: _Relaxation,
    d: FloatArray,
    scale: float,
    deadline: float,
) -> tuple[_Search, _Proof]:
    """Best-first branch and bound on "hold asset i"; returns the best support and the bound.

    Nodes are taken lowest bound first, so the bound reported at a time limit is the best the
    search has proven. Children inherit the parent's bound until their own relaxation runs.
    """
    start = time.perf_counter()
    tol = OPTIMALITY_TOLERANCE
    ub = best.objective * scale
    closed = math.inf  # smallest bound of any region pruned or fixed away
    heap: list[tuple[float, int, IntArray, IntArray, _Relaxation | None]] = [
        (root.bound, 0, np.zeros(0, np.int64), np.arange(prob.n, dtype=np.int64), root)
    ]
    pushed = 1
    nodes = 0
    failures = 0
    enumerated = 0
    timed_out = False

    def push(bound: float, inc: IntArray, free: IntArray) -> None:
        nonlocal pushed
        heapq.heappush(heap, (bound, pushed, inc, free, None))
        pushed += 1

    while heap:
        if heap[0][0] >= ub - tol:  # every open node is already good enough
            closed = min(closed, heap[0][0])
            heap.clear()
            break
        if time.perf_counter() >= deadline:
            timed_out = True
            break
        parent_bound, _, inc, free, known = heapq.heappop(heap)
        nodes += 1
        leaf: IntArray | None = None
        if inc.size == prob.kmax or free.size == 0:
            leaf = inc
        elif prob.exact_k and inc.size + free.size == prob.k:
            leaf = np.concatenate([inc, free])
        if leaf is not None:
            obj, w = _leaf(prob, leaf)
            if math.isfinite(obj) and leaf.size >= prob.kmin and obj * scale < ub:
                ub = obj * scale
                best = _Search(np.sort(leaf), w, obj)
            continue
        if prob.exact_k and inc.size + free.size < prob.k:
            continue
        if _completions(prob, inc, free) <= SUBTREE_ENUMERATION_MAX:
            found, count = _enumerate_completions(prob, inc, free)
            enumerated += count
            if found is not None:
                closed = min(closed, found.objective * scale)
                if found.objective * scale < ub:
                    ub = found.objective * scale
                    best = found
            continue
        rel = known if known is not None else _relax(prob, d, scale, inc, free)
        if rel.status == "infeasible":
            continue
        if rel.status != "solved":
            failures += 1
            bound = parent_bound
            z = np.full(free.size, 0.5)
            w_free = np.zeros(free.size)
        else:
            bound = max(rel.bound, parent_bound)
            z = rel.z
            w_free = rel.w[inc.size :]
            if bound >= ub - tol:
                closed = min(closed, bound)
                continue
            gap = ub - bound
            out = rel.cost_to_include > gap + tol
            if out.any():
                closed = min(closed, bound + float(rel.cost_to_include[out].min()))
            keep = ~out
            free, z, w_free = free[keep], z[keep], w_free[keep]
            into = rel.cost_to_exclude[keep] > gap + tol
            if into.any():
                closed = min(closed, bound + float(rel.cost_to_exclude[keep][into].min()))
                inc = np.concatenate([inc, free[into]])
                free = free[~into]
                if inc.size <= prob.kmax:
                    push(bound, inc, free)
                continue
        if free.size == 0:
            push(bound, inc, free)
            continue
        j = int(np.lexsort((-w_free, -z))[0])  # the free asset the relaxation holds most
        rest = np.delete(free, j)
        push(bound, np.concatenate([inc, free[j : j + 1]]), rest)
        push(bound, inc, rest)
    nodes = max(nodes, 1)  # the root counts even when its bound alone settled the question
    open_bound = heap[0][0] if heap else math.inf
    lower = min(ub, closed, open_bound)
    proven = not timed_out and lower >= ub - tol
    parts = []
    if enumerated:
        parts.append(f"{enumerated} supports enumerated in small subtrees")
    if failures:
        parts.append(f"the relaxation failed at {failures} node(s), branched without a bound")
    note = "; ".join(parts)
    method = (
        "branch and bound on the perspective relaxation, finished"
        if not timed_out
        else "branch and bound on the perspective relaxation, stopped at the time limit"
    )
    return best, _Proof(lower / scale, proven, method, nodes, time.perf_counter() - start, note)


def _completions(prob: _Problem, inc: IntArray, free: IntArray) -> int:
    """How many supports hold all of ``inc`` and otherwise only assets of ``free``."""
    return sum(
        math.comb(free.size, size - inc.size)
        for size in range(max(prob.kmin, inc.size), min(prob.kmax, inc.size + free.size) + 1)
    )


def _enumerate_completions(
    prob: _Problem, inc: IntArray, free: IntArray
) -> tuple[_Search | None, int]:
    """The best support that holds ``inc`` and otherwise only assets of ``free`` (by QP)."""
    best: _Search | None = None
    count = 0
    for size in range(max(prob.kmin, inc.size), min(prob.kmax, inc.size + free.size) + 1):
        supp = np.empty(size, np.int64)
        w = np.empty(size)
        obj, c = _enumerate(
            prob.cov,
            prob.mu,
            prob.lam,
            prob.eps,
            prob.delta,
            inc,
            free,
            size - inc.size,
            supp,
            w,
        )
        count += int(c)
        if math.isfinite(obj) and (best is None or obj < best.objective):
            order = np.argsort(supp)
            best = _Search(supp[order], w[order], float(obj))
    return best, count


# The public entry points --------------------------------------------------------------------


def optimize_cardinality(
    mu: pd.Series | FloatArray,
    cov: pd.DataFrame | FloatArray,
    k: int,
    *,
    risk_weight: float,
    min_weight: float = 0.01,
    max_weight: float = 1.0,
    exact_k: bool = True,
    time_limit: float | None = None,
    seed: int | None = None,
    prove: bool = True,
) -> CardinalityPlan:
    """The best portfolio of exactly ``k`` (or at most ``k``) assets for ``risk_weight`` = λ.

    ``time_limit`` bounds the whole call (the proof gets what the search leaves); without one
    the proof may take :data:`DEFAULT_PROOF_SECONDS`. ``prove=False`` stops after the root
    relaxation, whose bound still gives the gap. Same ``seed``, same answer.
    """
    prob = _problem(mu, cov, k, risk_weight, min_weight, max_weight, exact_k)
    limit, seed_ = _run_settings(time_limit, seed)
    return _solve(prob, limit, seed_, prove, [], {})


def _run_settings(time_limit: Any, seed: Any) -> tuple[float | None, int | None]:
    """Checked time limit (seconds > 0, or None) and seed (integer >= 0, or None)."""
    limit = None if time_limit is None else _finite("time_limit", time_limit)
    if limit is not None and limit <= 0:
        raise InvalidSpecError(f"time_limit must be a positive number of seconds; got {limit}")
    if seed is None:
        return limit, None
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidSpecError(f"seed must be a non-negative integer; got {seed!r}")
    return limit, int(seed)


def _solve(
    prob: _Problem,
    time_limit: float | None,
    seed: int | None,
    prove: bool,
    warm: list[IntArray],
    diagonals: dict[str, FloatArray],
) -> CardinalityPlan:
    """The search for one risk weight; ``diagonals`` caches the relaxation's diagonal shares
    (they depend on the covariance only) across the points of a frontier."""
    start = time.perf_counter()
    deadline = start + (time_limit if time_limit is not None else DEFAULT_PROOF_SECONDS)
    notes: list[str] = []
    timings: dict[str, float] = {}
    scale = 1.0 / _objective_scale(prob)  # scaled objectives are of order one

    engine = _engine_supports(prob, seed, None if time_limit is None else 0.25 * time_limit)
    timings["engine_s"] = engine.seconds
    if not engine.supports:
        raise OptimizationError("the engine returned no support that holds the right count")

    t0 = time.perf_counter()
    free_all = np.arange(prob.n, dtype=np.int64)
    if "proportional" not in diagonals:
        diagonals["proportional"] = _diagonal_share(prob)
    d = diagonals["proportional"]
    root = _relax(prob, d, scale, np.zeros(0, np.int64), free_all)
    timings["relaxation_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    base_supp = engine.supports[0]
    base_obj, _ = _leaf(prob, base_supp)
    equal = np.full(base_supp.size, 1.0 / base_supp.size)
    sub = prob.cov[np.ix_(base_supp, base_supp)]
    equal_obj = float(
        prob.lam * equal @ sub @ equal - (1.0 - prob.lam) * prob.mu[base_supp] @ equal
    )
    baseline = SelectionBaseline(
        support=[prob.names[i] for i in base_supp],
        equal_weight_objective=equal_obj,
        objective=base_obj,
        solver=engine.solver,
        seconds=engine.seconds,
    )
    starts = [s for s in engine.supports[:LOCAL_SEARCH_STARTS]]
    if root.status == "solved":
        starts.append(_round_relaxation(prob, root))
    starts += warm
    tol = 1e-10 / scale  # smallest improvement a move must make, in objective units
    best, evals = _search_from(prob, starts, tol, None)
    if (
        best is None
        or root.status != "solved"
        or root.bound < best.objective * scale - OPTIMALITY_TOLERANCE
    ):
        # the root bound does not certify the incumbent: diversify with random starts
        rng = np.random.default_rng(seed)
        randoms = []
        for _ in range(LOCAL_SEARCH_RANDOM_STARTS):
            size = int(rng.integers(prob.kmin, prob.kmax + 1))
            randoms.append(np.sort(rng.choice(prob.n, size, replace=False)).astype(np.int64))
        best, more = _search_from(prob, randoms, tol, best)
        evals += more
    timings["local_search_s"] = time.perf_counter() - t0
    if best is None:
        raise OptimizationError(
            "the weight QP failed on every candidate support; the covariance may be badly scaled"
        )

    if root.status == "solved" and root.bound < best.objective * scale - OPTIMALITY_TOLERANCE:
        # the gap is open: try the greedy diagonal too and keep the stronger root bound
        t0 = time.perf_counter()
        if "greedy" not in diagonals:
            diagonals["greedy"] = _greedy_diagonal(prob.cov)
        alt = _relax(prob, diagonals["greedy"], scale, np.zeros(0, np.int64), free_all)
        if alt.status == "solved" and alt.bound > root.bound:
            root, d = alt, diagonals["greedy"]
            notes.append("the greedy diagonal share gave the stronger relaxation")
        timings["relaxation_s"] += time.perf_counter() - t0

    proof: _Proof
    all_assets = np.arange(prob.n, dtype=np.int64)
    if prove and _completions(prob, all_assets[:0], all_assets) <= ENUMERATION_MAX_SUPPORTS:
        t0 = time.perf_counter()
        found, count = _enumerate_completions(prob, all_assets[:0], all_assets)
        if found is not None and found.objective < best.objective:
            best = found
        proof = _Proof(
            best.objective,
            True,
            f"full enumeration of all {count} supports",
            0,
            time.perf_counter() - t0,
        )
    elif prove and root.status == "solved":
        best, proof = _branch_and_bound(prob, best, root, d, scale, deadline)
    elif root.status == "solved":
        proof = _Proof(
            min(root.bound / scale, best.objective),
            False,
            "perspective relaxation at the root (no branching)",
            1,
            0.0,
        )
    else:
        proof = _Proof(None, False, "none: the relaxation could not be solved", 0, 0.0)
        notes.append(
            f"the convex relaxation ended with status '{root.status}', so there is no bound "
            "on the gap"
        )
    timings["proof_s"] = proof.seconds
    if proof.note:
        notes.append(proof.note)
    if prove and not proof.proven and proof.lower_bound is not None:
        notes.append(
            "not proven optimal in the time budget; the gap is an upper estimate from the "
            "relaxation bound"
        )
    timings["total_s"] = time.perf_counter() - start

    full = np.zeros(prob.n)
    full[best.support] = best.weights
    weights = pd.Series(full, index=prob.names, name="weight")
    ret = float(prob.mu @ full)
    var = float(full @ prob.cov @ full)
    objective = prob.lam * var - (1.0 - prob.lam) * ret
    lower = proof.lower_bound
    if lower is not None:
        lower = min(lower, objective)
    gap = None if lower is None else max(objective - lower, 0.0)
    rel = None if gap is None else (gap / abs(objective) if objective != 0 else math.inf)
    if proof.proven:
        notes.append(
            f"proven optimal within {OPTIMALITY_TOLERANCE:g} of the objective scale "
            f"({1.0 / scale:.3g})"
        )
    if base_obj > objective + tol:
        notes.append(
            f"the engine's own support scored {base_obj:.6g}; local search improved it to "
            f"{objective:.6g}"
        )
    method = (
        f"engine '{engine.solver}' sampler on the equal-weight selection model, weights by "
        f"active-set QP, swap local search ({evals} QPs); bound: {proof.method}"
    )
    return CardinalityPlan(
        weights=weights,
        support=[prob.names[i] for i in best.support],
        objective=float(objective),
        expected_return=ret,
        variance=var,
        lower_bound=lower,
        gap=gap,
        relative_gap=rel,
        proven_optimal=proof.proven,
        bound_method=proof.method,
        method=method,
        timings=timings,
        notes=notes,
        baseline=baseline,
        k=prob.k,
        risk_weight=prob.lam,
        min_weight=prob.eps,
        max_weight=prob.delta,
        exact_k=prob.exact_k,
        nodes=proof.nodes,
        engine_info=engine.info,
    )


def _search_from(
    prob: _Problem, starts: list[IntArray], tol: float, best: _Search | None
) -> tuple[_Search | None, int]:
    """Local search from each start; the best result (or ``best`` if none beats it) and the
    number of QPs solved."""
    evals = 0
    supp = np.empty(prob.kmax, np.int64)
    w = np.empty(prob.kmax)
    for s in starts:
        size, obj, ev = _local_search(
            prob.cov,
            prob.mu,
            prob.lam,
            prob.eps,
            prob.delta,
            s,
            prob.kmin,
            prob.kmax,
            tol,
            LOCAL_SEARCH_MAX_QPS,
            supp,
            w,
        )
        evals += int(ev)
        if math.isfinite(obj) and (best is None or obj < best.objective - tol):
            order = np.argsort(supp[:size])
            best = _Search(supp[:size][order].copy(), w[:size][order].copy(), float(obj))
    return best, evals


def _round_relaxation(prob: _Problem, root: _Relaxation) -> IntArray:
    """The k assets the relaxation selects most (by z, then by weight)."""
    order = np.lexsort((-root.w, -root.z))
    size = prob.k if prob.exact_k else max(prob.kmin, min(prob.kmax, int((root.z > 0.5).sum())))
    return np.sort(order[:size]).astype(np.int64)


def cardinality_frontier(
    mu: pd.Series | FloatArray,
    cov: pd.DataFrame | FloatArray,
    k: int,
    risk_weights: Sequence[float],
    *,
    min_weight: float = 0.01,
    max_weight: float = 1.0,
    exact_k: bool = True,
    time_limit: float | None = None,
    seed: int | None = None,
    prove: bool = False,
) -> list[CardinalityPlan]:
    """One plan per risk weight, in the given order; neighbours' supports seed the search.

    ``time_limit`` applies to each point. Without ``prove`` each point carries the root
    relaxation's gap estimate instead of a proof.
    """
    if len(risk_weights) == 0:
        raise InvalidSpecError("give at least one risk weight")
    probs = [_problem(mu, cov, k, lam, min_weight, max_weight, exact_k) for lam in risk_weights]
    limit, seed_ = _run_settings(time_limit, seed)
    order = np.argsort([p.lam for p in probs], kind="stable")
    plans: dict[int, CardinalityPlan] = {}
    previous: list[IntArray] = []
    pos = {name: i for i, name in enumerate(probs[0].names)}
    diagonals: dict[str, FloatArray] = {}
    for i in order:
        plan = _solve(probs[int(i)], limit, seed_, prove, previous, diagonals)
        plans[int(i)] = plan
        previous = [np.asarray(sorted(pos[s] for s in plan.support), dtype=np.int64)]
    return [plans[i] for i in range(len(probs))]


def frontier_deviation(
    returns: npt.ArrayLike,
    variances: npt.ArrayLike,
    ref_returns: npt.ArrayLike,
    ref_variances: npt.ArrayLike,
) -> FloatArray:
    """Percentage deviation of each point from a reference frontier (Chang et al. §5.2.2).

    In (std dev, return) space, the reference curve is interpolated linearly; a point's
    deviation is the smaller of its horizontal (std dev at equal return) and vertical (return
    at equal std dev) percentage distances; a direction outside the curve's range is skipped
    (NaN when both are).
    """
    r = np.asarray(returns, dtype=np.float64)
    s = np.sqrt(np.asarray(variances, dtype=np.float64))
    rr = np.asarray(ref_returns, dtype=np.float64)
    rs = np.sqrt(np.asarray(ref_variances, dtype=np.float64))
    if r.shape != s.shape or rr.shape != rs.shape or rr.size < 2:
        raise InvalidDataError("returns/variances and the reference need matching lengths (>= 2)")
    by_r = np.argsort(rr, kind="stable")
    by_s = np.argsort(rs, kind="stable")
    out = np.full(r.shape, np.nan)
    for i, (ret, sd) in enumerate(zip(r, s, strict=True)):
        best = math.inf
        if rr[by_r[0]] <= ret <= rr[by_r[-1]]:
            x = float(np.interp(ret, rr[by_r], rs[by_r]))
            if x > 0:
                best = min(best, abs(100.0 * (sd - x) / x))
        if rs[by_s[0]] <= sd <= rs[by_s[-1]]:
            y = float(np.interp(sd, rs[by_s], rr[by_s]))
            if y != 0:
                best = min(best, abs(100.0 * (ret - y) / y))
        if math.isfinite(best):
            out[i] = best
    return out
