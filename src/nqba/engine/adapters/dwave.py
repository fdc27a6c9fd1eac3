"""D-Wave's classical samplers from dwave-samplers behind the nqba interface: our baseline.

Both accept ``num_reads``, ``seed`` and ``time_limit`` and pass every other parameter of the
underlying Ocean sampler through (``num_sweeps``, ``beta_range``, ``tenure``, ...).
Without a time limit one call runs all reads, so a seeded run returns exactly what the Ocean
sampler returns for that seed. With a time limit the reads run in growing batches and no new
batch starts after the limit; a running batch is not interrupted.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import dimod
import numpy as np
from dimod.core.sampler import Sampler

from nqba.engine.adapters import empty_sampleset, finish_sampleset, pop_int
from nqba.engine.errors import BackendUnavailableError
from nqba.engine.model import as_bqm
from nqba.engine.samplers.base import check_seed, check_time_limit

_INSTALL_HINT = "pip install 'nqba[dwave]'"


def _load(class_name: str) -> Any:
    try:
        import dwave.samplers as samplers
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the dwave-samplers package is not installed ({exc}); {_INSTALL_HINT}"
        ) from exc
    return getattr(samplers, class_name)


def _batch_seed(seed: int, batch: int) -> int:
    """A seed below 2**31 (dwave-samplers' range) for batch ``batch`` of a seeded run."""
    return int(np.random.SeedSequence([seed, batch]).generate_state(1, dtype=np.uint32)[0] >> 1)


def _concatenate(parts: list[dimod.SampleSet]) -> dimod.SampleSet:
    concatenate: Any = dimod.concatenate
    result: dimod.SampleSet = concatenate(parts)
    return result


class _DWaveAdapter(Sampler):
    """Shared part of the two dwave-samplers adapters."""

    name: ClassVar[str]
    ocean_class: ClassVar[str]
    default_num_reads: ClassVar[int] = 10

    def __init__(self) -> None:
        self._ocean = _load(self.ocean_class)()

    @property
    def parameters(self) -> dict[str, list[str]]:
        ocean = {k: list(v) for k, v in self._ocean.parameters.items()}
        return ocean | {"num_reads": [], "seed": [], "time_limit": []}

    @property
    def properties(self) -> dict[str, Any]:
        return {"name": self.name, "backend": f"dwave.samplers.{self.ocean_class}"}

    def _batch_parameters(self, num_reads: int, time_left: float | None) -> dict[str, Any]:
        """Extra parameters for one batch; tabu uses them to bound its per-read search time."""
        return {}

    def sample(self, bqm: Any, **parameters: Any) -> dimod.SampleSet:
        """Sample ``bqm`` with the Ocean sampler; lowest energy first, timings in ``info``."""
        start = time.perf_counter()
        bqm = as_bqm(bqm, allow_empty=True)
        parameters = self.remove_unknown_kwargs(**parameters)
        num_reads = pop_int(parameters, "num_reads", self.default_num_reads)
        time_limit = check_time_limit(parameters.pop("time_limit", None))
        seed = check_seed(parameters.pop("seed", None))
        setup_done = time.perf_counter()
        if bqm.num_variables == 0:
            sampleset, stop_reason = empty_sampleset(bqm), "empty model"
        elif time_limit is None:
            sampleset = self._ocean.sample(
                bqm,
                num_reads=num_reads,
                seed=seed % 2**31,
                **(self._batch_parameters(num_reads, None) | parameters),
            )
            stop_reason = "completed"
        else:
            sampleset, stop_reason = self._sample_until(
                bqm, num_reads, seed, start + time_limit, parameters
            )
        solve_done = time.perf_counter()
        return finish_sampleset(
            bqm,
            sampleset,
            solver=self.name,
            stop_reason=stop_reason,
            start=start,
            setup_done=setup_done,
            solve_done=solve_done,
            info={"seed": seed},
        )

    def _sample_until(
        self,
        bqm: dimod.BinaryQuadraticModel,
        num_reads: int,
        seed: int,
        deadline: float,
        parameters: dict[str, Any],
    ) -> tuple[dimod.SampleSet, str]:
        """Run reads in batches of 1, 2, 4, ... until all are done or the deadline passes."""
        parts: list[dimod.SampleSet] = []
        done, batch, size = 0, 0, 1
        while done < num_reads:
            time_left = deadline - time.perf_counter()
            if parts and time_left <= 0:
                return _concatenate(parts), "time limit"
            count = min(size, num_reads - done)
            parts.append(
                self._ocean.sample(
                    bqm,
                    num_reads=count,
                    seed=_batch_seed(seed, batch),
                    **(self._batch_parameters(count, max(time_left, 0.0)) | parameters),
                )
            )
            done += count
            batch += 1
            size *= 2
        return _concatenate(parts), "completed"


class DWaveSimulatedAnnealingSampler(_DWaveAdapter):
    """``dwave.samplers.SimulatedAnnealingSampler`` with nqba's parameters, result and errors.

    >>> import dimod
    >>> bqm = dimod.BinaryQuadraticModel({"a": 1.0}, {("a", "b"): -2.0}, 0.0, "SPIN")
    >>> float(DWaveSimulatedAnnealingSampler().sample(bqm, num_reads=4, seed=7).first.energy)
    -3.0
    """

    name = "dwave-sa"
    ocean_class = "SimulatedAnnealingSampler"


class DWaveTabuSampler(_DWaveAdapter):
    """``dwave.samplers.TabuSampler`` with nqba's parameters, result and errors.

    Tabu stops each read on wall-clock time (its ``timeout``, ms per read, default 100), so a
    seed does not make runs reproducible on larger models. Under a ``time_limit`` each batch's
    per-read timeout is capped so the batch fits in the time left (an explicit ``timeout``
    wins).
    """

    name = "dwave-tabu"
    ocean_class = "TabuSampler"
    default_num_reads = 1

    @property
    def properties(self) -> dict[str, Any]:
        # Tabu stops on wall-clock time, so the same seed can give other samples.
        return super().properties | {"seed_reproducible": False}

    def _batch_parameters(self, num_reads: int, time_left: float | None) -> dict[str, Any]:
        if time_left is None:
            return {}
        per_read_ms = max(1, int(time_left * 1000 / num_reads))
        return {"timeout": min(100, per_read_ms)}
