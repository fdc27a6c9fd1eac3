"""The Dynex neuromorphic cloud behind the nqba interface; needs ``DYNEX_SDK_KEY``.

The Dynex SDK is imported only when a sample is requested, never by ``import nqba``. Every
call is bounded in time: an unreachable service raises :class:`BackendUnavailableError`
instead of waiting on the SDK's own retries.
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar

import dimod
from dimod.core.sampler import Sampler

from nqba.engine.adapters import call_with_timeout, empty_sampleset, finish_sampleset, pop_int
from nqba.engine.errors import BackendUnavailableError, MissingCredentialsError
from nqba.engine.model import as_bqm
from nqba.engine.samplers.base import check_time_limit

KEY_VARIABLE = "DYNEX_SDK_KEY"
_INSTALL_HINT = "pip install 'nqba[dynex]'"


class DynexSampler(Sampler):
    """Sample on Dynex; ``num_reads``, ``annealing_time`` and ``time_limit`` are honoured.

    ``time_limit`` (default ``timeout`` of the constructor, 300 s) bounds the whole call,
    network included. Dynex takes no seed, so runs are not reproducible; a ``seed`` argument
    is reported as unknown.
    """

    name: ClassVar[str] = "dynex"

    def __init__(self, timeout: float = 300.0) -> None:
        self.timeout = check_time_limit(timeout) or 300.0

    @property
    def parameters(self) -> dict[str, list[str]]:
        return {"num_reads": [], "annealing_time": [], "time_limit": []}

    @property
    def properties(self) -> dict[str, Any]:
        return {"name": self.name, "credential": KEY_VARIABLE}

    def sample(self, bqm: Any, **parameters: Any) -> dimod.SampleSet:
        """Send ``bqm`` to Dynex and return its samples, lowest energy first."""
        start = time.perf_counter()
        bqm = as_bqm(bqm, allow_empty=True)
        parameters = self.remove_unknown_kwargs(**parameters)
        num_reads = pop_int(parameters, "num_reads", 32)
        annealing_time = pop_int(parameters, "annealing_time", 100)
        time_limit = check_time_limit(parameters.pop("time_limit", None)) or self.timeout
        key = os.environ.get(KEY_VARIABLE, "").strip()
        if not key:
            raise MissingCredentialsError(
                f"the dynex solver needs an SDK key: set the environment variable {KEY_VARIABLE}"
            )
        dynex = _import_dynex()
        setup_done = time.perf_counter()
        if bqm.num_variables == 0:
            sampleset, stop_reason = empty_sampleset(bqm), "empty model"
        else:

            def run() -> dimod.SampleSet:
                config = dynex.DynexConfig(
                    sdk_key=key, default_timeout=time_limit, use_notebook_output=False
                )
                model = dynex.BQM(bqm, logging=False, config=config)
                sampler = dynex.DynexSampler(
                    model, logging=False, config=config, show_progress=False
                )
                result: dimod.SampleSet = sampler.sample(
                    num_reads=num_reads, annealing_time=annealing_time
                )
                return result

            try:
                sampleset = call_with_timeout(run, time_limit, "the Dynex service")
            except dynex.DynexError as exc:
                raise BackendUnavailableError(f"Dynex could not run the model: {exc}") from exc
            except OSError as exc:
                raise BackendUnavailableError(f"Dynex cannot be reached: {exc}") from exc
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


def _import_dynex() -> Any:
    try:
        import dynex
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the dynex package is not installed ({exc}); {_INSTALL_HINT}"
        ) from exc
    return dynex
