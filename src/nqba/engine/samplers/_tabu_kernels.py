"""Numba kernels of the one-flip tabu search on SPIN arrays (CSR couplings, both directions).

A read is a resumable state machine: :func:`tabu_init` draws a random start, :func:`tabu_steps`
advances it by a bounded number of steps (so the caller can check a deadline between calls
without changing the result), and :func:`tabu_finish` ends it with a greedy descent from the
best state found. Each read carries its own splitmix64 generator, so a read's result depends only
on its seed and its step budget, not on how the steps are chunked or which thread runs them.

``delta[i]`` is the energy change of flipping spin ``i``: ``-2 s_i (h_i + sum_j J_ij s_j)``.
Choosing the best move does not scan all n spins: ``key`` holds ``delta`` for non-tabu spins
(+inf for tabu ones), split in blocks of about sqrt(n) whose minima are kept up to date as
gains change; a block is rescanned only when its minimum got worse. Tabu spins are kept in a
list that is scanned each step for expiry and aspiration. A step then costs
O(degree + tabu list + n / block + block) instead of O(n).

Per-read buffers: ``fbuf`` (float64) = delta[n], key[n], bmin[nb];
``ibuf`` (int64) = tabu_until[n], tabu_list[n], barg[nb], dirty[nb].
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

# Layout of the per-read integer state (istate).
I_IT = 0  # tabu steps done
I_LAST_IMPROVE = 1  # step at which the current segment last improved its own best
I_PENDING = 2  # 1 while the current state is the read's best but not yet copied to best_s
I_STRENGTH = 3  # current perturbation strength (spins flipped on a restart)
I_RESTARTS = 4  # restarts from the elite state so far
I_DONE = 5  # 1 once the read has used its budget or reached the target
I_SEG_IMPROVED = 6  # 1 if the current segment has found a new best of the read
I_NTABU = 7  # length of the tabu list
I_SIZE = 8

# Layout of the per-read float state (fstate).
F_E = 0  # current energy (without offset)
F_BEST = 1  # best energy of the read (without offset)
F_SEG_BEST = 2  # best energy of the current segment (since the last restart)
F_SIZE = 3

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)


@njit(cache=True, nogil=True)
def _next(rng: npt.NDArray[np.uint64]) -> np.uint64:
    """splitmix64: the next 64 random bits of the generator ``rng[0]``."""
    rng[0] = rng[0] + _GOLDEN
    z = rng[0]
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return np.uint64(z ^ (z >> _S31))


@njit(cache=True, nogil=True)
def _below(rng: npt.NDArray[np.uint64], k: int) -> int:
    """A random integer in ``[0, k)`` for ``k >= 1``."""
    return int(np.int64((_next(rng) >> _S11) % np.uint64(k)))


@njit(cache=True, nogil=True)
def compute_deltas(
    h: npt.NDArray[np.float64],
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float64],
    s: npt.NDArray[np.int8],
    delta: npt.NDArray[np.float64],
) -> float:
    """Fill ``delta`` from scratch for spins ``s``; return the energy (without offset)."""
    n = h.shape[0]
    e = 0.0
    for i in range(n):
        f = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            f += data[k] * s[indices[k]]
        si = float(s[i])
        e += si * (h[i] + 0.5 * f)
        delta[i] = -2.0 * si * (h[i] + f)
    return e


@njit(cache=True, nogil=True)
def _flip(
    i: int,
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float64],
    s: npt.NDArray[np.int8],
    delta: npt.NDArray[np.float64],
) -> None:
    """Flip spin ``i`` and update the move gains of ``i`` and its neighbours in O(degree)."""
    s[i] = -s[i]
    delta[i] = -delta[i]
    si4 = 4.0 * s[i]
    for k in range(indptr[i], indptr[i + 1]):
        j = indices[k]
        delta[j] -= si4 * data[k] * s[j]


def block_shift(n: int) -> int:
    """log2 of the spins per block of the move index: a power of two near sqrt(n), >= 8."""
    return max(3, round(0.5 * math.log2(max(n, 1))))


def block_size(n: int) -> int:
    """Spins per block of the move index."""
    return 1 << block_shift(n)


def buffer_sizes(n: int) -> tuple[int, int]:
    """Lengths of the per-read ``fbuf`` and ``ibuf`` for ``n`` spins."""
    nb = -(-n // block_size(n))
    return 2 * n + nb, 2 * n + 2 * nb


_block_shift = njit(cache=True, nogil=True)(block_shift)


@njit(cache=True, nogil=True)
def _views(
    fbuf: npt.NDArray[np.float64], ibuf: npt.NDArray[np.int64], n: int
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
]:
    """(delta, key, bmin, tabu_until, tabu_list, barg, dirty) as views of the two buffers."""
    nb = fbuf.shape[0] - 2 * n
    return (
        fbuf[:n],
        fbuf[n : 2 * n],
        fbuf[2 * n :],
        ibuf[:n],
        ibuf[n : 2 * n],
        ibuf[2 * n : 2 * n + nb],
        ibuf[2 * n + nb :],
    )


@njit(cache=True, nogil=True)
def _reset_index(
    delta: npt.NDArray[np.float64],
    key: npt.NDArray[np.float64],
    tabu_until: npt.NDArray[np.int64],
    dirty: npt.NDArray[np.int64],
    istate: npt.NDArray[np.int64],
) -> None:
    """Clear the tabu state: every spin admissible, every block to be rescanned."""
    key[:] = delta
    tabu_until[:] = 0
    dirty[:] = 1
    istate[I_NTABU] = 0


@njit(cache=True, nogil=True)
def _set_key(
    j: int,
    value: float,
    key: npt.NDArray[np.float64],
    bshift: int,
    bmin: npt.NDArray[np.float64],
    barg: npt.NDArray[np.int64],
    dirty: npt.NDArray[np.int64],
) -> None:
    """Set ``key[j]``, keeping its block's minimum exact or marking the block for a rescan."""
    old = key[j]
    key[j] = value
    b = j >> bshift
    if value < bmin[b]:
        bmin[b] = value
        barg[b] = j
    elif barg[b] == j and value > old:
        dirty[b] = 1


