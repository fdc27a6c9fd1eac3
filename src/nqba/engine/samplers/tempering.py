"""Parallel tempering ("pt"): replicas at a ladder of temperatures that exchange states.

One read is one independent run: ``num_replicas`` states, one per inverse temperature of a
geometric ladder over ``beta_range``, each doing a Metropolis sweep per round, then
neighbouring temperatures try to exchange (replica exchange, Metropolis criterion). Hot
replicas cross barriers, cold ones refine; the read returns the lowest-energy state seen in any
replica, after a greedy descent. On sparse models (mean degree <= 6, e.g. 2D grids and tori)
each temperature holds two replicas, one per ladder, that also make a Houdayer cluster move
each round: the connected cluster of sites where they disagree is flipped in both, which
keeps the sum of their energies and moves whole domains at once (J. Houdayer, Eur. Phys. J. B
22, 479 (2001)); benchmarks/RESULTS.md has what it gains on the G11 torus. Reads run in
parallel on ``num_threads`` threads with random streams derived from (seed, read index), so
samples do not depend on the number of threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from nqba.engine.errors import InvalidParameterError
from nqba.engine.model import IsingArrays
from nqba.engine.registry import register_solver
from nqba.engine.samplers import _anneal_kernels as kernels
from nqba.engine.samplers.annealing import (
    _WORK_PER_CALL,
    beta_range_param,
    geometric_betas,
    run_reads,
)
from nqba.engine.samplers.base import ArraySampler, RunResult, RunSettings, check_positive_int

# Mean degree up to which cluster moves are on by default: on denser graphs the clusters of
# disagreeing sites percolate and a move is close to swapping whole states.
SPARSE_MEAN_DEGREE = 6


class ParallelTemperingSampler(ArraySampler):
    """Parallel tempering with replica exchange; one sample (the best seen) per run."""

    name: ClassVar[str] = "pt"
    default_num_reads: ClassVar[int] = 1
    extra_parameters: ClassVar[dict[str, str]] = {
        "num_replicas": "temperatures (replicas) per run (default 24)",
        "num_sweeps": "rounds per run; a round is one sweep of every replica (default 1000)",
        "beta_range": "(hot, cold) ends of the geometric ladder; default from the coefficients",
        "cluster_moves": "two replicas per temperature with Houdayer cluster moves between "
        "them; default on for sparse models (mean degree <= 6)",
    }

    def _run(self, arrays: IsingArrays, settings: RunSettings, **params: Any) -> RunResult:
        R = check_positive_int("num_replicas", params.get("num_replicas", 24), minimum=2)
        rounds = check_positive_int("num_sweeps", params.get("num_sweeps", 1000))
        hot, cold = beta_range_param(arrays, params)
        betas = geometric_betas(hot, cold, R)
        a = arrays
        n = a.num_variables
        cluster = params.get("cluster_moves")
        if cluster is None:
            cluster = len(a.indices) <= SPARSE_MEAN_DEGREE * max(n, 1)
        elif not isinstance(cluster, bool):
            raise InvalidParameterError(f"cluster_moves must be True or False; got {cluster!r}")
        ladders = 2 if cluster else 1
        symmetric = not bool(np.any(a.h))
        num_reads = settings.num_reads
        out = np.empty((num_reads, n), dtype=np.int8)
        exchanges = np.zeros((num_reads, R - 1), dtype=np.int64)
        rounds_done = np.zeros(num_reads, dtype=np.int64)
        seeds = kernels.stream_seeds(np.uint64(settings.seed), num_reads)
        table_size = kernels.integer_table_size(a.h, a.indptr, a.data)
        per_round = ladders * R * (n + len(a.indices))
        chunk = rounds
        if settings.deadline is not None:
            chunk = max(1, min(rounds, _WORK_PER_CALL // max(per_round, 1)))

        def work(r: int, out_of_time: Callable[[], bool]) -> bool:
            rng = kernels.stream_seeds(seeds[r], ladders * R + 1)
            spins = np.empty((ladders * R, n), dtype=np.int8)
            kernels.random_spins(spins, rng[1:])
            fields = np.empty((ladders * R, n), dtype=np.float64)
            energy = np.empty(ladders * R, dtype=np.float64)
            kernels.local_fields(a.h, a.indptr, a.indices, a.data, spins, fields, energy)
            slot = np.arange(ladders * R, dtype=np.int64) % R
            k0 = int(np.argmin(energy))
            best_s = spins[k0].copy()
            best = energy[k0 : k0 + 1].copy()
            done = 0
            while done < rounds and not out_of_time():
                step = min(chunk, rounds - done)
                kernels.tempering_rounds(
                    a.indptr,
                    a.indices,
                    a.data,
                    spins,
                    fields,
                    energy,
                    betas,
                    slot,
                    rng,
                    step,
                    best_s,
                    best,
                    exchanges[r],
                    np.empty(table_size, dtype=np.float64),
                    ladders,
                    0,
                    R,
                    symmetric,
                )
                done += step
            rounds_done[r] = done
            s = best_s[None, :].copy()
            f = np.empty((1, n), dtype=np.float64)
            e = np.empty(1, dtype=np.float64)
            kernels.local_fields(a.h, a.indptr, a.indices, a.data, s, f, e)
            kernels.greedy_descent(a.indptr, a.indices, a.data, s[0], f[0], e[0])
            out[r] = s[0]
            return done < rounds

        ran, timed_out = run_reads(num_reads, settings, work)
        done_rounds = rounds_done[ran]
        rate = exchanges[ran].sum(axis=0) / max(ladders * int(done_rounds.sum()), 1) * 2.0
        return RunResult(
            spins=out[ran],
            stop_reason="time limit" if timed_out else "completed",
            info={
                "num_replicas": R,
                "num_sweeps": rounds,
                "cluster_moves": cluster,
                "beta_range": (hot, cold),
                "reads_completed": len(ran),
                "exchange_acceptance": [round(float(x), 4) for x in rate],
            },
        )


register_solver(
    "pt",
    ParallelTemperingSampler,
    "parallel tempering: replica exchange over a geometric temperature ladder, numba sweeps",
    builtin=True,
)
