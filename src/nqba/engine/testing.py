"""The conformance kit every nqba sampler passes: dimod's sampler tests plus our own contract.

Our checks: samples come lowest energy first; ``info`` has ``solver``, ``stop_reason`` and
``timing`` (``setup_s``, ``solve_s``, ``total_s``: non-negative seconds); the vartype and the
variables of the model are kept; energies equal ``bqm.energies``; a seed reproduces the samples
(where the sampler takes one and does not declare ``properties["seed_reproducible"] = False``);
``num_reads`` is respected; ``time_limit`` is honoured; unknown parameters warn with dimod's
``SamplerUnknownArgWarning``; out-of-range parameters raise ``InvalidParameterError``; a model
with a NaN bias raises ``InvalidModelError``. A check is skipped (counts as passed) when the
sampler does not list the parameter it needs in ``sampler.parameters``.

Run all checks at once:

>>> from nqba.engine.adapters.dwave import DWaveSimulatedAnnealingSampler
>>> check_sampler(DWaveSimulatedAnnealingSampler, max_num_variables=4)

or, as dimod does, decorate a ``unittest.TestCase``:

>>> import unittest
>>> @load_conformance_tests(DWaveSimulatedAnnealingSampler, max_num_variables=4)
... class TestDWaveSA(unittest.TestCase):
...     pass
>>> any(n.startswith("test_nqba_") for n in dir(TestDWaveSA))
True
"""

from __future__ import annotations

import math
import time
import unittest
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import dimod
import numpy as np
from dimod.core.sampler import Sampler

from nqba.engine.errors import InvalidModelError, InvalidParameterError

SamplerFactory = Callable[[], Sampler]
Check = Callable[[Sampler, int], None]
C = TypeVar("C", bound=type[unittest.TestCase])

DEFAULT_SIZE = 8
"""Variables in the models our checks build (fewer when ``max_num_variables`` says so)."""

TIME_LIMIT_S = 0.25
TIME_LIMIT_SLACK_S = 1.0
"""A sampler may finish the work unit it is in when the limit passes; this bounds the overrun."""


