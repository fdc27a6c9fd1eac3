"""Numba kernel: annealing whose moves keep cardinality groups in bounds, with native penalties.

A group is a set of binary variables whose count of ones must stay in ``[lo, hi]`` (one-hot:
``lo = hi = 1``; "exactly K": ``lo = hi = K``; "at most K": ``lo = 0, hi = K``). Inside a group
a move flips one variable only if the count stays in bounds, or swaps an on and an off member,
so a state that starts feasible for the groups stays feasible. Variables in no group take plain
single flips. Other linear constraints ``lo <= a.x <= hi`` are penalised inside the kernel by
``w * (distance outside [lo, hi])^2``, zero exactly on their feasible states, without slack
variables. Works on the SPIN form (``x = (s + 1) / 2``) of the objective.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
SpinArray = npt.NDArray[np.int8]

_EPS = 1e-12


@njit(cache=True, nogil=True)
def _coupling(indptr: IntArray, indices: Int32Array, data: FloatArray, i: int, j: int) -> float:
    for p in range(indptr[i], indptr[i + 1]):
        if indices[p] == j:
            return float(data[p])
    return 0.0


@njit(cache=True, nogil=True)
def _outside2(x: float, lo: float, hi: float) -> float:
    if x > hi:
        return (x - hi) * (x - hi)
    if x < lo:
        return (lo - x) * (lo - x)
    return 0.0


@njit(cache=True, nogil=True)
def _penalty_delta(
    i: int,
    dx: float,
    lhs: FloatArray,
    vptr: IntArray,
    vcon: Int32Array,
    vcoef: FloatArray,
    clo: FloatArray,
    chi: FloatArray,
    cw: FloatArray,
) -> float:
    """Change of the constraint penalties when ``x_i`` changes by ``dx``."""
    d = 0.0
    for p in range(vptr[i], vptr[i + 1]):
        c = vcon[p]
        old = lhs[c]
        new = old + vcoef[p] * dx
        d += cw[c] * (_outside2(new, clo[c], chi[c]) - _outside2(old, clo[c], chi[c]))
    return d


@njit(cache=True, nogil=True)
def _shift(
    i: int, dx: float, lhs: FloatArray, vptr: IntArray, vcon: Int32Array, vcoef: FloatArray
) -> None:
    for p in range(vptr[i], vptr[i + 1]):
        lhs[vcon[p]] += vcoef[p] * dx


@njit(cache=True, nogil=True)
def _flip(
    s: SpinArray,
    field: FloatArray,
    indptr: IntArray,
    indices: Int32Array,
    data: FloatArray,
    lhs: FloatArray,
    vptr: IntArray,
    vcon: Int32Array,
    vcoef: FloatArray,
    i: int,
) -> None:
    _shift(i, -float(s[i]), lhs, vptr, vcon, vcoef)
    s[i] = -s[i]
    two_s = 2.0 * s[i]
    for p in range(indptr[i], indptr[i + 1]):
        field[indices[p]] += two_s * data[p]


@njit(cache=True, nogil=True)
def _swap_delta(
    s: SpinArray,
    field: FloatArray,
    indptr: IntArray,
    indices: Int32Array,
    data: FloatArray,
    lhs: FloatArray,
    vptr: IntArray,
    vcon: Int32Array,
    vcoef: FloatArray,
    clo: FloatArray,
    chi: FloatArray,
    cw: FloatArray,
    i: int,
    j: int,
) -> float:
    """Energy change (objective and penalties) of flipping both ``i`` and ``j``."""
    jij = _coupling(indptr, indices, data, i, j)
    d = -2.0 * s[i] * field[i] - 2.0 * s[j] * field[j] + 4.0 * jij * s[i] * s[j]
    dxi, dxj = -float(s[i]), -float(s[j])
    d += _penalty_delta(i, dxi, lhs, vptr, vcon, vcoef, clo, chi, cw)
    _shift(i, dxi, lhs, vptr, vcon, vcoef)
    d += _penalty_delta(j, dxj, lhs, vptr, vcon, vcoef, clo, chi, cw)
    _shift(i, -dxi, lhs, vptr, vcon, vcoef)
    return float(d)


@njit(cache=True, nogil=True)
def _move_in_group(
    mem: Int32Array, pos: IntArray, cnt: IntArray, gptr: IntArray, g: int, i: int, on: bool
) -> None:
    """Keep group ``g`` partitioned (ones first) as ``i``, now ``on`` or not, changes state."""
    a = gptr[g]
    c = cnt[g]
    slot = a + c - 1 if on else a + c
    other = mem[slot]
    mem[slot], mem[pos[i]] = i, other
    pos[other] = pos[i]
    pos[i] = slot
    cnt[g] = c - 1 if on else c + 1


@njit(cache=True, nogil=True)
def start_grouped(
    h: FloatArray,
    indptr: IntArray,
    indices: Int32Array,
    data: FloatArray,
    gptr: IntArray,
    gmem: Int32Array,
    glo: IntArray,
    ghi: IntArray,
    vptr: IntArray,
    vcon: Int32Array,
    vcoef: FloatArray,
    num_constraints: int,
    seed: int,
) -> tuple[SpinArray, Int32Array, IntArray, IntArray, FloatArray, FloatArray]:
    """A random start of one read that satisfies every group's bounds; seeds the read's stream.

    ``group_of[i]`` is the group of variable ``i`` (-1: none); the members of group ``g`` are
    ``gmem[gptr[g]:gptr[g+1]]``. Returns the state of the read: spins ``s``, the members of
    each group partitioned with its ones first (``mem``, ``pos``, ``cnt``), the local fields
    and the left-hand sides of the penalised constraints.
    """
    np.random.seed(seed)
    n = h.shape[0]
    num_groups = glo.shape[0]
    s = np.empty(n, dtype=np.int8)
    for i in range(n):
        s[i] = 1 if np.random.random() < 0.5 else -1
    # Group members are kept partitioned: the first cnt[g] slots hold the members set to one.
    mem = gmem.copy()
    pos = np.full(n, -1, dtype=np.int64)
    cnt = np.zeros(num_groups, dtype=np.int64)
    for g in range(num_groups):
        a, b = gptr[g], gptr[g + 1]
        for k in range(b - 1, a, -1):  # Fisher-Yates shuffle of the members
            r = a + np.random.randint(0, k - a + 1)
            mem[k], mem[r] = mem[r], mem[k]
        c = glo[g] + np.random.randint(0, ghi[g] - glo[g] + 1)
        cnt[g] = c
        for k in range(a, b):
            s[mem[k]] = 1 if k - a < c else -1
            pos[mem[k]] = k
    field = h.copy()
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            field[i] += data[p] * s[indices[p]]
    lhs = np.zeros(num_constraints, dtype=np.float64)
    for i in range(n):
        if s[i] > 0:
            _shift(i, 1.0, lhs, vptr, vcon, vcoef)
    return s, mem, pos, cnt, field, lhs


@njit(cache=True, nogil=True)
def sweep_grouped(
    indptr: IntArray,
    indices: Int32Array,
    data: FloatArray,
    group_of: Int32Array,
    gptr: IntArray,
    glo: IntArray,
    ghi: IntArray,
    vptr: IntArray,
    vcon: Int32Array,
    vcoef: FloatArray,
    clo: FloatArray,
    chi: FloatArray,
    cw: FloatArray,
    s: SpinArray,
    mem: Int32Array,
    pos: IntArray,
    cnt: IntArray,
    field: FloatArray,
    lhs: FloatArray,
    best: SpinArray,
    energies: FloatArray,
    betas: FloatArray,
    first_sweep: int,
    num_sweeps: int,
) -> None:
    """Sweeps ``first_sweep ..`` of a read of ``num_sweeps``, one per entry of ``betas``.

    One sweep is ``n`` move attempts. Penalised constraint ``c`` involves ``x_i`` with
    coefficient ``vcoef[p]`` for ``p`` in ``vptr[i]:vptr[i+1]`` where ``vcon[p] == c``; its
    bounds are ``clo[c], chi[c]`` and weight ``cw[c]``. ``energies`` holds the energy relative
    to the start and the best one seen in the colder half of the schedule, whose state is
    kept in ``best``. Called block by block, a read draws the same moves as in one call.
    """
    n = s.shape[0]
    energy = energies[0]
    best_energy = energies[1]
    for offset in range(betas.shape[0]):
        beta = betas[offset]
        track = 2 * (first_sweep + offset) >= num_sweeps  # the best state of the colder half
        for _ in range(n):
            i = np.random.randint(0, n)
            g = group_of[i]
            on = s[i] > 0
            j = -1
            if g >= 0:
                a = gptr[g]
                size = gptr[g + 1] - a
                c = cnt[g]
                can_flip = (c - 1 >= glo[g]) if on else (c + 1 <= ghi[g])
                can_swap = (c < size) if on else (c > 0)
                if not can_flip and not can_swap:
                    continue
                if not can_flip or (can_swap and np.random.random() < 0.5):
                    if on:
                        j = mem[a + c + np.random.randint(0, size - c)]
                    else:
                        j = mem[a + np.random.randint(0, c)]
            if j < 0:
                delta = -2.0 * s[i] * field[i] + _penalty_delta(
                    i, -float(s[i]), lhs, vptr, vcon, vcoef, clo, chi, cw
                )
            else:
                delta = _swap_delta(
                    s, field, indptr, indices, data, lhs, vptr, vcon, vcoef, clo, chi, cw, i, j
                )
            if delta <= 0.0 or np.random.random() < np.exp(-beta * delta):
                if j < 0:
                    if g >= 0:
                        _move_in_group(mem, pos, cnt, gptr, g, i, on)
                else:
                    pi, pj = pos[i], pos[j]
                    mem[pi], mem[pj] = j, i
                    pos[i], pos[j] = pj, pi
                    _flip(s, field, indptr, indices, data, lhs, vptr, vcon, vcoef, j)
                _flip(s, field, indptr, indices, data, lhs, vptr, vcon, vcoef, i)
                energy += delta
            if track and energy < best_energy - _EPS:
                best_energy = energy
                best[:] = s
    energies[0] = energy
    energies[1] = best_energy


@njit(cache=True, nogil=True)
def finish_grouped(
    indptr: IntArray,
    indices: Int32Array,
    data: FloatArray,
    group_of: Int32Array,
    gptr: IntArray,
    glo: IntArray,
    ghi: IntArray,
    vptr: IntArray,
    vcon: Int32Array,
    vcoef: FloatArray,
    clo: FloatArray,
    chi: FloatArray,
    cw: FloatArray,
    s: SpinArray,
    mem: Int32Array,
    pos: IntArray,
    cnt: IntArray,
    field: FloatArray,
    lhs: FloatArray,
    best: SpinArray,
    energies: FloatArray,
) -> None:
    """End a read in ``s``: continue from the best state seen, then descend to a local
    minimum; the spins satisfy every group's bounds."""
    n = s.shape[0]
    if energies[1] < energies[0] - _EPS:
        for i in range(n):  # continue from the best state seen
            if s[i] != best[i]:
                _flip(s, field, indptr, indices, data, lhs, vptr, vcon, vcoef, i)
        _rebuild_groups(s, gptr, mem, pos, cnt)
    _descend(
        s,
        field,
        indptr,
        indices,
        data,
        group_of,
        gptr,
        glo,
        ghi,
        mem,
        pos,
        cnt,
        lhs,
        vptr,
        vcon,
        vcoef,
        clo,
        chi,
        cw,
    )


