"""The conformance kit itself: it passes a conforming sampler and names what others break."""

from __future__ import annotations

import doctest
import time
import unittest
from typing import Any

import dimod
import numpy as np
import pytest
from dimod.core.sampler import Sampler

import nqba.engine.testing as kit
from nqba.engine.adapters import finish_sampleset, pop_int, sampleset_from
from nqba.engine.adapters.dwave import DWaveSimulatedAnnealingSampler
from nqba.engine.model import as_bqm
from nqba.engine.samplers.base import check_seed, check_time_limit


class RandomSpins(Sampler):
    """A minimal conforming sampler: independent random values, one row per read."""

    @property
    def parameters(self) -> dict[str, list[str]]:
        return {"num_reads": [], "seed": [], "time_limit": []}

    @property
    def properties(self) -> dict[str, Any]:
        return {}

    def sample(self, bqm: Any, **parameters: Any) -> dimod.SampleSet:
        start = time.perf_counter()
        bqm = as_bqm(bqm, allow_empty=True)
        parameters = self.remove_unknown_kwargs(**parameters)
        num_reads = pop_int(parameters, "num_reads", 10)
        check_time_limit(parameters.pop("time_limit", None))
        rng = np.random.default_rng(check_seed(parameters.pop("seed", None)))
        values = rng.choice(sorted(bqm.vartype.value), (num_reads, bqm.num_variables))
        drawn = sampleset_from(values, list(bqm.variables), bqm.vartype, np.zeros(num_reads))
        now = time.perf_counter()
        return finish_sampleset(
            bqm,
            drawn,
            solver="random",
            stop_reason="completed",
            start=start,
            setup_done=now,
            solve_done=now,
        )


class ReversedOrder(RandomSpins):
    """Breaks the contract: highest energy first."""

    def sample(self, bqm: Any, **parameters: Any) -> dimod.SampleSet:
        sampleset = super().sample(bqm, **parameters)
        record = sampleset.record[::-1]
        make: Any = dimod.SampleSet
        reversed_set: dimod.SampleSet = make(
            record, sampleset.variables, sampleset.info, sampleset.vartype
        )
        return reversed_set


def test_a_conforming_sampler_passes_every_check() -> None:
    kit.check_sampler(RandomSpins, max_num_variables=5)


def test_samples_out_of_energy_order_fail_the_sorting_check() -> None:
    with pytest.raises(AssertionError, match="sorted_lowest_energy_first"):
        kit.check_sampler(ReversedOrder, max_num_variables=4)


def test_dimods_own_sampler_fails_on_missing_timing_and_ignored_parameters() -> None:
    with pytest.raises(AssertionError) as failure:
        kit.check_sampler(dimod.RandomSampler, max_num_variables=3)
    message = str(failure.value)
    assert "info_has_solver_stop_reason_timing" in message
    assert "bad_parameters_raise: expected InvalidParameterError" in message


def test_checks_include_dimods_sampler_tests_and_ours() -> None:
    names = [name for name, _ in kit.conformance_checks(RandomSpins, max_num_variables=3)]
    assert any(name.startswith("dimod_sample_ising_empty") for name in names)
    assert set(kit.CHECKS) <= set(names)
    assert not any("2path" in name for name in kit_names(max_num_variables=2))


def kit_names(max_num_variables: int) -> list[str]:
    return [n for n, _ in kit.conformance_checks(RandomSpins, max_num_variables=max_num_variables)]


def test_load_conformance_tests_adds_methods_that_pass_under_unittest() -> None:
    @kit.load_conformance_tests(RandomSpins, max_num_variables=3)
    class TestRandomSpins(unittest.TestCase):
        pass

    names = [n for n in dir(TestRandomSpins) if n.startswith("test_")]
    assert "test_nqba_seed_reproducible" in names
    assert any(n.startswith("test_sample_qubo") for n in names)
    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(TestRandomSpins).run(result)
    assert result.wasSuccessful(), result.failures + result.errors
    assert result.testsRun == len(names)


def test_a_sampler_instance_is_accepted_as_well_as_a_factory() -> None:
    kit.check_sampler(DWaveSimulatedAnnealingSampler(), max_num_variables=3)


def test_fewer_than_two_variables_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        kit.conformance_checks(RandomSpins, max_num_variables=1)


def test_the_module_docstring_example_runs() -> None:
    result = doctest.testmod(kit)
    assert result.attempted > 0
    assert result.failed == 0
