"""G-set max-cut: our samplers against dwave-samplers SA and tabu, side by side in one run.

For each instance and solver, every setting of a small grid (num_sweeps for the annealers,
max_iter / timeout for tabu) runs ``--reads`` reads on one thread, then more batches (new
seeds) until ``--min-successes`` reads reach 100 % of best-known, ``--max-reads`` reads were
run or ``--max-setting-s`` seconds were spent on the setting (the first batch is at most 16
reads; at least ``--reads`` are run unless the seconds run out); the setting with the shortest
TTS99 at 100 % of best-known is kept and reported, with its number of successes and a 95 %
(Wilson) interval for TTS99. Cuts are computed from the
returned partitions, not from energies. TTS99 = t_read * ln(0.01) / ln(1 - p) (t_read if
p = 1, inf if p = 0), with t_read the CPU time of the calling thread per read (every solver
here runs in it; on a shared machine wall time is noisy, so both are printed). The ratio
column is TTS99(solver) / TTS99(dwave SA at its best setting).

Two generated instances follow (skip them with ``--no-generated``): a G22-like random graph
(n = 2000, 19990 edges, weight +1) and a 100 x 100 toroidal grid with +-1 weights (G62-G81
family shape).
They have no literature value, so "best-known" is the best cut found by any solver in this
run, including a long reference run; each solver then gets 10 s on one core.

Run: ``.venv/bin/python benchmarks/engine_gset.py [--quick] [--reads N] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dimod
import numpy as np
from rich.console import Console
from rich.table import Table

from nqba.config import get_settings
from nqba.engine.io import read_gset
from nqba.engine.maxcut import Graph, cut_values, maxcut_bqm
from nqba.engine.registry import get_solver

BEST_KNOWN = {"G1": 11624, "G2": 11620, "G3": 11622, "G11": 564, "G14": 3064, "G15": 3050}
LEVELS = (0.995, 0.999, 1.0)
# reads of a setting's first batch; later batches are sized from its measured time per read
_FIRST_BATCH = 16

Factory = Callable[[], Any]


@dataclass
class Solver:
    """A sampler under test and the grid of settings it is tuned over."""

    name: str
    factory: Factory
    grid: list[dict[str, Any]]
    fixed: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    """The measured result of one solver at one setting on one instance."""

    instance: str
    solver: str
    setting: dict[str, Any]
    reads: int
    t_read_s: float
    wall_read_s: float
    best_cut: float
    p: dict[str, float]
    tts99_s: float
    ratio_vs_dwave_sa: float = math.nan
    # the same solver's best setting for the 99.9 % target (it may differ from this row's)
    setting_999: dict[str, Any] = field(default_factory=dict)
    tts99_999_s: float = math.nan
    ratio_999_vs_dwave_sa: float = math.nan
    successes: dict[str, int] = field(default_factory=dict)
    tts99_ci_s: tuple[float, float] = (math.nan, math.nan)
    successes_999: int = 0
    reads_999: int = 0
    # when dwave-samplers SA never reached 100 % at any setting: this row's TTS99 over the
    # lowest end of the baseline's 95 % intervals (the baseline's best TTS99 is at least that
    # end, setting by setting), so the ratio is below this figure
    ratio_bound_vs_dwave_sa: float = math.nan


def tts99(t_read: float, p: float) -> float:
    """Time to reach the target with 99 % probability from per-read time and success rate."""
    if p <= 1e-12:
        return math.inf
    if p >= 1.0:
        return t_read
    return t_read * math.log(0.01) / math.log1p(-p)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval for a success probability from k successes in n reads."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def tts99_interval(t_read: float, k: int, n: int) -> tuple[float, float]:
    """TTS99 at the ends of the Wilson interval of p (low TTS, high TTS)."""
    lo, hi = wilson(k, n)
    return tts99(t_read, hi), tts99(t_read, lo)


def solvers(
    quick: bool,
    sweeps: list[int] | None = None,
    pt_grid: list[tuple[int, int]] | None = None,
) -> list[Solver]:
    """Our samplers and the dwave-samplers baselines, each with its grid of settings.

    ``sweeps`` replaces the num_sweeps grid of both annealers (ours and dwave-samplers SA);
    ``pt_grid`` the (num_sweeps, num_replicas) grid of ``pt``.
    """
    if sweeps is None:
        sweeps = [250, 1000, 4000] if quick else [250, 500, 1000, 2000, 5000, 10000, 20000]
    if pt_grid is None:
        full_pt_grid = [(100, 8), (250, 8), (1000, 8), (3000, 12), (4000, 12), (16000, 12)]
        full_pt_grid += [(500, 24), (1000, 24), (2000, 24), (8000, 24)]
        pt_grid = [(100, 8), (1000, 24)] if quick else full_pt_grid
    from dwave.samplers import SimulatedAnnealingSampler as DwaveSA
    from dwave.samplers import TabuSampler as DwaveTabu

    out = [
        Solver("sa", lambda: get_solver("sa"), [{"num_sweeps": s} for s in sweeps]),
        Solver(
            "pt",
            lambda: get_solver("pt"),
            [{"num_sweeps": s, "num_replicas": r} for s, r in pt_grid],
        ),
    ]
    tabu_file = Path(__file__).resolve().parents[1] / "src/nqba/engine/samplers/tabu.py"
    if tabu_file.is_file():
        iters = [40_000, 160_000] if quick else [20_000, 40_000, 160_000, 640_000]
        out.append(Solver("tabu", lambda: get_solver("tabu"), [{"max_iter": k} for k in iters]))
    out.append(Solver("dwave-sa", DwaveSA, [{"num_sweeps": s} for s in sweeps]))
    timeouts = [20, 100] if quick else [10, 20, 50, 100, 200]
    out.append(Solver("dwave-tabu", DwaveTabu, [{"timeout": t} for t in timeouts]))
    return out


def run_setting(
    solver: Solver, bqm: dimod.BinaryQuadraticModel, graph: Graph, reads: int, seed: int
) -> tuple[float, float, np.ndarray[Any, Any]]:
    """CPU and wall seconds spent and the cut of every read, for one solver at one setting.

    The CPU time is that of the calling thread, where every solver here runs (one thread);
    it is the figure used for TTS because the machine is shared and wall time is noisy.
    """
    sampler = solver.factory()
    start, cpu = time.perf_counter(), time.thread_time()
    ss = sampler.sample(bqm, num_reads=reads, seed=seed, **solver.fixed, **solver.grid[0])
    elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
    return cpu, elapsed, cut_values(graph, ss)


@dataclass
class Budget:
    """How far a setting's reads are extended: successes wanted, reads and seconds allowed."""

    reads: int
    min_successes: int
    max_reads: int
    max_seconds: float


