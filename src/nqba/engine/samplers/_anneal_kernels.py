"""Numba kernels shared by simulated annealing and parallel tempering.

All kernels work on a SPIN model in CSR form (see :class:`nqba.engine.model.IsingArrays`) and
keep, per state, the local fields ``f_i = h_i + sum_j J_ij s_j``: flipping ``s_i`` changes the
energy by ``-2 s_i f_i``, so a rejected proposal costs O(1) and an accepted one O(degree).
Each read owns a xorshift64* random stream seeded from (seed, read index), so results do not
depend on how reads are spread over threads. Every kernel has one signature (float64 / int64 /
int32 / int8 / uint64 arrays), so each compiles once and is cached on disk.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
UIntArray = npt.NDArray[np.uint64]

# beta * dE above this is rejected without drawing a number: exp(-40) < 5e-18.
_REJECT = 40.0
_U53 = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True, nogil=True)
def splitmix64(x: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """One step of splitmix64: turns (seed, index) pairs into well-mixed stream seeds."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _next(state: np.uint64) -> tuple[np.uint64, float]:  # pragma: no cover - compiled
    """xorshift64*: the new state and a uniform float in [0, 1)."""
    state ^= state >> np.uint64(12)
    state ^= state << np.uint64(25)
    state ^= state >> np.uint64(27)
    out = state * np.uint64(2685821657736338717)
    return state, float(out >> np.uint64(11)) * _U53


@njit(cache=True, nogil=True)
def stream_seeds(seed: np.uint64, count: int) -> UIntArray:  # pragma: no cover - compiled
    """``count`` non-zero xorshift states derived from ``seed``, one per read or replica."""
    out = np.empty(count, dtype=np.uint64)
    base = splitmix64(seed)
    for k in range(count):
        z = splitmix64(base + np.uint64(k) * np.uint64(0xD1B54A32D192ED03))
        out[k] = z if z != np.uint64(0) else np.uint64(0x2545F4914F6CDD1D)
    return out


@njit(cache=True, nogil=True)
def random_spins(
    spins: npt.NDArray[np.int8], rng: UIntArray
) -> None:  # pragma: no cover - compiled
    """Fill each row of ``spins`` with uniform +-1 values from that row's stream."""
    for r in range(spins.shape[0]):
        state = rng[r]
        for i in range(spins.shape[1]):
            state, u = _next(state)
            spins[r, i] = 1 if u < 0.5 else -1
        rng[r] = state


def integer_table_size(
    h: FloatArray, indptr: npt.NDArray[np.int64], data: FloatArray, cap: int = 4096
) -> int:
    """Length of the ``exp`` table for this model: 0 unless all coefficients are integers and
    the largest possible energy change ``2 max_i (|h_i| + sum_j |J_ij|)`` is at most ``cap``."""
    if not (np.all(h == np.round(h)) and np.all(data == np.round(data))):
        return 0
    rows = np.repeat(np.arange(h.shape[0]), np.diff(indptr))
    row_abs = np.abs(h).copy()
    np.add.at(row_abs, rows, np.abs(data))
    top = int(2 * row_abs.max()) if row_abs.size else 0
    return top + 1 if 0 < top <= cap else 0


