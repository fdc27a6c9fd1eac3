"""D-Wave Leap quantum annealers behind the nqba interface, via dwave-system.

The problem is minor-embedded onto the QPU by ``EmbeddingComposite(DWaveSampler())``. The
token comes from ``DWAVE_API_TOKEN`` or the dwave configuration file (``dwave config
create``). dwave-system is imported only when a sample is requested, and every call is bounded
in time so an unreachable service raises :class:`BackendUnavailableError`.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import dimod
from dimod.core.sampler import Sampler

from nqba.engine.adapters import call_with_timeout, empty_sampleset, finish_sampleset, pop_int
from nqba.engine.errors import (
    BackendUnavailableError,
    MissingCredentialsError,
    ModelTooLargeError,
)
from nqba.engine.model import as_bqm
from nqba.engine.samplers.base import check_time_limit

_INSTALL_HINT = "pip install 'nqba[leap]'"
_PASSED_THROUGH = ("annealing_time", "chain_strength", "label", "answer_mode")


class LeapSampler(Sampler):
    """Sample on a D-Wave QPU; honours ``num_reads`` and ``time_limit``, not ``seed``.

    ``time_limit`` (default ``timeout`` of the constructor, 300 s) bounds the whole call:
    connecting, embedding, queueing and annealing. A QPU has no seed, so runs are not
    reproducible. ``annealing_time``, ``chain_strength``, ``label`` and ``answer_mode`` are
    passed to Ocean.
    """

    name: ClassVar[str] = "leap"

    def __init__(self, timeout: float = 300.0) -> None:
        self.timeout = check_time_limit(timeout) or 300.0

    @property
    def parameters(self) -> dict[str, list[str]]:
        names = ("num_reads", "time_limit", *_PASSED_THROUGH)
        return {name: [] for name in names}

    @property
    def properties(self) -> dict[str, Any]:
        return {"name": self.name, "credential": "DWAVE_API_TOKEN or dwave config file"}

    def sample(self, bqm: Any, **parameters: Any) -> dimod.SampleSet:
        """Send ``bqm`` to Leap and return its samples, lowest energy first."""
        start = time.perf_counter()
        bqm = as_bqm(bqm, allow_empty=True)
        parameters = self.remove_unknown_kwargs(**parameters)
        num_reads = pop_int(parameters, "num_reads", 100)
        time_limit = check_time_limit(parameters.pop("time_limit", None)) or self.timeout
        system, cloud = _import_ocean()
        if not cloud.config.load_config().get("token"):
            raise MissingCredentialsError(
                "the leap solver needs a D-Wave Leap API token: set DWAVE_API_TOKEN or run "
                "`dwave config create`"
            )
        setup_done = time.perf_counter()
        if bqm.num_variables == 0:
            sampleset, stop_reason = empty_sampleset(bqm), "empty model"
        else:

            def run() -> dimod.SampleSet:
                sampler = system.EmbeddingComposite(system.DWaveSampler())
                result: Any = sampler.sample(bqm, num_reads=num_reads, **parameters)
                result.resolve()  # the answer arrives lazily; wait for it inside the time bound
                sampleset: dimod.SampleSet = result
                return sampleset

            try:
                sampleset = call_with_timeout(run, time_limit, "the D-Wave Leap service")
            except cloud.exceptions.SolverAuthenticationError as exc:
                raise MissingCredentialsError(f"Leap refused the API token: {exc}") from exc
            except ValueError as exc:
                if "embedding" in str(exc).lower():
                    raise ModelTooLargeError(f"no embedding onto the QPU was found: {exc}") from exc
                raise BackendUnavailableError(f"Leap could not run the model: {exc}") from exc
            except (OSError, cloud.exceptions.PollingTimeout) as exc:
                raise BackendUnavailableError(f"D-Wave Leap cannot be reached: {exc}") from exc
            stop_reason = "completed"
        solve_done = time.perf_counter()
        return finish_sampleset(
            bqm,
            sampleset,
            solver=self.name,
            stop_reason=stop_reason,
            start=start,
            setup_done=setup_done,
            solve_done=solve_done,
        )


def _import_ocean() -> tuple[Any, Any]:
    """``dwave.system`` and ``dwave.cloud``, or a typed error with the pip extra."""
    try:
        import dwave.cloud.config
        import dwave.cloud.exceptions
        import dwave.system
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the dwave-system package is not installed ({exc}); {_INSTALL_HINT}"
        ) from exc
    return dwave.system, dwave.cloud
