"""Engine commands of the CLI: ``solve`` a model file, list ``solvers``, locate the ``example``.

Errors the user can fix end the command with one line ``error: ...`` on stderr: exit code 2
for a usage problem (unknown solver, bad parameter, missing file), 1 for a model or backend
problem. Results go to stdout, as Rich text or, with ``--json``, as one JSON object.
"""

from __future__ import annotations

import enum
import json
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import dimod
import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress_bar import ProgressBar
from rich.table import Table

from nqba.cli.common import FAILURE_EXIT, USAGE_EXIT, CliError, fail, guarded
from nqba.engine.errors import EngineError
from nqba.engine.io import LoadedModel, read_model
from nqba.engine.maxcut import cut_value
from nqba.engine.registry import SolverEntry, solver_entries

EXAMPLE_NAME = "maxcut-100.gset"


class Format(enum.StrEnum):
    """Model file formats the CLI reads (see nqba.engine.io)."""

    gset = "gset"
    bqm_json = "bqm-json"
    qubo = "qubo"


def example_path() -> Path:
    """Path of the bundled max-cut example (a G-set file of 100 nodes)."""
    return Path(str(resources.files("nqba") / "examples" / EXAMPLE_NAME))


def example_command() -> None:
    """Print the path of the bundled max-cut example, to read or to pass to `nqba solve`.

    `nqba solve --example` solves it directly; `nqba solve "$(nqba example)"` is the same.
    """
    path = example_path()
    if not path.is_file():
        fail(f"the bundled example is missing at {path}; reinstall nqba", FAILURE_EXIT)
    typer.echo(str(path))


def solve_command(
    file: Annotated[
        Path | None,
        typer.Argument(help="Model file: G-set max-cut graph, dimod BQM JSON, or QUBO triplets."),
    ] = None,
    example: Annotated[
        bool, typer.Option("--example", help="Solve the bundled 100-node max-cut example.")
    ] = False,
    format: Annotated[
        Format | None,
        typer.Option(
            "--format", "-f", help="File format; detected from extension/content if unset."
        ),
    ] = None,
    solver: Annotated[
        str,
        typer.Option(
            "--solver",
            "-s",
            help="Solver name (see `nqba solvers`); auto picks one by model size and density.",
        ),
    ] = "auto",
    time_limit: Annotated[
        float | None, typer.Option("--time-limit", "-t", help="Time budget in seconds.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed; same seed, same answer.")
    ] = None,
    reads: Annotated[
        int | None,
        typer.Option("--reads", "-r", help="Independent reads (solver default if unset)."),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object (for scripts); no progress display."),
    ] = False,
) -> None:
    """Solve a model file and print the objective, energy, solver, stop reason and timings.

    For a max-cut (G-set) file the objective is the cut weight, computed from the partition;
    otherwise it is the model energy (lower is better). Try `nqba solve --example`.
    """

    def run() -> None:
        path = _input_path(file, example)
        started = time.perf_counter()
        loaded = read_model(path, None if format is None else format.value)
        read_s = time.perf_counter() - started
        progress = not as_json and _stderr.is_terminal
        with _progress_display(progress, time_limit, solver):
            sampleset = _solve(loaded.bqm, solver, time_limit, seed, reads)
        report = build_report(loaded, sampleset, read_s)
        if as_json:
            sys.stdout.write(json.dumps(report, default=_json_default) + "\n")
        else:
            _print_report(report)

    guarded(run)


def _input_path(file: Path | None, example: bool) -> Path:
    if example and file is not None:
        raise CliError("give a FILE or --example, not both", USAGE_EXIT)
    if example:
        return example_path()
    if file is None:
        raise CliError(
            "missing FILE (or use --example for the bundled max-cut example)", USAGE_EXIT
        )
    if not file.exists():
        raise CliError(f"no such file: {file}", USAGE_EXIT)
    if file.is_dir():
        raise CliError(f"{file} is a directory, not a model file", USAGE_EXIT)
    return file


def _solve(
    bqm: dimod.BinaryQuadraticModel,
    solver: str,
    time_limit: float | None,
    seed: int | None,
    reads: int | None,
) -> dimod.SampleSet:
    if reads is not None and reads < 1:
        raise CliError(f"--reads must be at least 1; got {reads}", USAGE_EXIT)
    params: dict[str, Any] = {} if reads is None else {"num_reads": reads}
    from nqba.engine.solve import solve  # imported on use: it loads the samplers

    return solve(bqm, solver=solver, time_limit=time_limit, seed=seed, **params)