def measure(
    name: str, graph: Graph, best: float, solver: Solver, budget: Budget, seed: int
) -> list[Row]:
    """One row per setting of ``solver`` on the instance, with adaptively many reads."""
    bqm = maxcut_bqm(graph)
    target = math.ceil(best - 1e-9)
    rows = []
    for setting in solver.grid:
        one = Solver(solver.name, solver.factory, [setting], solver.fixed)
        cpu = wall = 0.0
        parts: list[np.ndarray[Any, Any]] = []
        total = 0
        batch = min(budget.reads, _FIRST_BATCH)
        while True:
            c, w, cuts = run_setting(one, bqm, graph, batch, seed + 1000 * len(parts))
            cpu, wall, total = cpu + c, wall + w, total + batch
            parts.append(cuts)
            hits = sum(int(np.sum(x >= target)) for x in parts)
            left_reads = budget.max_reads - total
            left_s = budget.max_seconds - wall
            enough = total >= budget.reads and hits >= budget.min_successes
            if enough or left_reads <= 0 or left_s <= 0:
                break
            # the reads still owed, or enough for the missing successes at the rate seen so
            # far (x2 at p = 0), within the reads and seconds left
            want = budget.reads - total
            if hits < budget.min_successes:
                more = (budget.min_successes - hits) * total / hits if hits else 2 * total
                want = max(want, math.ceil(more))
            afford = int(left_s / max(wall / total, 1e-9))
            batch = min(want, left_reads, afford)
            if batch < 1:
                break
        allcuts = np.concatenate(parts)
        k = {f"{lv:.1%}": int(np.sum(allcuts >= math.ceil(lv * best - 1e-9))) for lv in LEVELS}
        p = {key: v / total for key, v in k.items()}
        t_read = cpu / total
        rows.append(
            Row(
                name,
                solver.name,
                setting,
                total,
                t_read,
                wall / total,
                float(allcuts.max()),
                p,
                tts99(t_read, p["100.0%"]),
                successes=k,
                tts99_ci_s=tts99_interval(t_read, k["100.0%"], total),
            )
        )
    return rows