@njit(cache=True, nogil=True)
def _rebuild_groups(
    s: SpinArray, gptr: IntArray, mem: Int32Array, pos: IntArray, cnt: IntArray
) -> None:
    """Re-partition every group's members (ones first) after ``s`` was set directly."""
    for g in range(cnt.shape[0]):
        a, b = gptr[g], gptr[g + 1]
        members = mem[a:b].copy()
        k = a
        for v in members:
            if s[v] > 0:
                mem[k] = v
                pos[v] = k
                k += 1
        cnt[g] = k - a
        for v in members:
            if s[v] < 0:
                mem[k] = v
                pos[v] = k
                k += 1


@njit(cache=True, nogil=True)
def _descend(
    s: SpinArray,
    field: FloatArray,
    indptr: IntArray,
    indices: Int32Array,
    data: FloatArray,
    group_of: Int32Array,
    gptr: IntArray,
    glo: IntArray,
    ghi: IntArray,
    mem: Int32Array,
    pos: IntArray,
    cnt: IntArray,
    lhs: FloatArray,
    vptr: IntArray,
    vcon: Int32Array,
    vcoef: FloatArray,
    clo: FloatArray,
    chi: FloatArray,
    cw: FloatArray,
) -> None:
    """Take improving flips and in-group swaps (within bounds) until none is left."""
    n = s.shape[0]
    for _ in range(1000):
        improved = False
        for i in range(n):
            g = group_of[i]
            on = s[i] > 0
            delta_i = -2.0 * s[i] * field[i] + _penalty_delta(
                i, -float(s[i]), lhs, vptr, vcon, vcoef, clo, chi, cw
            )
            may_flip = g < 0 or ((cnt[g] - 1 >= glo[g]) if on else (cnt[g] + 1 <= ghi[g]))
            if may_flip and delta_i < -_EPS:
                if g >= 0:
                    _move_in_group(mem, pos, cnt, gptr, g, i, on)
                _flip(s, field, indptr, indices, data, lhs, vptr, vcon, vcoef, i)
                improved = True
                continue
            if g < 0:
                continue
            best_j = -1
            best_delta = -_EPS
            for k in range(gptr[g], gptr[g + 1]):
                j = mem[k]
                if s[j] == s[i]:
                    continue
                d = _swap_delta(
                    s, field, indptr, indices, data, lhs, vptr, vcon, vcoef, clo, chi, cw, i, j
                )
                if d < best_delta:
                    best_delta = d
                    best_j = j
            if best_j >= 0:
                pi, pj = pos[i], pos[best_j]
                mem[pi], mem[pj] = best_j, i
                pos[i], pos[best_j] = pj, pi
                _flip(s, field, indptr, indices, data, lhs, vptr, vcon, vcoef, i)
                _flip(s, field, indptr, indices, data, lhs, vptr, vcon, vcoef, best_j)
                improved = True
        if not improved:
            break