@njit(cache=True, nogil=True)
def _rescan(
    b: int,
    key: npt.NDArray[np.float64],
    bshift: int,
    bmin: npt.NDArray[np.float64],
    barg: npt.NDArray[np.int64],
    dirty: npt.NDArray[np.int64],
    rng: npt.NDArray[np.uint64],
) -> None:
    """Recompute the minimum of block ``b``, ties drawn uniformly."""
    lo = b << bshift
    hi = min(key.shape[0], lo + (1 << bshift))
    m = np.inf
    arg = lo
    ties = 0
    for i in range(lo, hi):
        x = key[i]
        if x <= m:
            if x < m:
                m = x
                arg = i
                ties = 1
            else:
                ties += 1
                if _below(rng, ties) == 0:
                    arg = i
    bmin[b] = m
    barg[b] = arg
    dirty[b] = 0


@njit(cache=True, nogil=True)
def _flip_indexed(
    i: int,
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float64],
    s: npt.NDArray[np.int8],
    delta: npt.NDArray[np.float64],
    key: npt.NDArray[np.float64],
    bshift: int,
    bmin: npt.NDArray[np.float64],
    barg: npt.NDArray[np.int64],
    dirty: npt.NDArray[np.int64],
) -> None:
    """Flip spin ``i``; update the gains of ``i`` and its neighbours and their keys."""
    s[i] = -s[i]
    delta[i] = -delta[i]
    si4 = 4.0 * s[i]
    for k in range(indptr[i], indptr[i + 1]):
        j = indices[k]
        d = delta[j] - si4 * data[k] * s[j]
        delta[j] = d
        old = key[j]
        if old != np.inf:
            # _set_key written out and branch-free: a call or a mispredicted branch per
            # neighbour costs more than the update itself.
            key[j] = d
            b = j >> bshift
            bm = bmin[b]
            ba = barg[b]
            lower = d < bm
            dirty[b] |= (d > old) & (ba == j) & (not lower)
            bmin[b] = d if lower else bm
            barg[b] = j if lower else ba