def best_row(rows: list[Row]) -> Row:
    """The setting with the shortest TTS99 at 100 %; ties (inf) go to 99.9 %, then 99.5 %."""

    def key(r: Row) -> tuple[float, float, float]:
        return (r.tts99_s, tts99(r.t_read_s, r.p["99.9%"]), tts99(r.t_read_s, r.p["99.5%"]))

    return min(rows, key=key)


def warm_up(solver_list: list[Solver], graph: Graph) -> None:
    """Compile and load every sampler once so no measurement pays for it."""
    bqm = maxcut_bqm(graph)
    for s in solver_list:
        s.factory().sample(bqm, num_reads=1, seed=0, **s.grid[0])


def g22_like(seed: int = 22) -> Graph:
    """A random graph shaped like G22: n = 2000, 19990 distinct edges, weight +1."""
    rng = np.random.default_rng(seed)
    n, m = 2000, 19990
    seen: set[tuple[int, int]] = set()
    while len(seen) < m:
        i, j = (int(x) for x in rng.integers(0, n, size=2))
        if i != j:
            seen.add((min(i, j), max(i, j)))
    edges = np.array(sorted(seen), dtype=np.int64)
    return Graph(n, edges, np.ones(m))


def torus(side: int = 100, seed: int = 62) -> Graph:
    """A side x side toroidal grid with +-1 weights (G62-G81 family shape)."""
    rng = np.random.default_rng(seed)
    idx = np.arange(side * side).reshape(side, side)
    right = np.column_stack([idx.ravel(), np.roll(idx, -1, axis=1).ravel()])
    down = np.column_stack([idx.ravel(), np.roll(idx, -1, axis=0).ravel()])
    edges = np.vstack([right, down]).astype(np.int64)
    weights = rng.choice([-1.0, 1.0], size=len(edges))
    return Graph(side * side, edges, weights)