def random_bqm(num_variables: int, vartype: Any, seed: int) -> dimod.BinaryQuadraticModel:
    """A dense BQM with uniform(-1, 1) biases, an offset and string labels, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    labels = [f"x{i}" for i in range(num_variables)]
    bqm = dimod.BinaryQuadraticModel(vartype)
    bqm.offset = 0.5
    for i, u in enumerate(labels):
        bqm.add_linear(u, float(rng.uniform(-1, 1)))
        for v in labels[:i]:
            if rng.random() < 0.6:
                bqm.add_quadratic(u, v, float(rng.uniform(-1, 1)))
    return bqm


def _error_message(
    error: type[Exception], fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> str | None:
    """The message of the ``error`` that ``fn(*args, **kwargs)`` raises, or None if none.

    Any other exception fails the check, naming the type that came instead.
    """
    try:
        fn(*args, **kwargs)
    except error as exc:
        return str(exc)
    except Exception as exc:
        raise AssertionError(f"expected {error.__name__}, got {type(exc).__name__}: {exc}") from exc
    return None


def _takes(sampler: Sampler, parameter: str) -> bool:
    return parameter in sampler.parameters


def _run_kwargs(sampler: Sampler, **wanted: Any) -> dict[str, Any]:
    """Only those of ``wanted`` the sampler lists, so optional checks stay warning-free."""
    return {k: v for k, v in wanted.items() if _takes(sampler, k)}


def check_sorted_lowest_energy_first(sampler: Sampler, size: int) -> None:
    bqm = random_bqm(size, "SPIN", seed=1)
    sampleset = sampler.sample(bqm, **_run_kwargs(sampler, num_reads=10, seed=3))
    energies = sampleset.record.energy
    assert len(energies) >= 1, "the sampleset is empty"
    assert np.all(np.diff(energies) >= -1e-9), f"samples not sorted by energy: {energies}"


def check_info_has_solver_stop_reason_timing(sampler: Sampler, size: int) -> None:
    sampleset = sampler.sample(random_bqm(size, "BINARY", seed=2), **_run_kwargs(sampler, seed=3))
    info = sampleset.info
    for key in ("solver", "stop_reason"):
        assert isinstance(info.get(key), str), f"info[{key!r}] is not a string: {info.get(key)!r}"
        assert info[key], f"info[{key!r}] is empty"
    timing = info.get("timing")
    assert isinstance(timing, dict), f"info['timing'] is missing: {sorted(info)}"
    for key in ("setup_s", "solve_s", "total_s"):
        value = timing.get(key)
        assert isinstance(value, float), f"timing[{key!r}] is not a float: {value!r}"
        assert math.isfinite(value), f"timing[{key!r}] = {value}"
        assert value >= 0, f"timing[{key!r}] = {value}"
    assert timing["total_s"] >= max(timing["setup_s"], timing["solve_s"]), (
        f"total_s is less than one of its parts: {timing}"
    )


def check_vartype_and_variables_preserved(sampler: Sampler, size: int) -> None:
    for vartype in (dimod.SPIN, dimod.BINARY):
        bqm = random_bqm(size, vartype, seed=4)
        sampleset = sampler.sample(bqm, **_run_kwargs(sampler, seed=3))
        assert sampleset.vartype is vartype, f"{vartype.name} model came back {sampleset.vartype}"
        assert set(sampleset.variables) == set(bqm.variables), "variables differ from the model"
        allowed = set(vartype.value)
        assert set(np.unique(sampleset.record.sample)) <= allowed, "values outside the vartype"


def check_energies_match_bqm(sampler: Sampler, size: int) -> None:
    for vartype in (dimod.SPIN, dimod.BINARY):
        bqm = random_bqm(size, vartype, seed=5)
        sampleset = sampler.sample(bqm, **_run_kwargs(sampler, num_reads=5, seed=3))
        expected = bqm.energies(sampleset)
        assert np.allclose(sampleset.record.energy, expected, atol=1e-6), (
            f"reported energies {sampleset.record.energy} differ from bqm.energies {expected}"
        )


def check_seed_reproducible(sampler: Sampler, size: int) -> None:
    if not _takes(sampler, "seed") or sampler.properties.get("seed_reproducible") is False:
        return
    bqm = random_bqm(size, "SPIN", seed=6)
    kwargs = _run_kwargs(sampler, num_reads=5, seed=11)
    first = sampler.sample(bqm, **kwargs)
    second = sampler.sample(bqm, **kwargs)
    assert first.variables == second.variables, "variable order changed between seeded runs"
    assert np.array_equal(first.record.sample, second.record.sample), "same seed, other samples"
    assert np.array_equal(first.record.energy, second.record.energy), "same seed, other energies"


def check_num_reads_respected(sampler: Sampler, size: int) -> None:
    if not _takes(sampler, "num_reads"):
        return
    bqm = random_bqm(size, "BINARY", seed=7)
    for num_reads in (1, 7):
        sampleset = sampler.sample(bqm, **_run_kwargs(sampler, num_reads=num_reads, seed=3))
        total = int(sampleset.record.num_occurrences.sum())
        assert total == num_reads, f"asked for {num_reads} reads, got {total}"


def check_time_limit_honoured(sampler: Sampler, size: int) -> None:
    if not _takes(sampler, "time_limit"):
        return
    bqm = random_bqm(size, "SPIN", seed=8)
    # Many reads, so that without the limit the run would take far longer than the limit.
    kwargs = _run_kwargs(sampler, num_reads=100_000, seed=3, time_limit=TIME_LIMIT_S)
    start = time.perf_counter()
    sampleset = sampler.sample(bqm, **kwargs)
    elapsed = time.perf_counter() - start
    assert len(sampleset) >= 1, "no sample returned under a time limit"
    assert elapsed <= TIME_LIMIT_S + TIME_LIMIT_SLACK_S, (
        f"time_limit={TIME_LIMIT_S} s but the call took {elapsed:.3f} s"
    )


def check_unknown_parameter_warns(sampler: Sampler, size: int) -> None:
    bqm = random_bqm(min(size, 2), "SPIN", seed=9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler.sample(bqm, nqba_no_such_parameter=1, **_run_kwargs(sampler, seed=3))
    assert any(issubclass(w.category, dimod.exceptions.SamplerUnknownArgWarning) for w in caught), (
        "an unknown parameter did not raise SamplerUnknownArgWarning"
    )


def check_bad_parameters_raise(sampler: Sampler, size: int) -> None:
    bqm = random_bqm(min(size, 2), "SPIN", seed=10)
    bad: dict[str, list[Any]] = {
        "num_reads": [0, -1, 2.5, "many"],
        "seed": [-1, "x"],
        "time_limit": [-1.0, 0, math.nan],
    }
    for name, values in bad.items():
        if not _takes(sampler, name):
            continue
        for value in values:
            message = _error_message(InvalidParameterError, sampler.sample, bqm, **{name: value})
            assert message is not None, f"{name}={value!r} did not raise InvalidParameterError"
            assert name in message, f"the error for {name}={value!r} does not name it: {message}"


def check_nan_bias_raises_invalid_model(sampler: Sampler, size: int) -> None:
    bqm = dimod.BinaryQuadraticModel({"a": math.nan, "b": 1.0}, {("a", "b"): 1.0}, 0.0, "SPIN")
    message = _error_message(InvalidModelError, sampler.sample, bqm)
    assert message is not None, "a NaN bias did not raise InvalidModelError"
    assert "'a'" in message, f"the error does not name the variable: {message}"


CHECKS: dict[str, Check] = {
    "sorted_lowest_energy_first": check_sorted_lowest_energy_first,
    "info_has_solver_stop_reason_timing": check_info_has_solver_stop_reason_timing,
    "vartype_and_variables_preserved": check_vartype_and_variables_preserved,
    "energies_match_bqm": check_energies_match_bqm,
    "seed_reproducible": check_seed_reproducible,
    "num_reads_respected": check_num_reads_respected,
    "time_limit_honoured": check_time_limit_honoured,
    "unknown_parameter_warns": check_unknown_parameter_warns,
    "bad_parameters_raise": check_bad_parameters_raise,
    "nan_bias_raises_invalid_model": check_nan_bias_raises_invalid_model,
}
"""Our checks by name; each takes a sampler and the number of variables to use."""


def _dimod_tests(
    factory: SamplerFactory, max_num_variables: int | None
) -> Callable[[type[unittest.TestCase]], Any]:
    """dimod's ``load_sampler_bqm_tests`` decorator (untyped in dimod)."""
    load: Any = dimod.testing.load_sampler_bqm_tests
    decorator: Callable[[type[unittest.TestCase]], Any] = load(
        factory, max_num_variables=max_num_variables
    )
    return decorator