@njit(cache=True, nogil=True)
def greedy_descent(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float64],
    s: npt.NDArray[np.int8],
    delta: npt.NDArray[np.float64],
    e: float,
    tol: float,
) -> float:
    """Flip the most improving spin until no flip lowers the energy by more than ``tol``."""
    n = s.shape[0]
    while True:
        best = -tol
        arg = -1
        for i in range(n):
            if delta[i] < best:
                best = delta[i]
                arg = i
        if arg < 0:
            return e
        e += delta[arg]
        _flip(arg, indptr, indices, data, s, delta)


@njit(cache=True, nogil=True)
def tabu_init(
    h: npt.NDArray[np.float64],
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float64],
    s: npt.NDArray[np.int8],
    best_s: npt.NDArray[np.int8],
    fbuf: npt.NDArray[np.float64],
    ibuf: npt.NDArray[np.int64],
    istate: npt.NDArray[np.int64],
    fstate: npt.NDArray[np.float64],
    rng: npt.NDArray[np.uint64],
    strength: int,
) -> None:
    """Start a read from uniformly random spins."""
    n = s.shape[0]
    delta, key, _, tabu_until, _, _, dirty = _views(fbuf, ibuf, n)
    for i in range(n):
        s[i] = 1 if (_next(rng) >> np.uint64(63)) else -1
    e = compute_deltas(h, indptr, indices, data, s, delta)
    best_s[:] = s
    istate[:] = 0
    _reset_index(delta, key, tabu_until, dirty, istate)
    istate[I_STRENGTH] = strength
    fstate[F_E] = e
    fstate[F_BEST] = e
    fstate[F_SEG_BEST] = e


