"""The dwave-samplers adapters: same answers as Ocean, our result shape, time limits, errors."""

from __future__ import annotations

import doctest
import subprocess
import sys
import textwrap
from typing import Any

import dimod
import numpy as np
import pytest
from dwave.samplers import SimulatedAnnealingSampler

from nqba.engine import InvalidParameterError, get_solver
from nqba.engine.adapters.dwave import DWaveSimulatedAnnealingSampler, DWaveTabuSampler
from nqba.engine.testing import random_bqm


def _ground_energy(bqm: dimod.BinaryQuadraticModel) -> float:
    exact: Any = dimod.ExactSolver  # dimod's brute force, as the reference
    return float(exact().sample(bqm).first.energy)


def test_dwave_sa_returns_what_ocean_returns_for_the_same_seed() -> None:
    bqm = random_bqm(12, "SPIN", seed=1)
    ours = DWaveSimulatedAnnealingSampler().sample(bqm, num_reads=6, seed=42)
    ocean_sampler: Any = SimulatedAnnealingSampler
    ocean = ocean_sampler().sample(bqm, num_reads=6, seed=42)
    assert sorted(ours.record.energy.tolist()) == pytest.approx(
        sorted(ocean.record.energy.tolist())
    )
    assert ours.info["seed"] == 42


@pytest.mark.parametrize("name", ["dwave-sa", "dwave-tabu"])
def test_dwave_adapters_find_the_ground_state_of_a_small_model(name: str) -> None:
    bqm = random_bqm(10, "BINARY", seed=2)
    sampleset = get_solver(name).sample(bqm, num_reads=5, seed=3)
    assert sampleset.first.energy == pytest.approx(_ground_energy(bqm))
    assert sampleset.info["solver"] == name
    assert sampleset.info["stop_reason"] == "completed"


@pytest.mark.parametrize("sampler_class", [DWaveSimulatedAnnealingSampler, DWaveTabuSampler])
def test_time_limit_stops_starting_reads_and_says_so(
    sampler_class: type[DWaveSimulatedAnnealingSampler],
) -> None:
    bqm = random_bqm(60, "SPIN", seed=4)
    sampleset = sampler_class().sample(bqm, num_reads=1_000_000, time_limit=0.2, seed=1)
    assert sampleset.info["stop_reason"] == "time limit"
    assert 1 <= len(sampleset) < 1_000_000
    assert sampleset.info["timing"]["total_s"] < 1.2
    assert np.all(np.diff(sampleset.record.energy) >= 0)


def test_ocean_parameters_pass_through_without_warning() -> None:
    bqm = random_bqm(6, "SPIN", seed=5)
    sampleset = DWaveSimulatedAnnealingSampler().sample(
        bqm, num_reads=3, num_sweeps=50, beta_range=[0.1, 5.0], seed=1
    )
    assert len(sampleset) == 3


def test_zero_reads_raise_invalid_parameter_naming_num_reads() -> None:
    with pytest.raises(InvalidParameterError, match="num_reads"):
        DWaveSimulatedAnnealingSampler().sample(random_bqm(3, "SPIN", seed=6), num_reads=0)


def test_tabu_declares_that_a_seed_does_not_make_it_reproducible() -> None:
    assert DWaveTabuSampler().properties["seed_reproducible"] is False


def test_missing_dwave_samplers_raises_backend_unavailable_with_the_pip_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["dwave.samplers"] = None  # the import system then raises ImportError
        from nqba.engine import BackendUnavailableError, get_solver
        try:
            get_solver("dwave-sa")
        except BackendUnavailableError as exc:
            print("raised:", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "raised:" in out
    assert "pip install 'nqba[dwave]'" in out


def test_the_docstring_example_runs() -> None:
    import nqba.engine.adapters.dwave as module

    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