@njit(cache=True, nogil=True)
def local_fields(
    h: FloatArray,
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    spins: npt.NDArray[np.int8],
    fields: FloatArray,
    energy: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Fields ``f_i = h_i + sum_j J_ij s_j`` and energies (without offset) of each row."""
    n = h.shape[0]
    for r in range(spins.shape[0]):
        e = 0.0
        for i in range(n):
            f = h[i]
            acc = 0.0
            for k in range(indptr[i], indptr[i + 1]):
                acc += data[k] * spins[r, indices[k]]
            f += acc
            fields[r, i] = f
            e += spins[r, i] * (h[i] + 0.5 * acc)
        energy[r] = e


@njit(cache=True, nogil=True, inline="always")
def _flip(
    i: int,
    s: npt.NDArray[np.int8],
    f: FloatArray,
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
) -> None:  # pragma: no cover - compiled
    si = -s[i]
    s[i] = si
    two_s = 2.0 * si
    for k in range(indptr[i], indptr[i + 1]):
        f[indices[k]] += two_s * data[k]


@njit(cache=True, nogil=True)
def metropolis_sweeps(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    s: npt.NDArray[np.int8],
    f: FloatArray,
    betas: FloatArray,
    state: np.uint64,
    energy: float,
    best_s: npt.NDArray[np.int8],
    best_energy: float,
    table: FloatArray,
) -> tuple[np.uint64, float, float]:  # pragma: no cover - compiled
    """One sequential Metropolis sweep of one state per entry of ``betas``.

    Keeps the lowest-energy state seen at the end of a sweep in ``best_s``; returns the
    random state, the current energy and the best energy. For a model whose energy changes
    are integers up to ``len(table) - 1`` (see :func:`integer_table_size`), ``table`` is a
    work buffer for ``exp(-beta dE)`` per value, filled once a sweep; else it is empty.
    """
    n = s.shape[0]
    top = table.shape[0] - 1
    for b in range(betas.shape[0]):
        beta = betas[b]
        limit = _REJECT / beta
        if top > 0:
            m = min(top, int(limit) + 1)
            for d in range(1, m + 1):
                table[d] = math.exp(-beta * d)
        for i in range(n):
            de = -2.0 * s[i] * f[i]
            if de > 0.0:
                if de >= limit:
                    continue
                state, u = _next(state)
                if top > 0:
                    if u >= table[int(de)]:
                        continue
                elif u >= math.exp(-beta * de):
                    continue
            _flip(i, s, f, indptr, indices, data)
            energy += de
        if energy < best_energy:
            best_energy = energy
            best_s[:] = s
    return state, energy, best_energy


@njit(cache=True, nogil=True)
def greedy_descent(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    s: npt.NDArray[np.int8],
    f: FloatArray,
    energy: float,
) -> float:  # pragma: no cover - compiled
    """Flip spins that lower the energy until none does (a local minimum); return the energy."""
    n = s.shape[0]
    improved = True
    while improved:
        improved = False
        for i in range(n):
            de = -2.0 * s[i] * f[i]
            if de < -1e-12:
                _flip(i, s, f, indptr, indices, data)
                energy += de
                improved = True
    return energy


@njit(cache=True, nogil=True)
def anneal_block(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    spins: npt.NDArray[np.int8],
    fields: FloatArray,
    energy: FloatArray,
    best_spins: npt.NDArray[np.int8],
    best_energy: FloatArray,
    rng: UIntArray,
    betas: FloatArray,
    table: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Advance every read (row) of a block through the sweeps ``betas``, in place."""
    for r in range(spins.shape[0]):
        st, e, be = metropolis_sweeps(
            indptr,
            indices,
            data,
            spins[r],
            fields[r],
            betas,
            rng[r],
            energy[r],
            best_spins[r],
            best_energy[r],
            table,
        )
        rng[r] = st
        energy[r] = e
        best_energy[r] = be


@njit(cache=True, nogil=True)
def finish_block(
    h: FloatArray,
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    spins: npt.NDArray[np.int8],
    fields: FloatArray,
    energy: FloatArray,
    best_spins: npt.NDArray[np.int8],
    best_energy: FloatArray,
) -> None:  # pragma: no cover - compiled
    """Descend greedily from the current and the best state of each read; keep the lower."""
    one = np.empty((1,), dtype=np.float64)
    for r in range(spins.shape[0]):
        e = greedy_descent(indptr, indices, data, spins[r], fields[r], energy[r])
        energy[r] = e
        if best_energy[r] < e:
            # the best state was seen mid-run: descend from it too
            spins[r, :] = best_spins[r]
            local_fields(h, indptr, indices, data, spins[r : r + 1], fields[r : r + 1], one)
            e = greedy_descent(indptr, indices, data, spins[r], fields[r], one[0])
            energy[r] = e
        if e <= best_energy[r]:
            best_energy[r] = e
            best_spins[r, :] = spins[r]


@njit(cache=True, nogil=True)
def houdayer_move(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    sa: npt.NDArray[np.int8],
    fa: FloatArray,
    sb: npt.NDArray[np.int8],
    fb: FloatArray,
    state: np.uint64,
    stack: npt.NDArray[np.int64],
    mark: npt.NDArray[np.int64],
    stamp: int,
    symmetric: bool,
) -> tuple[np.uint64, float, float]:  # pragma: no cover - compiled
    """Houdayer cluster move between two states at the same temperature.

    Picks a random site where the states disagree, grows the connected cluster of
    disagreeing sites and flips it in both states. The sum of the two energies is unchanged
    (also with fields ``h``), so the move is always accepted; it moves large domains that
    single-spin sweeps cross slowly on sparse graphs. For a ``symmetric`` model (no fields,
    so ``s`` and ``-s`` have one energy) the cluster is grown over the minority of
    agreeing or disagreeing sites, which conserves the sum too and keeps clusters small when
    one state is close to the flip of the other. Returns the random state and the two
    energy changes. ``mark`` entries equal to ``stamp`` are taken as visited.
    """
    n = sa.shape[0]
    differ = True
    if symmetric:
        d = 0
        for k in range(n):
            if sa[k] != sb[k]:
                d += 1
        differ = 2 * d <= n
    i = -1
    for _ in range(32):
        state, u = _next(state)
        k = min(int(u * n), n - 1)
        if (sa[k] != sb[k]) == differ:
            i = k
            break
    if i < 0:
        return state, 0.0, 0.0
    dea = 0.0
    deb = 0.0
    mark[i] = stamp
    stack[0] = i
    top = 1
    while top > 0:
        top -= 1
        v = stack[top]
        dea += -2.0 * sa[v] * fa[v]
        _flip(v, sa, fa, indptr, indices, data)
        deb += -2.0 * sb[v] * fb[v]
        _flip(v, sb, fb, indptr, indices, data)
        for k in range(indptr[v], indptr[v + 1]):
            j = indices[k]
            if mark[j] != stamp and (sa[j] != sb[j]) == differ:
                mark[j] = stamp
                stack[top] = j
                top += 1
    return state, dea, deb


@njit(cache=True, nogil=True)
def tempering_rounds(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: FloatArray,
    spins: npt.NDArray[np.int8],
    fields: FloatArray,
    energy: FloatArray,
    betas: FloatArray,
    slot: npt.NDArray[np.int64],
    rng: UIntArray,
    rounds: int,
    best_s: npt.NDArray[np.int8],
    best: FloatArray,
    stats: npt.NDArray[np.int64],
    table: FloatArray,
    ladders: int,
    cluster_lo: int,
    cluster_hi: int,
    symmetric: bool,
) -> None:  # pragma: no cover - compiled
    """``rounds`` of parallel tempering on one run, in place.

    The rows of ``spins`` form ``ladders`` (1 or 2) ladders of ``len(betas)`` replicas; row
    ``r`` of ladder ``r // len(betas)`` sits at temperature ``slot[r]``. A round is one
    Metropolis sweep of every replica at its beta, then exchange attempts between
    neighbouring temperatures of each ladder (even pairs, then odd pairs, alternating by
    round), accepted with probability ``min(1, exp((b_k - b_k+1)(E_k - E_k+1)))``; exchanges
    swap temperatures, not states. With two ladders, the two replicas at each of the
    temperatures ``cluster_lo .. cluster_hi - 1`` (0 is the hottest) then make a Houdayer cluster
    move (:func:`houdayer_move`; ``symmetric``: the model has no fields). ``rng[0]`` drives
    exchanges and cluster moves, ``rng[1 + r]`` replica ``r``. ``best``/``best_s`` hold the
    lowest energy seen; ``stats`` counts accepted exchanges per temperature pair (summed over
    ladders).
    """
    R = betas.shape[0]
    n = spins.shape[1]
    at = np.empty((ladders, R), dtype=np.int64)  # replica at each temperature
    for r in range(R * ladders):
        at[r // R, slot[r]] = r
    one = np.empty(1, dtype=np.float64)
    stack = np.empty(n, dtype=np.int64)
    mark = np.zeros(n, dtype=np.int64)
    stamp = 0
    for t in range(rounds):
        for r in range(R * ladders):
            one[0] = betas[slot[r]]
            st, e, bb = metropolis_sweeps(
                indptr,
                indices,
                data,
                spins[r],
                fields[r],
                one,
                rng[1 + r],
                energy[r],
                best_s,
                best[0],
                table,
            )
            rng[1 + r] = st
            energy[r] = e
            best[0] = bb
        st0 = rng[0]
        for lad in range(ladders):
            for k in range(t & 1, R - 1, 2):
                a = at[lad, k]
                c = at[lad, k + 1]
                x = (betas[k] - betas[k + 1]) * (energy[a] - energy[c])
                accept = x >= 0.0
                if not accept:
                    st0, u = _next(st0)
                    accept = u < math.exp(x)
                if accept:
                    at[lad, k] = c
                    at[lad, k + 1] = a
                    slot[a] = k + 1
                    slot[c] = k
                    stats[k] += 1
        if ladders == 2:
            for k in range(cluster_lo, min(cluster_hi, R)):
                a = at[0, k]
                c = at[1, k]
                stamp += 1
                st0, dea, dec = houdayer_move(
                    indptr,
                    indices,
                    data,
                    spins[a],
                    fields[a],
                    spins[c],
                    fields[c],
                    st0,
                    stack,
                    mark,
                    stamp,
                    symmetric,
                )
                energy[a] += dea
                energy[c] += dec
                if energy[a] < best[0]:
                    best[0] = energy[a]
                    best_s[:] = spins[a]
                if energy[c] < best[0]:
                    best[0] = energy[c]
                    best_s[:] = spins[c]
        rng[0] = st0
