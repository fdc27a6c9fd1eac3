"""QAOA on the local Qiskit Aer statevector simulator: a gate-model reference for small models.

The Ising model becomes a diagonal cost Hamiltonian ``H = offset + sum_i h_i Z_i +
sum_{i<j} J_ij Z_i Z_j`` (a ``SparsePauliOp``), variable ``labels[i]`` on qubit ``i``. A
measured bit 0 on qubit ``i`` is the Z eigenvalue +1, that is spin +1. The QAOA circuit
(``qiskit.circuit.library.qaoa_ansatz``, ``reps`` layers) is simulated exactly by Aer; COBYLA
(scipy) tunes the angles to minimise ``<H>``; then ``num_reads`` bitstrings are drawn from the
final state. Simulation memory and time double with each qubit, so models above
:data:`MAX_QUBITS` variables are refused.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import dimod
import numpy as np
import numpy.typing as npt
from dimod.core.sampler import Sampler

from nqba.engine.adapters import empty_sampleset, finish_sampleset, pop_int, sampleset_from
from nqba.engine.errors import BackendUnavailableError, ModelTooLargeError
from nqba.engine.model import IsingArrays, as_bqm
from nqba.engine.samplers.base import check_seed, check_time_limit

MAX_QUBITS = 20
"""At 20 qubits one statevector holds 2**20 complex amplitudes (16 MiB) and every optimizer
step simulates the whole circuit once, so a default run stays within seconds to minutes."""

_INSTALL_HINT = "pip install 'nqba[qiskit]'"


class _DeadlineReachedError(Exception):
    """Raised inside the objective to stop COBYLA when the time limit has passed."""


def _diagonal(arrays: IsingArrays) -> npt.NDArray[np.float64]:
    """Energy of every basis state ``k``: spin ``i`` is +1 when bit ``i`` of ``k`` is 0."""
    n = arrays.num_variables
    index = np.arange(2**n, dtype=np.int64)
    spins = [(1 - 2 * ((index >> i) & 1)).astype(np.int8) for i in range(n)]
    energy = np.full(2**n, arrays.offset, dtype=np.float64)
    for i in range(n):
        energy += arrays.h[i] * spins[i]
        for k in range(int(arrays.indptr[i]), int(arrays.indptr[i + 1])):
            j = int(arrays.indices[k])
            if j > i:
                energy += arrays.data[k] * (spins[i] * spins[j])
    return energy


class QAOASampler(Sampler):
    """QAOA with ``reps`` layers, angles optimised by COBYLA, on Aer's statevector simulator.

    Parameters: ``num_reads`` (bitstrings drawn, default 100), ``seed`` (fixes the draws; the
    simulation and optimizer are deterministic), ``time_limit`` (no optimizer step starts after
    it; the best angles so far are used), ``reps`` (layers p, default 2) and ``maxiter``
    (COBYLA steps, default 100). Models above :data:`MAX_QUBITS` variables raise
    :class:`ModelTooLargeError`.

    >>> import dimod
    >>> bqm = dimod.BinaryQuadraticModel({"a": 1.0}, {("a", "b"): -2.0}, 0.0, "SPIN")
    >>> float(QAOASampler().sample(bqm, seed=1, maxiter=20).first.energy)
    -3.0
    """

    name: ClassVar[str] = "qaoa"
    default_num_reads: ClassVar[int] = 100

    @property
    def parameters(self) -> dict[str, list[str]]:
        return {"num_reads": [], "seed": [], "time_limit": [], "reps": [], "maxiter": []}

    @property
    def properties(self) -> dict[str, Any]:
        return {"name": self.name, "max_num_variables": MAX_QUBITS}

    def sample(self, bqm: Any, **parameters: Any) -> dimod.SampleSet:
        """Run QAOA on ``bqm``; samples lowest energy first, ``info`` holds ``<H>`` and angles."""
        start = time.perf_counter()
        bqm = as_bqm(bqm, allow_empty=True)
        parameters = self.remove_unknown_kwargs(**parameters)
        num_reads = pop_int(parameters, "num_reads", self.default_num_reads)
        time_limit = check_time_limit(parameters.pop("time_limit", None))
        seed = check_seed(parameters.pop("seed", None))
        reps = pop_int(parameters, "reps", 2)
        maxiter = pop_int(parameters, "maxiter", 100)
        if bqm.num_variables > MAX_QUBITS:
            raise ModelTooLargeError(
                f"qaoa simulates at most {MAX_QUBITS} qubits (one per variable); the model has "
                f"{bqm.num_variables} variables"
            )
        if bqm.num_variables == 0:
            now = time.perf_counter()
            return finish_sampleset(
                bqm,
                empty_sampleset(bqm),
                solver=self.name,
                stop_reason="empty model",
                start=start,
                setup_done=now,
                solve_done=now,
                info={"seed": seed},
            )
        deadline = None if time_limit is None else start + time_limit
        arrays = IsingArrays.from_bqm(bqm)
        circuit, simulator = self._build(arrays, reps)
        diagonal = _diagonal(arrays)
        setup_done = time.perf_counter()
        angles, expectation, evaluations, stop_reason = self._optimise(
            circuit, simulator, diagonal, reps, maxiter, deadline
        )
        probabilities = self._probabilities(circuit, simulator, angles)
        rng = np.random.default_rng(seed)
        states = rng.choice(len(probabilities), size=num_reads, p=probabilities)
        n = arrays.num_variables
        bits = (states[:, None] >> np.arange(n)[None, :]) & 1
        spins = (1 - 2 * bits).astype(np.int8)
        spin_set = sampleset_from(spins, arrays.labels, dimod.SPIN, np.zeros(num_reads))
        solve_done = time.perf_counter()
        return finish_sampleset(
            bqm,
            spin_set,
            solver=self.name,
            stop_reason=stop_reason,
            start=start,
            setup_done=setup_done,
            solve_done=solve_done,
            info={
                "seed": seed,
                "reps": reps,
                "expectation": expectation,
                "optimizer_evaluations": evaluations,
                "angles": {"beta": angles[:reps].tolist(), "gamma": angles[reps:].tolist()},
            },
        )

    @staticmethod
    def _build(arrays: IsingArrays, reps: int) -> tuple[Any, Any]:
        """The transpiled QAOA circuit (angles as parameters) and the Aer simulator."""
        try:
            from qiskit import transpile
            from qiskit.circuit.library import qaoa_ansatz
            from qiskit.quantum_info import SparsePauliOp
            from qiskit_aer import AerSimulator
        except ImportError as exc:
            raise BackendUnavailableError(
                f"qiskit and qiskit-aer are needed for qaoa ({exc}); {_INSTALL_HINT}"
            ) from exc
        n = arrays.num_variables
        # Scale so the largest coefficient is 1: the same ground state, angles of order 1.
        scale = max(
            float(np.max(np.abs(arrays.h), initial=0.0)),
            float(np.max(np.abs(arrays.data), initial=0.0)),
        )
        scale = scale if scale > 0 else 1.0
        terms: list[tuple[str, list[int], float]] = [
            ("Z", [i], float(arrays.h[i]) / scale) for i in range(n) if arrays.h[i] != 0
        ]
        for i in range(n):
            for k in range(int(arrays.indptr[i]), int(arrays.indptr[i + 1])):
                j = int(arrays.indices[k])
                if j > i and arrays.data[k] != 0:
                    terms.append(("ZZ", [i, j], float(arrays.data[k]) / scale))
        if not terms:  # all biases zero: an identity cost keeps the ansatz well-formed
            terms.append(("I", [0], 0.0))
        cost = SparsePauliOp.from_sparse_list(terms, num_qubits=n)
        circuit = qaoa_ansatz(cost, reps=reps)
        circuit.save_statevector()
        simulator = AerSimulator(method="statevector")
        return transpile(circuit, simulator), simulator

    @staticmethod
    def _statevector(circuit: Any, simulator: Any, angles: npt.NDArray[np.float64]) -> Any:
        binds: dict[Any, list[float]] = {}
        reps = len(angles) // 2
        for p in circuit.parameters:
            offset = 0 if p.vector.name == "β" else reps
            binds[p] = [float(angles[offset + p.index])]
        result = simulator.run(circuit, parameter_binds=[binds] if binds else None).result()
        return np.asarray(result.get_statevector())

    def _probabilities(
        self, circuit: Any, simulator: Any, angles: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        amplitudes = self._statevector(circuit, simulator, angles)
        probabilities = np.abs(amplitudes) ** 2
        return np.asarray(probabilities / probabilities.sum(), dtype=np.float64)

    def _optimise(
        self,
        circuit: Any,
        simulator: Any,
        diagonal: npt.NDArray[np.float64],
        reps: int,
        maxiter: int,
        deadline: float | None,
    ) -> tuple[npt.NDArray[np.float64], float, int, str]:
        """Minimise ``<H>`` over (beta, gamma) from a linear-ramp start; keep the best seen."""
        from scipy.optimize import minimize

        ramp = (np.arange(reps) + 0.5) / reps
        start = np.concatenate([0.75 * (1 - ramp), 0.75 * ramp])  # betas, then gammas
        best: dict[str, Any] = {"value": np.inf, "angles": start, "evaluations": 0}

        def objective(angles: npt.NDArray[np.float64]) -> float:
            if deadline is not None and best["evaluations"] > 0 and time.perf_counter() > deadline:
                raise _DeadlineReachedError
            value = float(self._probabilities(circuit, simulator, angles) @ diagonal)
            best["evaluations"] += 1
            if value < best["value"]:
                best["value"], best["angles"] = value, np.array(angles, dtype=np.float64)
            return value

        try:
            result = minimize(
                objective, start, method="COBYLA", options={"maxiter": maxiter, "rhobeg": 0.5}
            )
            stop_reason = "converged" if result.success else "maxiter"
        except _DeadlineReachedError:
            stop_reason = "time limit"
        return best["angles"], float(best["value"]), int(best["evaluations"]), stop_reason
