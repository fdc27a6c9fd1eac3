"""Exact enumeration ("exact"): every one of the 2^n states, for models of up to 25 variables.

The states are walked in Gray-code order, so each step flips one spin and costs O(degree). The
space is cut into blocks (the top bits fixed) that run on ``num_threads`` threads; each block
keeps its ``num_reads`` lowest states in a heap, and the blocks' heaps are merged. The result
is the ``num_reads`` lowest-energy distinct states, lowest first (ties by state code), with
``info["ground_energy"]`` and ``info["num_ground_states"]``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from numba import njit

from nqba.engine.errors import ModelTooLargeError
from nqba.engine.model import IsingArrays
from nqba.engine.registry import register_solver
from nqba.engine.samplers.base import ArraySampler, RunResult, RunSettings

MAX_VARIABLES = 25
_BLOCK_BITS = 20  # states per block: 2^20, a few milliseconds of work


@njit(cache=True, nogil=True)
def _less(e1: float, c1: int, e2: float, c2: int) -> bool:
    return e1 < e2 or (e1 == e2 and c1 < c2)


@njit(cache=True, nogil=True)
def _heap_offer(
    heap_e: npt.NDArray[np.float64], heap_c: npt.NDArray[np.int64], size: int, e: float, c: int
) -> int:
    """Offer state (e, c) to a max-heap of capacity ``len(heap_e)``; return the new size."""
    cap = heap_e.shape[0]
    if size < cap:
        i = size
        size += 1
        while i > 0:
            p = (i - 1) // 2
            if _less(heap_e[p], heap_c[p], e, c):
                heap_e[i] = heap_e[p]
                heap_c[i] = heap_c[p]
                i = p
            else:
                break
        heap_e[i] = e
        heap_c[i] = c
        return size
    if not _less(e, c, heap_e[0], heap_c[0]):
        return size
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        right = left + 1
        if right < size and _less(heap_e[left], heap_c[left], heap_e[right], heap_c[right]):
            child = right
        if _less(e, c, heap_e[child], heap_c[child]):
            heap_e[i] = heap_e[child]
            heap_c[i] = heap_c[child]
            i = child
        else:
            break
    heap_e[i] = e
    heap_c[i] = c
    return size


@njit(cache=True, nogil=True)
def _enumerate_block(
    h: npt.NDArray[np.float64],
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float64],
    low_bits: int,
    high: int,
    heap_e: npt.NDArray[np.float64],
    heap_c: npt.NDArray[np.int64],
    tol: float,
) -> tuple[int, float, int]:
    """Enumerate the 2^low_bits states whose top bits are ``high``.

    A state's code has bit i set when spin i is +1. Returns (heap size, lowest energy seen,
    number of states within ``tol`` of it); energies exclude the offset.
    """
    n = h.shape[0]
    s = np.empty(n, dtype=np.int8)
    code = high << low_bits
    for i in range(n):
        s[i] = 1 if (code >> i) & 1 else -1
    field = np.zeros(n, dtype=np.float64)
    e = 0.0
    for i in range(n):
        f = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            f += data[k] * s[indices[k]]
        field[i] = f
        e += s[i] * (h[i] + 0.5 * f)
    size = _heap_offer(heap_e, heap_c, 0, e, code)
    ground = e
    count = 1
    for t in range(1, 1 << low_bits):
        b = 0
        while not (t >> b) & 1:
            b += 1
        sb = s[b]
        e -= 2.0 * sb * (h[b] + field[b])
        sb = -sb
        s[b] = sb
        two_s = 2.0 * sb
        for k in range(indptr[b], indptr[b + 1]):
            field[indices[k]] += two_s * data[k]
        code ^= 1 << b
        if e < ground - tol:
            ground = e
            count = 1
        elif e <= ground + tol:
            count += 1
        size = _heap_offer(heap_e, heap_c, size, e, code)
    return size, ground, count


class ExactSampler(ArraySampler):
    """Brute-force enumeration of all 2^n states (n <= 25): the reference for the others."""

    name: ClassVar[str] = "exact"
    default_num_reads: ClassVar[int] = 1
    extra_parameters: ClassVar[Mapping[str, str]] = {}

    @property
    def properties(self) -> dict[str, Any]:
        props = super().properties
        props["max_variables"] = MAX_VARIABLES
        props["parameter_help"] = dict(props["parameter_help"])
        props["parameter_help"]["num_reads"] = (
            "number of lowest-energy distinct states returned (default 1; at most 2^n)"
        )
        return props

    def _run(self, arrays: IsingArrays, settings: RunSettings, **params: Any) -> RunResult:
        n = arrays.num_variables
        if n > MAX_VARIABLES:
            raise ModelTooLargeError(
                f"exact enumeration is limited to {MAX_VARIABLES} variables; "
                f"the model has {n} (2^{n} states)"
            )
        low_bits = min(n, _BLOCK_BITS)
        num_blocks = 1 << (n - low_bits)
        k_total = min(settings.num_reads, 1 << n)
        k_block = min(k_total, 1 << low_bits)
        scale = max(
            float(np.abs(arrays.h).max()) if n else 0.0,
            float(np.abs(arrays.data).max()) if arrays.data.size else 0.0,
        )
        tol = 1e-9 * max(scale, 1e-300) * n

        def block(high: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], float, int]:
            heap_e = np.empty(k_block, dtype=np.float64)
            heap_c = np.empty(k_block, dtype=np.int64)
            size, ground, count = _enumerate_block(
                arrays.h, arrays.indptr, arrays.indices, arrays.data, low_bits, high,
                heap_e, heap_c, tol,
            )  # fmt: skip
            return heap_e[:size], heap_c[:size], ground, count

        def timed_out() -> bool:
            return settings.deadline is not None and time.perf_counter() >= settings.deadline

        results = [block(0)]  # at least one block, so there is always an answer
        highs = range(1, num_blocks)
        if settings.num_threads == 1 or num_blocks == 2:
            for high in highs:
                if timed_out():
                    break
                results.append(block(high))
        else:
            with ThreadPoolExecutor(max_workers=settings.num_threads) as pool:
                futures = [pool.submit(lambda hi: None if timed_out() else block(hi), high)
                           for high in highs]  # fmt: skip
                for future in futures:
                    res = future.result()
                    if res is not None:
                        results.append(res)
        complete = len(results) == num_blocks

        energies = np.concatenate([r[0] for r in results])
        codes = np.concatenate([r[1] for r in results])
        order = np.lexsort((codes, energies))[:k_total]
        codes = codes[order]
        spins = np.where((codes[:, None] >> np.arange(n)) & 1, 1, -1).astype(np.int8)
        exact_e = arrays.energies(spins)
        order = np.lexsort((codes, exact_e))
        spins, exact_e = spins[order], exact_e[order]

        ground = min(r[2] for r in results)
        num_ground = sum(r[3] for r in results if r[2] <= ground + tol)
        info: dict[str, Any] = {"complete": complete, "states_enumerated": len(results) << low_bits}
        if complete:
            info["ground_energy"] = float(exact_e[0])
            info["num_ground_states"] = int(num_ground)
            stop_reason = "enumeration complete"
        else:
            stop_reason = "time limit reached before the enumeration finished"
        return RunResult(spins, stop_reason, info)


register_solver(
    "exact",
    ExactSampler,
    f"exact enumeration of all 2^n states (n <= {MAX_VARIABLES}); the reference for small models",
    builtin=True,
)