def build_report(loaded: LoadedModel, sampleset: dimod.SampleSet, read_s: float) -> dict[str, Any]:
    """The facts of one solve as plain JSON types: objective, energy, solver, timings, sample."""
    best = sampleset.first
    info = sampleset.info
    timing = {"read_s": read_s, **{k: float(v) for k, v in info.get("timing", {}).items()}}
    report: dict[str, Any] = {
        "file": str(loaded.path),
        "format": loaded.format,
        "num_variables": loaded.bqm.num_variables,
        "num_interactions": loaded.bqm.num_interactions,
    }
    if loaded.graph is not None:
        report |= {
            "problem": "max-cut",
            "objective_name": "cut",
            "sense": "max",
            "objective": cut_value(loaded.graph, best.sample),
            "total_weight": loaded.graph.total_weight,
        }
    else:
        report |= {
            "problem": "bqm",
            "objective_name": "energy",
            "sense": "min",
            "objective": float(best.energy),
        }
    report |= {
        "energy": float(best.energy),
        "vartype": sampleset.vartype.name,
        "solver": info.get("solver"),
        "stop_reason": info.get("stop_reason"),
        "seed": info.get("seed"),
        "num_reads": len(sampleset),
        "timings": timing,
    }
    if "auto_reason" in info:
        report["auto_reason"] = info["auto_reason"]
    report["sample"] = {str(v): int(x) for v, x in best.sample.items()}
    return report


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


_stdout = Console(highlight=False)
_stderr = Console(stderr=True, highlight=False)


def _print_report(report: dict[str, Any]) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    n, m = report["num_variables"], report["num_interactions"]
    if report["problem"] == "max-cut":
        shape = f"max-cut, {n} nodes, {m} edges"
    else:
        shape = f"{report['vartype']}, {n} variables, {m} interactions"
    table.add_row("model", escape(f"{report['file']} ({report['format']}: {shape})"))
    solver = escape(str(report["solver"]))
    if "auto_reason" in report:
        reason = escape(f"(auto: {report['auto_reason']})")
        solver += f"  [dim]{reason}[/dim]"
    table.add_row("solver", solver)
    if report["problem"] == "max-cut":
        table.add_row(
            "cut",
            f"[bold green]{_num(report['objective'])}[/]  of total weight "
            f"{_num(report['total_weight'])}",
        )
    table.add_row("energy", _num(report["energy"]))
    table.add_row("stop", escape(str(report["stop_reason"])))
    table.add_row("reads", f"{report['num_reads']} (best shown), seed {report['seed']}")
    table.add_row(
        "timing",
        "  ".join(f"{k.removesuffix('_s')} {v:.3f} s" for k, v in report["timings"].items()),
    )
    _stdout.print(table)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else f"{x:.6g}"


class _BudgetBar(ProgressColumn):
    """A bar that fills as the elapsed time approaches the time budget."""

    def __init__(self, budget: float) -> None:
        super().__init__()
        self.budget = budget

    def render(self, task: Task) -> ProgressBar:
        done = min(task.elapsed or 0.0, self.budget)
        return ProgressBar(total=self.budget, completed=done, width=30)


@contextmanager
def _progress_display(show: bool, time_limit: float | None, solver: str) -> Iterator[None]:
    """A transient spinner (and a bar over the time budget) on stderr while the solve runs."""
    if not show:
        yield
        return
    columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn(f"solving with {solver}")]
    if time_limit is not None and math.isfinite(time_limit) and time_limit > 0:
        columns.append(_BudgetBar(time_limit))
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=_stderr, transient=True) as progress:
        progress.add_task("solve", total=None)
        yield


def solvers_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the registered solvers: built-in or adapter, and whether they can run here."""

    def run() -> None:
        rows = [_solver_row(e) for e in solver_entries()]
        if as_json:
            sys.stdout.write(json.dumps(rows) + "\n")
            return
        table = Table("name", "kind", "available here", "description", box=None)
        for r in rows:
            avail = "[green]yes[/]" if r["available"] else f"[yellow]no[/]: {escape(r['reason'])}"
            table.add_row(escape(r["name"]), r["kind"], avail, escape(r["description"]))
        _stdout.print(table)

    guarded(run)


def _solver_row(entry: SolverEntry) -> dict[str, Any]:
    """One solver's facts; it is available if it samples an empty model without error.

    Adapters check their package and credentials before looking at the model, so the probe
    finds a missing package or key without contacting any service.
    """
    available, reason = True, None
    try:
        entry.create().sample(dimod.BinaryQuadraticModel(dimod.BINARY))
    except (EngineError, ImportError) as e:
        available, reason = False, " ".join(str(e).split())
    return {
        "name": entry.name,
        "kind": "built-in" if entry.builtin else "adapter",
        "available": available,
        "reason": reason,
        "description": entry.description,
    }
