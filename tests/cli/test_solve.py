"""The `nqba` command: solve files and the bundled example, list solvers, fail in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dimod
import pytest
from typer.testing import CliRunner

from nqba import __version__
from nqba.cli import app
from nqba.cli.engine import example_path
from nqba.engine.io import read_gset, write_bqm_json, write_qubo
from nqba.engine.maxcut import cut_from_energy, cut_value

runner = CliRunner()

SMALL_GSET = "6 7\n1 2 1\n2 3 1\n3 1 1\n3 4 -1\n4 5 2\n5 6 1\n6 4 1\n"


def _json_run(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _fails(args: list[str], code: int, words: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert words in lines[0]


@pytest.fixture
def small_gset(tmp_path: Path) -> Path:
    path = tmp_path / "small.gset"
    path.write_text(SMALL_GSET)
    return path


def test_solve_json_reports_the_cut_energy_solver_and_timings(small_gset: Path) -> None:
    report = _json_run("solve", str(small_gset), "--solver", "exact", "--seed", "1")
    graph = read_gset(small_gset)
    sample = {int(k): v for k, v in report["sample"].items()}
    assert report["problem"] == "max-cut"
    assert report["objective_name"] == "cut"
    assert report["solver"] == "exact"
    assert report["objective"] == cut_value(graph, sample)
    assert report["objective"] == cut_from_energy(graph.total_weight, report["energy"])
    # Brute force over the 2^6 partitions: the exact solver's cut is the maximum.
    best = max(cut_value(graph, [1 if (k >> i) & 1 else -1 for i in range(6)]) for k in range(2**6))
    assert report["objective"] == best
    assert report["total_weight"] == 6.0
    assert set(report["timings"]) >= {"read_s", "setup_s", "solve_s", "total_s"}
    assert all(t >= 0 for t in report["timings"].values())
    assert report["stop_reason"]


def test_solve_with_auto_explains_its_choice(small_gset: Path) -> None:
    report = _json_run("solve", str(small_gset), "--seed", "3")
    assert report["solver"]
    assert report["auto_reason"]


def test_solve_with_a_seed_repeats_its_answer(small_gset: Path) -> None:
    args = ("solve", str(small_gset), "--solver", "sa", "--seed", "5", "--reads", "3")
    first, second = _json_run(*args), _json_run(*args)
    assert first["sample"] == second["sample"]
    assert first["num_reads"] == 3


def test_solve_qubo_and_bqm_json_files_report_the_energy_as_objective(tmp_path: Path) -> None:
    bqm = dimod.BinaryQuadraticModel(
        {0: -1.0, 1: -1.0, 2: 0.5}, {(0, 1): 2.0, (1, 2): -1.0}, 0.0, dimod.BINARY
    )
    ground = min(
        bqm.energies(([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], [0, 1, 2]))
    )
    write_qubo(bqm, tmp_path / "m.qubo")
    write_bqm_json(bqm, tmp_path / "m.json")
    for name in ("m.qubo", "m.json"):
        report = _json_run("solve", str(tmp_path / name), "--solver", "exact")
        assert report["objective_name"] == "energy"
        assert report["objective"] == report["energy"] == ground
        assert report["vartype"] == "BINARY"


def test_solve_format_option_overrides_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "model.gset"
    path.write_text("0 0 -1\n0 1 2\n1 1 -1\n")
    _fails(["solve", str(path)], 1, f"{path}:1:")
    report = _json_run("solve", str(path), "--format", "qubo", "--solver", "exact")
    assert report["format"] == "qubo"
    assert report["energy"] == -1.0


def test_solve_example_finds_a_cut_of_the_bundled_graph() -> None:
    report = _json_run("solve", "--example", "--solver", "sa", "--time-limit", "0.5", "--seed", "2")
    graph = read_gset(example_path())
    assert report["file"] == str(example_path())
    assert report["num_variables"] == graph.num_nodes == 100
    assert 0 < report["objective"] <= graph.total_weight
    assert report["objective"] == cut_from_energy(graph.total_weight, report["energy"])


@pytest.mark.realdata
def test_solve_reads_g1_by_content_and_reports_a_consistent_cut(data_dir: Path) -> None:
    path = data_dir / "gset" / "G1.txt"
    report = _json_run("solve", str(path), "--solver", "tabu", "--time-limit", "0.5", "--seed", "0")
    assert report["format"] == "gset"
    assert (report["num_variables"], report["num_interactions"]) == (800, 19176)
    assert report["total_weight"] == 19176.0
    assert report["objective"] == cut_from_energy(19176.0, report["energy"])
    assert 0 < report["objective"] <= 11624  # best known cut of G1 (gset/README.md)


def test_solve_prints_a_readable_summary_without_json(small_gset: Path) -> None:
    result = runner.invoke(app, ["solve", str(small_gset), "--solver", "exact"])
    assert result.exit_code == 0, result.stderr
    for word in ("cut", "energy", "solver", "exact", "stop", "timing"):
        assert word in result.stdout
    assert not result.stdout.lstrip().startswith("{")


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["solve", "missing.gset"], 2, "no such file: missing.gset"),
        (["solve"], 2, "missing FILE"),
        (["solve", "--example", "SMALL"], 2, "not both"),
        (["solve", "SMALL", "--solver", "nope"], 2, "unknown solver 'nope'"),
        (["solve", "SMALL", "--time-limit", "-1"], 2, "time_limit must be a positive"),
        (["solve", "SMALL", "--reads", "0"], 2, "--reads must be at least 1; got 0"),
        (["solve", "BAD"], 1, "BAD:3: vertex 9 is out of range 1..3"),
    ],
)
def test_bad_input_ends_with_one_error_line_and_exit_code(
    tmp_path: Path, small_gset: Path, args: list[str], code: int, words: str
) -> None:
    bad = tmp_path / "bad.gset"
    bad.write_text("3 2\n1 2 1\n2 9 1\n")
    swap = {"SMALL": str(small_gset), "BAD": str(bad)}
    _fails([swap.get(a, a) for a in args], code, words.replace("BAD", str(bad)))


def test_a_backend_without_credentials_fails_with_exit_code_one(
    small_gset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DYNEX_SDK_KEY", raising=False)
    _fails(["solve", str(small_gset), "--solver", "dynex"], 1, "DYNEX_SDK_KEY")


def test_solvers_lists_builtins_as_available_and_says_why_others_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DYNEX_SDK_KEY", raising=False)
    result = runner.invoke(app, ["solvers", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    for name in ("sa", "tabu", "pt", "exact"):
        assert rows[name]["kind"] == "built-in"
        assert rows[name]["available"] is True
    assert rows["dwave-sa"]["kind"] == "adapter"
    assert rows["dynex"]["available"] is False
    assert "DYNEX_SDK_KEY" in rows["dynex"]["reason"]
    table = runner.invoke(app, ["solvers"])
    assert "tabu" in table.stdout
    assert "nqba[dynex]" in table.stdout  # markup in descriptions is printed, not interpreted


def test_version_and_example_path() -> None:
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"nqba {__version__}"
    result = runner.invoke(app, ["example"])
    assert result.exit_code == 0
    path = Path(result.stdout.strip())
    assert path == example_path()
    assert read_gset(path).num_edges > 0


def _console_script() -> str:
    script = Path(sys.executable).parent / "nqba"
    found = str(script) if script.exists() else shutil.which("nqba")
    assert found, "the nqba console script is not installed (pip install -e .)"
    return found


def test_installed_console_script_fails_in_one_line_without_traceback(tmp_path: Path) -> None:
    nqba = _console_script()
    bad = tmp_path / "bad.gset"
    bad.write_text("3 2\n1 2 1\n2 2 1\n")
    cases = [
        ([nqba, "solve", str(bad)], 1, f"{bad}:3: self-loop on vertex 2"),
        ([nqba, "solve", "--example", "--seed", "many"], 2, "--seed"),
        ([nqba, "frobnicate"], 2, "frobnicate"),
    ]
    for argv, code, words in cases:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == code, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        assert proc.stderr.startswith("error: ")
        assert len(proc.stderr.splitlines()) == 1
        assert words in proc.stderr


def test_installed_console_script_prints_json_and_nothing_on_stderr() -> None:
    ok = subprocess.run(
        [_console_script(), "solve", "--example", "-s", "sa", "-t", "0.3", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["objective_name"] == "cut"
    assert ok.stderr == ""