def generated_runs(quick: bool, console: Console) -> list[dict[str, Any]]:
    """Best cut within a time budget on one core, against a longer reference run."""
    budget = 2.0 if quick else 10.0
    out = []
    for name, graph, sweeps in (("G22-like", g22_like(), 20000), ("torus-100x100", torus(), 20000)):
        bqm = maxcut_bqm(graph)
        found: dict[str, float] = {}
        times: dict[str, float] = {}
        runs: list[tuple[str, dict[str, Any]]] = [
            ("sa", {"num_sweeps": sweeps // (4 if quick else 1), "num_reads": 1000}),
            ("pt", {"num_sweeps": 1_000_000, "num_reads": 1}),
            ("tabu", {"num_reads": 1000}),
        ]
        for solver, params in runs:
            start = time.perf_counter()
            ss = get_solver(solver).sample(bqm, seed=1, time_limit=budget, **params)
            times[solver] = time.perf_counter() - start
            found[solver] = float(cut_values(graph, ss).max())
        start = time.perf_counter()
        reference = get_solver("sa").sample(
            bqm,
            seed=2,
            num_reads=4 if not quick else 1,
            num_sweeps=sweeps * (5 if not quick else 1),
        )
        ref_s = time.perf_counter() - start
        ref_cut = float(cut_values(graph, reference).max())
        best = max([ref_cut, *found.values()])
        for solver in found:
            gap = (best - found[solver]) / best
            out.append(
                {
                    "instance": name,
                    "solver": solver,
                    "budget_s": budget,
                    "wall_s": times[solver],
                    "cut": found[solver],
                    "best_in_run": best,
                    "gap": gap,
                    "reference_sa_cut": ref_cut,
                    "reference_s": ref_s,
                }
            )
        console.print(f"{name}: reference run (sa, {ref_s:.1f} s) cut {ref_cut:.0f}")
    return out


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else ("inf" if x > 0 else "n/a")


def _ratio(r: Row) -> str:
    """The ratio to dwave-samplers SA, or "<bound" when SA never reached the best-known cut."""
    if math.isfinite(r.ratio_bound_vs_dwave_sa):
        return f"<{r.ratio_bound_vs_dwave_sa:.3f}"
    return _fmt(r.ratio_vs_dwave_sa)


def markdown(kept: list[Row], generated: list[dict[str, Any]]) -> str:
    """The two result tables as Markdown, for benchmarks/RESULTS.md."""
    lines = [
        "| instance | solver | setting (100 %) | reads | cpu ms/read | best cut "
        "| p 99.9 % | p 100 % (hits) | TTS99 100 % (s) | 95 % interval | vs dwave-sa "
        "| setting (99.9 %) | p 99.9 % (hits/reads) | TTS99 99.9 % (s) | vs dwave-sa |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|",
    ]
    for r in kept:
        lo, hi = r.tts99_ci_s
        lines.append(
            f"| {r.instance} | {r.solver} | "
            + " ".join(f"{k}={v}" for k, v in r.setting.items())
            + f" | {r.reads} | {r.t_read_s * 1e3:.2f} | {r.best_cut:.0f} | "
            + f"{r.p['99.9%']:.3f} | {r.p['100.0%']:.3f} ({r.successes['100.0%']}) | "
            + f"{_fmt(r.tts99_s)} | {_fmt(lo)}-{_fmt(hi)} | {_ratio(r)} | "
            + " ".join(f"{k}={v}" for k, v in r.setting_999.items())
            + f" | {r.successes_999 / max(r.reads_999, 1):.3f} ({r.successes_999}/{r.reads_999})"
            + f" | {_fmt(r.tts99_999_s)} | {_fmt(r.ratio_999_vs_dwave_sa)} |"
        )
    if generated:
        lines += [
            "",
            "| instance | solver | budget s | wall s | cut | best in run | gap % |",
            "|---|---|--:|--:|--:|--:|--:|",
        ]
        for g in generated:
            lines.append(
                f"| {g['instance']} | {g['solver']} | {g['budget_s']:.0f} | {g['wall_s']:.1f} "
                f"| {g['cut']:.0f} | {g['best_in_run']:.0f} | {100 * g['gap']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--instances", default=",".join(BEST_KNOWN), help="comma-separated names")
    parser.add_argument("--reads", type=int, default=32, help="first batch of reads per setting")
    parser.add_argument(
        "--min-successes",
        type=int,
        default=10,
        help="extend a setting's reads until this many reach 100 %% of best-known",
    )
    parser.add_argument("--max-reads", type=int, default=2000, help="reads per setting at most")
    parser.add_argument(
        "--max-setting-s", type=float, default=6.0, help="wall seconds per setting at most"
    )
    parser.add_argument("--quick", action="store_true", help="short grids and budgets (smoke run)")
    parser.add_argument("--no-generated", action="store_true", help="skip the generated instances")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--solvers", help="comma-separated solver names to run (default: all; ratios need dwave-sa)"
    )
    parser.add_argument(
        "--sweeps", help="num_sweeps grid of sa and dwave-samplers SA, e.g. 5000,10000,20000"
    )
    parser.add_argument(
        "--pt-grid", help="pt settings as SWEEPSxREPLICAS, comma-separated, e.g. 16000x12"
    )
    parser.add_argument("--json", type=Path, help="write all rows to this JSON file")
    parser.add_argument("--markdown", type=Path, help="write the tables as Markdown here")
    args = parser.parse_args(argv)

    console = Console(width=200)
    data = get_settings().data_dir / "gset"
    names = [x.strip() for x in args.instances.split(",") if x.strip()]
    reads = 8 if args.quick and args.reads == 32 else args.reads
    budget = Budget(reads, args.min_successes, max(args.max_reads, reads), args.max_setting_s)
    try:
        sweeps = [int(x) for x in args.sweeps.split(",")] if args.sweeps else None
        pt_grid = (
            [(int(a), int(b)) for a, _, b in (x.partition("x") for x in args.pt_grid.split(","))]
            if args.pt_grid
            else None
        )
    except ValueError:
        parser.error("--sweeps takes integers, --pt-grid SWEEPSxREPLICAS pairs")
    solver_list = solvers(args.quick, sweeps, pt_grid)
    if args.solvers:
        wanted = {x.strip() for x in args.solvers.split(",")}
        unknown = wanted - {s.name for s in solver_list}
        if unknown:
            parser.error(f"unknown solver(s): {', '.join(sorted(unknown))}")
        solver_list = [s for s in solver_list if s.name in wanted]
    console.print(
        f"machine: {platform.processor() or platform.machine()}, python {sys.version.split()[0]}, "
        f"one thread per solver, {reads} reads per setting, extended to "
        f"{budget.min_successes} successes (at most {budget.max_reads} reads, "
        f"{budget.max_seconds:g} s)"
    )
    warm_up(solver_list, read_gset(data / f"{names[0]}.txt"))

    all_rows: list[Row] = []
    kept: list[Row] = []
    for name in names:
        graph = read_gset(data / f"{name}.txt")
        best = BEST_KNOWN[name]
        picked: dict[str, Row] = {}
        rows_of: dict[str, list[Row]] = {}
        for solver in solver_list:
            rows = measure(name, graph, best, solver, budget, args.seed)
            rows_of[solver.name] = rows
            all_rows += rows
            row = best_row(rows)
            r999 = min(rows, key=lambda r: tts99(r.t_read_s, r.p["99.9%"]))
            row.setting_999 = r999.setting
            row.tts99_999_s = tts99(r999.t_read_s, r999.p["99.9%"])
            row.successes_999 = r999.successes["99.9%"]
            row.reads_999 = r999.reads
            picked[solver.name] = row
        baseline = picked.get("dwave-sa")
        base_rows = [r for r in rows_of.get("dwave-sa", []) if r.successes["100.0%"] == 0]
        never = baseline is not None and len(base_rows) == len(rows_of["dwave-sa"])
        base_low = min((r.tts99_ci_s[0] for r in base_rows), default=math.nan)
        base = baseline.tts99_s if baseline else math.inf
        base_999 = baseline.tts99_999_s if baseline else math.inf
        for row in picked.values():
            row.ratio_vs_dwave_sa = row.tts99_s / base if math.isfinite(base) else math.nan
            row.ratio_999_vs_dwave_sa = (
                row.tts99_999_s / base_999 if math.isfinite(base_999) else math.nan
            )
            if never and math.isfinite(row.tts99_s):
                row.ratio_bound_vs_dwave_sa = row.tts99_s / base_low
            kept.append(row)
        console.print(f"{name} done", style="dim")

    table = Table(title="G-set max-cut: best setting per solver (TTS99 at 100 % of best-known)")
    for col in (
        "instance",
        "solver",
        "setting",
        "reads",
        "cpu/read ms",
        "wall/read ms",
        "best cut",
        "p 99.5%",
        "p 99.9%",
        "p 100% (hits)",
        "TTS99 s",
        "95% interval",
        "vs dwave-sa",
        "setting @99.9%",
        "TTS99 @99.9% s",
        "vs dwave-sa @99.9%",
    ):
        table.add_column(
            col, justify="left" if col in ("instance", "solver", "setting") else "right"
        )
    for r in kept:
        table.add_row(
            r.instance,
            r.solver,
            " ".join(f"{k}={v}" for k, v in r.setting.items()),
            str(r.reads),
            f"{r.t_read_s * 1e3:.2f}",
            f"{r.wall_read_s * 1e3:.2f}",
            f"{r.best_cut:.0f}",
            *(f"{r.p[k]:.3f}" for k in ("99.5%", "99.9%")),
            f"{r.p['100.0%']:.3f} ({r.successes['100.0%']})",
            _fmt(r.tts99_s),
            f"{_fmt(r.tts99_ci_s[0])}-{_fmt(r.tts99_ci_s[1])}",
            _ratio(r),
            " ".join(f"{k}={v}" for k, v in r.setting_999.items()),
            f"{r.tts99_999_s:.3f}" if math.isfinite(r.tts99_999_s) else "inf",
            f"{r.ratio_999_vs_dwave_sa:.3f}" if math.isfinite(r.ratio_999_vs_dwave_sa) else "n/a",
        )
    console.print(table)

    generated: list[dict[str, Any]] = []
    if not args.no_generated:
        generated = generated_runs(args.quick, console)
        gt = Table(
            title="Generated instances: best cut within the budget, one core "
            "(best-known = best cut of any solver in this run, incl. a long sa reference)"
        )
        for col in ("instance", "solver", "budget s", "wall s", "cut", "best in run", "gap %"):
            gt.add_column(col)
        for g in generated:
            gt.add_row(
                g["instance"],
                g["solver"],
                f"{g['budget_s']:.0f}",
                f"{g['wall_s']:.1f}",
                f"{g['cut']:.0f}",
                f"{g['best_in_run']:.0f}",
                f"{100 * g['gap']:.3f}",
            )
        console.print(gt)

    if args.markdown:
        args.markdown.write_text(markdown(kept, generated))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": [asdict(r) for r in all_rows],
                    "kept": [asdict(r) for r in kept],
                    "generated": generated,
                    "reads": reads,
                    "quick": args.quick,
                },
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