def _size(max_num_variables: int | None) -> int:
    if max_num_variables is None:
        return DEFAULT_SIZE
    if max_num_variables < 2:
        raise ValueError(f"the checks need at least 2 variables; got {max_num_variables}")
    return min(DEFAULT_SIZE, max_num_variables)


def _as_factory(sampler: Sampler | SamplerFactory) -> SamplerFactory:
    if isinstance(sampler, Sampler):
        instance = sampler

        def same() -> Sampler:
            return instance

        same.__name__ = type(sampler).__name__
        return same
    return sampler


def conformance_checks(
    sampler: Sampler | SamplerFactory, *, max_num_variables: int | None = None
) -> list[tuple[str, Callable[[], None]]]:
    """Every check as ``(name, run)``: dimod's ``load_sampler_bqm_tests`` cases, then ours.

    ``sampler`` is an instance or a factory (a class, or a callable with a ``__name__``);
    ``run()`` raises ``AssertionError`` on failure. Suits ``pytest.mark.parametrize``.
    """
    factory = _as_factory(sampler)
    size = _size(max_num_variables)
    cases: list[tuple[str, Callable[[], None]]] = []
    holder = _dimod_tests(factory, max_num_variables)(type("_DimodCases", (unittest.TestCase,), {}))
    for name in sorted(n for n in dir(holder) if n.startswith("test_")):
        cases.append((f"dimod_{name.removeprefix('test_')}", getattr(holder(name), name)))
    for name, check in CHECKS.items():

        def run(check: Check = check) -> None:
            check(factory(), size)

        cases.append((name, run))
    return cases


def check_sampler(
    sampler: Sampler | SamplerFactory, *, max_num_variables: int | None = None
) -> None:
    """Run every conformance check; raise one ``AssertionError`` listing all that failed."""
    failures = []
    for name, run in conformance_checks(sampler, max_num_variables=max_num_variables):
        try:
            run()
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
        except Exception as exc:
            failures.append(f"{name}: raised {type(exc).__name__}: {exc}")
    if failures:
        raise AssertionError(
            f"{len(failures)} conformance check(s) failed:\n" + "\n".join(failures)
        )


def load_conformance_tests(
    sampler: Sampler | SamplerFactory, *, max_num_variables: int | None = None
) -> Callable[[C], C]:
    """Class decorator adding dimod's sampler tests and ``test_nqba_<check>`` methods."""
    factory = _as_factory(sampler)
    size = _size(max_num_variables)

    def decorate(cls: C) -> C:
        cls = _dimod_tests(factory, max_num_variables)(cls)
        for name, check in CHECKS.items():

            def method(self: unittest.TestCase, check: Check = check) -> None:
                check(factory(), size)

            method.__name__ = f"test_nqba_{name}"
            setattr(cls, method.__name__, method)
        return cls

    return decorate
