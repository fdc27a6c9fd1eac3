"""Raw models as decisions: a BQM (dimod JSON), a G-set graph or QUBO triplets, solved.

The baseline is measured on the same model: the best and mean energy of random assignments
(``dimod.RandomSampler``), so the answer says how far the solver moved from chance.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import dimod
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from nqba.decisions.registry import DecisionKind, Outcome, Progress
from nqba.engine.errors import InvalidModelError
from nqba.engine.io import bqm_from_serializable, parse_gset, parse_qubo
from nqba.engine.maxcut import Graph, cut_from_energy, maxcut_bqm

MODEL_VERSION = "engine/1"
BASELINE_READS = 64
MAX_RETURNED_SAMPLES = 100


class EngineSolveRequest(BaseModel):
    """Body of ``POST /api/v1/engine/solve``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    format: Literal["bqm-json", "gset", "qubo"] = Field(
        description="bqm-json: the object of dimod's bqm.to_serializable(); gset: max-cut "
        "text ('n m' then 'i j w', 1-based); qubo: QUBO triplet text."
    )
    model: dict[str, Any] | str = Field(
        description="The model: a JSON object for bqm-json, text for gset and qubo.",
        examples=["3 3\n1 2 1\n2 3 1\n1 3 1\n"],
    )
    solver: str = Field(default="auto", examples=["auto", "sa", "tabu", "pt"])
    time_limit: float | None = Field(default=None, gt=0, le=3600)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    num_reads: int | None = Field(default=None, ge=1, le=100_000)
    max_samples: int = Field(
        default=10, ge=1, le=MAX_RETURNED_SAMPLES, description="Samples returned, best first."
    )
    _parsed: tuple[dimod.BinaryQuadraticModel, Graph | None] | None = PrivateAttr(default=None)


class ReturnedSample(BaseModel):
    """One sample: variable -> value (SPIN: -1/+1, BINARY: 0/1)."""

    sample: dict[str, int]
    energy: float
    num_occurrences: int


class EngineSolveResult(BaseModel):
    """What the engine found, with the chosen solver and its timings."""

    solver: str
    vartype: Literal["SPIN", "BINARY"]
    num_variables: int
    num_interactions: int
    energy: float
    cut: float | None = Field(description="For gset: the cut value of the best sample.")
    samples: list[ReturnedSample]
    stop_reason: str | None
    auto_reason: str | None
    timing: dict[str, float]


def parse_model(request: EngineSolveRequest) -> tuple[dimod.BinaryQuadraticModel, Graph | None]:
    """The request's model as a BQM (and the graph, for G-set), parsed once per request: the
    size check that picks inline or job and the solve share it."""
    if request._parsed is None:
        request._parsed = _parse(request)
    return request._parsed


def _parse(request: EngineSolveRequest) -> tuple[dimod.BinaryQuadraticModel, Graph | None]:
    if request.format == "bqm-json":
        if not isinstance(request.model, dict):
            raise InvalidModelError("format bqm-json needs model to be a JSON object")
        return bqm_from_serializable(request.model, "model"), None
    if not isinstance(request.model, str):
        raise InvalidModelError(f"format {request.format} needs model to be text")
    if request.format == "gset":
        graph = parse_gset(request.model, "model")
        return maxcut_bqm(graph), graph
    return parse_qubo(request.model, "model"), None


def solve_model(request: EngineSolveRequest, progress: Progress) -> Outcome:
    """Solve the model with the requested solver; measure the random baseline."""
    from nqba.engine import solve

    start = time.perf_counter()
    bqm, graph = parse_model(request)
    if bqm.num_variables == 0:
        raise InvalidModelError("the model has no variables")
    progress(0.05, f"model read: {bqm.num_variables} variables")
    params: dict[str, Any] = {}
    if request.num_reads is not None:
        params["num_reads"] = request.num_reads
    sampleset = solve(
        bqm, solver=request.solver, time_limit=request.time_limit, seed=request.seed, **params
    )
    progress(0.9, "solved")
    info = sampleset.info
    best = sampleset.first
    samples = [
        ReturnedSample(
            sample={str(v): int(x) for v, x in row.sample.items()},
            energy=float(row.energy),
            num_occurrences=int(row.num_occurrences),
        )
        for row in sampleset.data(  # type: ignore[no-untyped-call]
            ["sample", "energy", "num_occurrences"], sorted_by="energy"
        )
    ][: request.max_samples]
    cut = None
    if graph is not None:
        cut = cut_from_energy(float(np.sum(graph.weights)), float(best.energy))
    baseline = _random_baseline(bqm, request.seed)
    timing = {k: float(v) for k, v in dict(info.get("timing", {})).items()}
    result = EngineSolveResult(
        solver=str(info.get("solver")),
        vartype="SPIN" if bqm.vartype is dimod.SPIN else "BINARY",
        num_variables=bqm.num_variables,
        num_interactions=bqm.num_interactions,
        energy=float(best.energy),
        cut=cut,
        samples=samples,
        stop_reason=info.get("stop_reason"),
        auto_reason=info.get("auto_reason"),
        timing=timing,
    )
    timings = {"solve_s": timing.get("solve_s", 0.0), "total_s": time.perf_counter() - start}
    return Outcome(
        outputs=result.model_dump(mode="json"),
        solver=result.solver,
        objective=cut if cut is not None else result.energy,
        baseline=baseline,
        timings=timings,
    )


def _random_baseline(bqm: dimod.BinaryQuadraticModel, seed: int | None) -> dict[str, Any]:
    """Energies of uniformly random assignments of the same model."""
    rng = np.random.default_rng(seed)
    values = np.array([-1, 1] if bqm.vartype is dimod.SPIN else [0, 1], dtype=np.int8)
    samples = rng.choice(values, size=(BASELINE_READS, bqm.num_variables))
    energies = bqm.energies((samples, list(bqm.variables)))
    return {
        "name": "random_assignments",
        "reads": BASELINE_READS,
        "best_energy": float(np.min(energies)),
        "mean_energy": float(np.mean(energies)),
    }


def _num_variables(request: EngineSolveRequest) -> int:
    try:
        return parse_model(request)[0].num_variables
    except Exception:
        return 0  # the run reports the error


DECISION_KINDS = [
    DecisionKind(
        unit="engine",
        kind="solve",
        request_model=EngineSolveRequest,
        response_model=EngineSolveResult,
        run=solve_model,
        solver_modules=("nqba.engine",),
        size=_num_variables,
        requested_seconds=lambda request: request.time_limit,
        model_version=MODEL_VERSION,
        summary="Solve a raw BQM, G-set graph or QUBO with the engine.",
    )
]
