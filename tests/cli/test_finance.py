"""`nqba finance ...`: optimize, frontier, risk, rebalance, backtest; one-line errors."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nqba.cli import app

runner = CliRunner()


def _json_run(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _fails(args: list[str], code: int, words: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert words in lines[0], lines[0]


def _prices(n_assets: int = 4, days: int = 600, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    drift = np.linspace(0.0002, 0.0008, n_assets)
    vol = np.linspace(0.008, 0.02, n_assets)
    returns = drift + vol * rng.standard_normal((days, n_assets))
    prices = 100 * np.cumprod(1 + returns, axis=0)
    index = pd.bdate_range("2020-01-01", periods=days, name="date")
    return pd.DataFrame(prices, index=index, columns=[f"S{i}" for i in range(n_assets)])


@pytest.fixture
def prices_csv(tmp_path: Path) -> Path:
    path = tmp_path / "prices.csv"
    _prices().to_csv(path)
    return path


def test_optimize_min_variance_reports_weights_summing_to_one_and_the_baseline(
    prices_csv: Path,
) -> None:
    report = _json_run("finance", "optimize", str(prices_csv), "-o", "min-variance")
    plan = report["plan"]
    assert plan["objective"] == "min_variance"
    assert sum(plan["weights"].values()) == pytest.approx(1.0, abs=1e-6)
    assert min(plan["weights"].values()) >= -1e-8
    # The minimum-variance plan is no riskier than its equal-weight baseline on the same inputs.
    assert plan["baseline"]["name"] == "equal_weight"
    assert plan["volatility"] <= plan["baseline"]["volatility"] + 1e-9


def test_optimize_max_weight_flag_caps_every_weight(prices_csv: Path) -> None:
    report = _json_run("finance", "optimize", str(prices_csv), "--max-weight", "0.3")
    assert max(report["plan"]["weights"].values()) <= 0.3 + 1e-6


def test_optimize_reads_moments_json(tmp_path: Path) -> None:
    path = tmp_path / "moments.json"
    path.write_text(
        json.dumps({"assets": ["A", "B"], "mu": [0.05, 0.10], "cov": [[0.04, 0.0], [0.0, 0.09]]})
    )
    report = _json_run("finance", "optimize", str(path), "-o", "min-variance")
    weights = report["plan"]["weights"]
    # Two uncorrelated assets: w_A = s_B^2 / (s_A^2 + s_B^2) = 0.09 / 0.13.
    assert weights["A"] == pytest.approx(0.09 / 0.13, abs=1e-5)


def test_frontier_writes_a_png_and_returns_increasing_points(
    prices_csv: Path, tmp_path: Path
) -> None:
    png = tmp_path / "frontier.png"
    report = _json_run("finance", "frontier", str(prices_csv), "-n", "12", "--png", str(png))
    frontier = report["frontier"]
    assert len(frontier["volatilities"]) == 12
    assert np.all(np.diff(frontier["expected_returns"]) > -1e-9)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_risk_of_equal_weight_matches_a_direct_computation(prices_csv: Path) -> None:
    report = _json_run("finance", "risk", str(prices_csv))["report"]
    prices = pd.read_csv(prices_csv, index_col=0, parse_dates=True)
    r = prices.pct_change().dropna().mean(axis=1).to_numpy()
    assert report["var_historical_one_period"] == pytest.approx(-np.quantile(r, 0.05), rel=1e-9)
    wealth = np.cumprod(1 + r)
    drawdown = 1 - wealth / np.maximum.accumulate(wealth)
    assert report["max_drawdown_compounded"] == pytest.approx(drawdown.max(), rel=1e-9)


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["finance", "optimize", "missing.csv"], 2, "no such file"),
        (["finance", "risk", "{prices}", "--weights", "S0=abc"], 2, "not a number"),
        (["finance", "risk", "{prices}", "--weights", "ZZZ=1"], 2, "not in prices.csv"),
        (["finance", "optimize", "{prices}", "-o", "target-return"], 2, "target_return"),
        (["finance", "optimize", "{prices}", "--max-weight", "0.1"], 1, ""),
        (["finance", "frontier", "{prices}", "--png", "plot.jpg"], 2, ".png"),
    ],
)
def test_bad_requests_end_in_one_error_line(
    prices_csv: Path, args: list[str], code: int, words: str
) -> None:
    _fails([a.replace("{prices}", str(prices_csv)) for a in args], code, words)


def test_one_asset_file_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    _prices(n_assets=1).to_csv(path)
    _fails(["finance", "optimize", str(path)], 1, "two assets")


def test_non_numeric_cell_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    text = _prices(days=5).to_csv().splitlines()
    cells = text[3].split(",")
    cells[2] = "twelve"
    text[3] = ",".join(cells)
    path.write_text("\n".join(text) + "\n")
    _fails(["finance", "optimize", str(path)], 1, ":4")


@pytest.mark.realdata
def test_optimize_reproduces_pypfopt_max_sharpe_from_the_command_line(data_dir: Path) -> None:
    path = data_dir / "portfolio" / "prices" / "pypfopt_stock_prices_1989_2018.csv"
    plan = _json_run("finance", "optimize", str(path), "--rf", "0.02")["plan"]
    # PyPortfolioOpt's published max_sharpe(risk_free_rate=0.02) on this file.
    assert plan["expected_return"] == pytest.approx(0.3047768672819914, abs=1e-5)
    assert plan["volatility"] == pytest.approx(0.22165566922402932, abs=1e-5)
    assert plan["sharpe"] == pytest.approx(1.2847714127003216, abs=1e-5)


def test_rebalance_buys_whole_shares_within_cash(tmp_path: Path) -> None:
    report = _json_run(
        "finance", "rebalance", "--target", "A=0.5,B=0.5", "--prices", "A=30,B=70",
        "--cash", "1000", "--fee-rate", "0.001",
    )  # fmt: skip
    shares = {t["asset"]: t["shares"] for t in report["trades"]}
    spent = sum(t["value"] + t["fee"] for t in report["trades"])
    assert spent <= 1000 + 1e-9
    assert report["cash_left"] == pytest.approx(1000 - spent)
    # 500 per asset: 16 x 30 = 480 and 7 x 70 = 490 leave too little for one more share each.
    assert shares == {"A": 16, "B": 7}
    assert report["proven_optimal"] is True


def test_rebalance_reads_the_last_prices_from_a_csv(prices_csv: Path) -> None:
    report = _json_run(
        "finance", "rebalance", "--target", "S0=1", "--prices", str(prices_csv),
        "--cash", "10000",
    )  # fmt: skip
    last = pd.read_csv(prices_csv, index_col=0).iloc[-1]
    (trade,) = report["trades"]
    assert trade["price"] == pytest.approx(last["S0"])
    assert trade["shares"] == int(10000 // last["S0"])


def test_backtest_of_equal_weight_equals_the_built_in_equal_weight_row(prices_csv: Path) -> None:
    report = _json_run(
        "finance", "backtest", str(prices_csv), "-s", "equal-weight", "--window", "60",
        "--every", "20",
    )  # fmt: skip
    metrics = report["metrics"]
    assert metrics["strategy"]["total_return"] == pytest.approx(
        metrics["equal_weight"]["total_return"], rel=1e-12
    )
    assert metrics["strategy"]["rebalances"] == len(range(59, 599, 20))


def test_backtest_min_variance_is_less_volatile_than_equal_weight(prices_csv: Path) -> None:
    metrics = _json_run(
        "finance", "backtest", str(prices_csv), "--window", "120", "--every", "60",
    )["metrics"]  # fmt: skip
    # Synthetic assets are independent with volatilities 0.8 %..2 % a day: minimum variance
    # leans on the quiet ones and must come out calmer than 1/n.
    assert (
        metrics["strategy"]["annualized_volatility"]
        < metrics["equal_weight"]["annualized_volatility"]
    )


def test_cardinality_holds_exactly_k_assets_and_equals_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n, k, lam = 7, 3, 0.7
    a = rng.standard_normal((n, n))
    cov = (a @ a.T / n + np.eye(n)) * 1e-3
    mu = rng.uniform(0.0, 0.01, n)
    path = tmp_path / "moments.json"
    names = [f"X{i}" for i in range(n)]
    path.write_text(json.dumps({"assets": names, "mu": mu.tolist(), "cov": cov.tolist()}))
    plan = _json_run("finance", "optimize", str(path), "-k", str(k), "--risk-weight", str(lam))[
        "plan"
    ]
    held = [name for name, w in plan["weights"].items() if w > 0]
    assert len(held) == k
    assert plan["proven_optimal"] is True
    # Brute force: every 3-asset support, weights by a fine grid search on the simplex
    # with the 0.01 buy-in; the plan's QP optimum is at least as good as any grid point.
    grid = np.arange(0.01, 1.0, 0.01)
    wi, wj = (g.ravel() for g in np.meshgrid(grid, grid))
    keep = wi + wj <= 0.99 + 1e-12
    points = np.stack([wi[keep], wj[keep], 1 - wi[keep] - wj[keep]], axis=1)
    best = np.inf
    for support in itertools.combinations(range(n), k):
        idx = list(support)
        c, m = cov[np.ix_(idx, idx)], mu[idx]
        values = lam * np.einsum("pi,ij,pj->p", points, c, points) - (1 - lam) * points @ m
        best = min(best, float(values.min()))
    assert plan["objective"] <= best + 1e-12
    assert plan["objective"] >= best - 1e-3 * abs(best)


def test_console_script_rebalance_json_is_the_whole_of_stdout() -> None:
    script = Path(sys.executable).with_name("nqba")
    done = subprocess.run(
        [str(script), "finance", "rebalance", "--target", "A=0.2,B=0.3,C=0.5",
         "--prices", "A=13.7,B=41.2,C=97.3", "--holdings", "A=40,C=3", "--cash", "2500",
         "--fee-rate", "0.002", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # nothing but the one JSON object
    assert report["proven_optimal"] is True
