"""The exact sampler: all 2^n states enumerated, lowest first, refused beyond 25 variables."""

from __future__ import annotations

import itertools

import dimod
import numpy as np
import numpy.typing as npt
import pytest

from nqba.engine import ModelTooLargeError, get_solver, solver_entries
from nqba.engine.samplers.exact import MAX_VARIABLES, ExactSampler


def _all_energies(bqm: dimod.BinaryQuadraticModel) -> npt.NDArray[np.float64]:
    """Energies of every state of ``bqm``, sorted, by direct evaluation."""
    values = (-1, 1) if bqm.vartype is dimod.SPIN else (0, 1)
    states = np.array(list(itertools.product(values, repeat=len(bqm))))
    return np.sort(np.asarray(bqm.energies((states, list(bqm.variables))), dtype=np.float64))


def test_exact_lowest_states_match_dimod_exact_solver() -> None:
    bqm = dimod.generators.gnp_random_bqm(10, 0.5, "SPIN", random_state=3)
    reference = _all_energies(bqm)
    sampleset = ExactSampler().sample(bqm, num_reads=20)
    np.testing.assert_allclose(sampleset.record.energy, reference[:20])
    np.testing.assert_allclose(bqm.energies(sampleset), sampleset.record.energy)
    assert sampleset.info["ground_energy"] == pytest.approx(reference[0])


def test_exact_binary_model_with_offset_reports_bqm_energies() -> None:
    bqm = dimod.generators.gnp_random_bqm(8, 0.7, "BINARY", random_state=5)
    bqm.offset = 3.5
    ground = _all_energies(bqm)[0]
    sampleset = ExactSampler().sample(bqm)
    assert len(sampleset) == 1
    assert sampleset.vartype is dimod.BINARY
    assert sampleset.first.energy == pytest.approx(ground)
    assert bqm.energy(sampleset.first.sample) == pytest.approx(ground)


def test_exact_returns_every_ground_state_first_on_a_degenerate_model() -> None:
    # A ferromagnetic ring has exactly two ground states: all up and all down.
    bqm = dimod.BinaryQuadraticModel.from_ising({}, {(i, (i + 1) % 6): -1.0 for i in range(6)})
    sampleset = ExactSampler().sample(bqm, num_reads=4)
    assert sampleset.info["num_ground_states"] == 2
    assert sampleset.info["ground_energy"] == -6.0
    first_two = {tuple(row) for row in sampleset.record.sample[:2]}
    assert first_two == {(1,) * 6, (-1,) * 6}
    assert np.all(sampleset.record.energy[2:] > -6.0)


def test_exact_asked_for_more_reads_than_states_returns_each_state_once() -> None:
    bqm = dimod.BinaryQuadraticModel({"a": 1.0, "b": -2.0, "c": 0.0}, {("a", "b"): 1.5}, 0, "SPIN")
    sampleset = ExactSampler().sample(bqm, num_reads=100)
    assert len(sampleset) == 8
    assert len({tuple(row) for row in sampleset.record.sample}) == 8
    assert np.all(np.diff(sampleset.record.energy) >= 0)


def test_exact_accepts_qubo_and_ising_forms() -> None:
    sampler = ExactSampler()
    qubo = sampler.sample_qubo({(0, 0): -1.0, (1, 1): -1.0, (0, 1): 2.0}, num_reads=2)
    assert list(qubo.record.energy) == [-1.0, -1.0]
    ising = sampler.sample_ising({"x": 1.0}, {("x", "y"): -1.0})
    assert ising.first.sample == {"x": -1, "y": -1}
    assert ising.first.energy == -2.0


def test_exact_refuses_more_than_25_variables_stating_limit_and_size() -> None:
    bqm = dimod.BinaryQuadraticModel({v: 1.0 for v in range(MAX_VARIABLES + 1)}, {}, 0, "SPIN")
    with pytest.raises(ModelTooLargeError, match=r"25 variables.*has 26"):
        ExactSampler().sample(bqm)


def test_exact_threads_split_the_enumeration_without_changing_the_result() -> None:
    bqm = dimod.generators.gnp_random_bqm(22, 0.2, "SPIN", random_state=11)  # four blocks
    one = ExactSampler().sample(bqm, num_reads=5, num_threads=1)
    two = ExactSampler().sample(bqm, num_reads=5, num_threads=2)
    assert one.info["complete"]
    assert two.info["complete"]
    np.testing.assert_array_equal(one.record.sample, two.record.sample)
    np.testing.assert_allclose(one.record.energy, two.record.energy)


def test_exact_time_limit_returns_a_partial_enumeration_marked_incomplete() -> None:
    bqm = dimod.generators.gnp_random_bqm(25, 0.1, "SPIN", random_state=2)  # 32 blocks
    sampleset = ExactSampler().sample(bqm, time_limit=1e-6)
    assert sampleset.info["complete"] is False
    assert "ground_energy" not in sampleset.info
    assert sampleset.info["stop_reason"].startswith("time limit")
    assert sampleset.info["states_enumerated"] < 2**25
    assert len(sampleset) == 1


def test_exact_is_registered_as_a_builtin_solver() -> None:
    entry = next(e for e in solver_entries() if e.name == "exact")
    assert entry.builtin
    assert isinstance(get_solver("exact"), ExactSampler)
