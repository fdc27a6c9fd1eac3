"""Every built-in sampler against brute force on many small random models (hypothesis)."""

from __future__ import annotations

import itertools

import dimod
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nqba.engine import get_solver, solver_entries
from nqba.engine.samplers.exact import ExactSampler

_coefficients = st.one_of(
    st.just(0.0),
    st.integers(-5, 5).map(float),
    st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False, width=32),
)


@st.composite
def small_models(draw: st.DrawFn) -> dimod.BinaryQuadraticModel:
    """A BQM of 1-10 variables, SPIN or BINARY, random density, zero/int/float biases."""
    n = draw(st.integers(1, 10))
    vartype = draw(st.sampled_from([dimod.SPIN, dimod.BINARY]))
    density = draw(st.floats(0.0, 1.0))
    linear = {v: draw(_coefficients) for v in range(n)}
    pairs = [p for p in itertools.combinations(range(n), 2) if draw(st.floats(0, 1)) < density]
    quadratic = {p: draw(_coefficients) for p in pairs}
    offset = draw(_coefficients)
    return dimod.BinaryQuadraticModel(linear, quadratic, offset, vartype)


def brute_force_ground_energy(bqm: dimod.BinaryQuadraticModel) -> float:
    """The lowest energy over all states, with numpy only."""
    vectors = bqm.to_numpy_vectors(variable_order=range(len(bqm)))
    linear, (irow, icol, quad), offset = vectors[0], vectors[1], vectors[2]
    values = (-1, 1) if bqm.vartype is dimod.SPIN else (0, 1)
    states = np.array(list(itertools.product(values, repeat=len(bqm))), dtype=np.float64)
    energies = offset + states @ linear + (states[:, irow] * states[:, icol]) @ quad
    return float(np.min(energies))


def _tolerance(bqm: dimod.BinaryQuadraticModel) -> float:
    biases = [*bqm.linear.values(), *bqm.quadratic.values()]
    scale = max([1.0, *(abs(float(b)) for b in biases)])
    return 1e-9 * scale * max(1, len(bqm)) ** 2


_BUILTINS = sorted({e.name for e in solver_entries() if e.builtin} | {"tabu", "exact"})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bqm=small_models())
def test_exact_ground_energy_equals_numpy_brute_force(bqm: dimod.BinaryQuadraticModel) -> None:
    sampleset = ExactSampler().sample(bqm)
    expected = brute_force_ground_energy(bqm)
    assert sampleset.info["ground_energy"] == pytest.approx(expected, abs=_tolerance(bqm))
    assert sampleset.first.energy == pytest.approx(expected, abs=_tolerance(bqm))


@pytest.mark.parametrize("solver", _BUILTINS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bqm=small_models(), seed=st.integers(0, 2**31 - 1))
def test_builtin_sampler_reaches_the_brute_force_ground_energy(
    solver: str, bqm: dimod.BinaryQuadraticModel, seed: int
) -> None:
    sampleset = get_solver(solver).sample(bqm, seed=seed, time_limit=10.0)
    expected = brute_force_ground_energy(bqm)
    assert sampleset.first.energy == pytest.approx(expected, abs=_tolerance(bqm))
    np.testing.assert_allclose(bqm.energies(sampleset), sampleset.record.energy)