@njit(cache=True, nogil=True)
def tabu_steps(
    h: npt.NDArray[np.float64],
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float64],
    s: npt.NDArray[np.int8],
    best_s: npt.NDArray[np.int8],
    fbuf: npt.NDArray[np.float64],
    ibuf: npt.NDArray[np.int64],
    istate: npt.NDArray[np.int64],
    fstate: npt.NDArray[np.float64],
    rng: npt.NDArray[np.uint64],
    num_steps: int,
    max_iter: int,
    tenure: int,
    tenure_spread: int,
    stall_iters: int,
    strength_min: int,
    strength_max: int,
    target: float,
    tol: float,
) -> int:
    """Advance a read by up to ``num_steps`` tabu steps; return 1 once the read is done.

    Each step flips the admissible spin with the lowest ``delta``; a tabu spin is admissible
    only if flipping it beats the read's best energy (aspiration). A flipped spin stays tabu for
    ``tenure + U[0, tenure_spread]`` steps. After ``stall_iters`` steps without improving the
    segment's best, the search restarts from the read's best state with ``strength`` random
    flips; the strength grows while restarts fail and resets when one finds a new best. The
    read is done after ``max_iter`` steps or once its best is <= target.
    """
    n = s.shape[0]
    delta, key, bmin, tabu_until, tabu_list, barg, dirty = _views(fbuf, ibuf, n)
    bshift = _block_shift(n)
    nb = bmin.shape[0]
    it = istate[I_IT]
    stop = min(max_iter, it + num_steps)
    e = fstate[F_E]
    best_e = fstate[F_BEST]
    seg_best = fstate[F_SEG_BEST]
    pending = istate[I_PENDING]
    last_improve = istate[I_LAST_IMPROVE]
    ntabu = istate[I_NTABU]
    done = 0
    while it < stop:
        if best_e <= target:
            done = 1
            break
        if it - last_improve >= stall_iters:
            if pending:
                best_s[:] = s
                pending = 0
            if istate[I_SEG_IMPROVED]:
                istate[I_STRENGTH] = strength_min
            else:
                # The segment found no new best: perturb harder next time.
                st = istate[I_STRENGTH] + max(1, strength_min // 2)
                istate[I_STRENGTH] = min(st, strength_max)
            istate[I_SEG_IMPROVED] = 0
            istate[I_RESTARTS] += 1
            # Restart from the elite (best) state with random flips.
            s[:] = best_s
            for _ in range(istate[I_STRENGTH]):
                i = _below(rng, n)
                s[i] = -s[i]
            e = compute_deltas(h, indptr, indices, data, s, delta)
            _reset_index(delta, key, tabu_until, dirty, istate)
            ntabu = 0
            seg_best = e
            last_improve = it
        # Expire tabu spins and find the best aspiring one (a tabu flip beating the best).
        aspire = best_e - e - tol
        asp = np.inf
        asp_arg = -1
        c = 0
        while c < ntabu:
            v = tabu_list[c]
            if tabu_until[v] <= it:
                ntabu -= 1
                tabu_list[c] = tabu_list[ntabu]
                _set_key(v, delta[v], key, bshift, bmin, barg, dirty)
                continue
            d = delta[v]
            if d < aspire and d < asp:
                asp = d
                asp_arg = v
            c += 1
        # Best non-tabu move from the block minima, ties drawn at random.
        m = np.inf
        arg = -1
        ties = 0
        for b in range(nb):
            if dirty[b]:
                _rescan(b, key, bshift, bmin, barg, dirty, rng)
            x = bmin[b]
            if x <= m and x != np.inf:
                if x < m:
                    m = x
                    arg = barg[b]
                    ties = 1
                else:
                    ties += 1
                    if _below(rng, ties) == 0:
                        arg = barg[b]
        if asp_arg >= 0 and asp < m:
            arg = asp_arg
        elif arg < 0:
            arg = _below(rng, n)  # every spin is tabu and none aspires
        new_e = e + delta[arg]
        if pending and new_e >= best_e - tol:
            best_s[:] = s
            pending = 0
        _flip_indexed(arg, indptr, indices, data, s, delta, key, bshift, bmin, barg, dirty)
        e = new_e
        if key[arg] != np.inf:
            tabu_list[ntabu] = arg
            ntabu += 1
            _set_key(arg, np.inf, key, bshift, bmin, barg, dirty)
        t = tenure
        if tenure_spread > 0:
            t += _below(rng, tenure_spread + 1)
        tabu_until[arg] = it + 1 + t
        it += 1
        if e < seg_best - tol:
            seg_best = e
            last_improve = it
        if e < best_e - tol:
            istate[I_SEG_IMPROVED] = 1
            best_e = e
            pending = 1
    if it >= max_iter or best_e <= target:
        done = 1
    if pending and done:
        best_s[:] = s
        pending = 0
    istate[I_IT] = it
    istate[I_PENDING] = pending
    istate[I_LAST_IMPROVE] = last_improve
    istate[I_NTABU] = ntabu
    istate[I_DONE] = done
    fstate[F_E] = e
    fstate[F_BEST] = best_e
    fstate[F_SEG_BEST] = seg_best
    return done


@njit(cache=True, nogil=True)
def tabu_finish(
    h: npt.NDArray[np.float64],
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float64],
    s: npt.NDArray[np.int8],
    best_s: npt.NDArray[np.int8],
    fbuf: npt.NDArray[np.float64],
    istate: npt.NDArray[np.int64],
    fstate: npt.NDArray[np.float64],
    tol: float,
) -> None:
    """End a read: greedy descent from its best state, which is left in ``best_s``."""
    n = s.shape[0]
    delta = fbuf[:n]
    if istate[I_PENDING]:
        best_s[:] = s
        istate[I_PENDING] = 0
    s[:] = best_s
    e = compute_deltas(h, indptr, indices, data, s, delta)
    e = greedy_descent(indptr, indices, data, s, delta, e, tol)
    if e <= fstate[F_BEST]:
        best_s[:] = s
        fstate[F_BEST] = e
    istate[I_DONE] = 1
