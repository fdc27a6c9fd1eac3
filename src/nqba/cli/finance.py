"""Finance commands: ``nqba finance optimize|frontier|risk|rebalance|backtest``.

Inputs are daily prices (CSV: a date column, then one column per asset), an OR-Library
``portN.txt`` file (weekly mean, sd and correlations), or a JSON file of moments
(``{"assets": [...], "mu": [...], "cov": [[...]]}``). Results print as tables, or with
``--json`` as one JSON object. Errors end with one line ``error: ...`` (see nqba.cli.common).
"""

from __future__ import annotations

import enum
import json
import math
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from nqba.cli.common import USAGE_EXIT, CliError, guarded

if TYPE_CHECKING:  # imported on use at run time: it loads numba kernels
    from nqba.finance.cardinality import CardinalityPlan

finance_app = typer.Typer(
    name="finance",
    no_args_is_help=True,
    help="Portfolio optimization, risk assessment and trading operations (Goliath Trade).",
)

_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)

#: Weights below this are left out of printed tables (they stay in --json).
PRINT_WEIGHT_FLOOR = 1e-6


class InputFormat(enum.StrEnum):
    """How FILE is read."""

    auto = "auto"
    prices = "prices"
    orlib = "orlib"
    moments = "moments"


class ReturnsMethod(enum.StrEnum):
    """Expected-return estimators (see nqba.finance.estimators)."""

    cagr = "cagr"
    arithmetic = "arithmetic"
    ewma = "ewma"


class CovarianceChoice(enum.StrEnum):
    """Covariance estimators (see nqba.finance.estimators)."""

    sample = "sample"
    ledoit_wolf = "ledoit-wolf"


class ObjectiveChoice(enum.StrEnum):
    """Objectives of `nqba finance optimize`."""

    min_variance = "min-variance"
    max_sharpe = "max-sharpe"
    target_return = "target-return"
    target_risk = "target-risk"
    max_utility = "max-utility"


class ToleranceChoice(enum.StrEnum):
    """Risk tolerance of the max-utility objective."""

    conservative = "conservative"
    moderate = "moderate"
    aggressive = "aggressive"


class FrontierMethodChoice(enum.StrEnum):
    """Frontier methods: one parametrised program, or the exact critical-line frontier."""

    auto = "auto"
    parametric = "parametric"
    exact = "exact"


@dataclass
class Moments:
    """Expected returns and covariance with where they came from."""

    mu: pd.Series
    cov: pd.DataFrame
    source: str
    periods_per_year: int
    prices: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


# Options shared by the commands that read a FILE of prices, OR-Library data or moments.
FileArg = Annotated[Path, typer.Argument(help="Prices CSV, OR-Library portN.txt, or moments JSON.")]
InputOpt = Annotated[
    InputFormat,
    typer.Option("--input", "-i", help="How to read FILE; auto: by extension and content."),
]
ReturnsOpt = Annotated[
    ReturnsMethod,
    typer.Option(
        "--returns",
        help="Expected returns from prices: cagr (compound annual growth), arithmetic "
        "(mean daily return x 252) or ewma (exponentially weighted mean x 252).",
    ),
]
CovOpt = Annotated[
    CovarianceChoice,
    typer.Option("--covariance", help="Covariance from prices: sample or ledoit-wolf."),
]
RfOpt = Annotated[
    float,
    typer.Option("--risk-free-rate", "--rf", help="Risk-free rate, in the units of mu."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
ConstraintsOpt = Annotated[
    Path | None,
    typer.Option(
        "--constraints",
        help="JSON file of constraints (fields of nqba.finance.schemas.PortfolioConstraints: "
        "weight_bounds, asset_bounds, long_only, leverage, sectors, sector_limits, "
        "current_weights, max_turnover, transaction_cost_rate).",
    ),
]
LongShortOpt = Annotated[
    bool, typer.Option("--long-short", help="Allow short positions (weights down to -1).")
]
LeverageOpt = Annotated[
    float | None, typer.Option("--leverage", help="Largest gross exposure sum(|w|).")
]
MaxWeightOpt = Annotated[
    float | None, typer.Option("--max-weight", help="Largest weight of any asset.")
]


def load_moments(
    file: Path,
    input_format: InputFormat,
    returns: ReturnsMethod,
    cov_method: CovarianceChoice,
) -> Moments:
    """Read FILE as prices, OR-Library data or moments; estimate mu and cov from prices."""
    from nqba.finance.estimators import NonPsdCovarianceWarning, covariance, expected_returns

    if not file.exists():
        raise CliError(f"no such file: {file}", USAGE_EXIT)
    if file.is_dir():
        raise CliError(f"{file} is a directory, not a data file", USAGE_EXIT)
    kind = _detect(file) if input_format is InputFormat.auto else input_format
    if kind is InputFormat.orlib:
        from nqba.finance.orlib import read_orlib_portfolio

        port = read_orlib_portfolio(file)
        names = list(port.names)
        return Moments(
            mu=pd.Series(port.mu, index=names),
            cov=pd.DataFrame(port.cov, index=names, columns=names),
            source=f"OR-Library {file.name} ({port.num_assets} assets, weekly figures)",
            periods_per_year=52,
            notes=["OR-Library figures are weekly, not annualised"],
        )
    if kind is InputFormat.moments:
        mu, cov = _read_moments_json(file)
        return Moments(mu=mu, cov=cov, source=f"moments {file.name}", periods_per_year=252)
    prices, notes = load_price_file(file)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NonPsdCovarianceWarning)
        mu = expected_returns(prices, returns.value)
        cov = covariance(prices, "ledoit_wolf" if cov_method.value == "ledoit-wolf" else "sample")
    notes += [str(w.message) for w in caught if issubclass(w.category, NonPsdCovarianceWarning)]
    assert isinstance(cov, pd.DataFrame)
    first, last = prices.index[0], prices.index[-1]
    return Moments(
        mu=mu,
        cov=cov,
        source=(
            f"prices {file.name} ({prices.shape[1]} assets, {first.date()} to "
            f"{last.date()}; mu {returns.value}, covariance {cov_method.value}, annualised x252)"
        ),
        periods_per_year=252,
        prices=prices,
        notes=notes,
    )


def load_price_file(file: Path) -> tuple[pd.DataFrame, list[str]]:
    """Prices of a CSV file and, in words, what loading adjusted or dropped."""
    from nqba.finance.data import load_prices

    if not file.is_file():
        raise CliError(f"no such file: {file}", USAGE_EXIT)
    data = load_prices(file)
    notes = list(data.notes)
    notes += [f"dropped {asset}: {why}" for asset, why in data.dropped_assets.items()]
    return data.prices, notes


def load_benchmark(path: Path) -> pd.Series:
    """The one price column of a benchmark CSV (e.g. an index)."""
    from nqba.finance.data import load_prices

    if not path.is_file():
        raise CliError(f"no such benchmark file: {path}", USAGE_EXIT)
    prices = load_prices(path, min_assets=1).prices
    if prices.shape[1] != 1:
        raise CliError(
            f"--benchmark must hold one price column; {path.name} has {prices.shape[1]}",
            USAGE_EXIT,
        )
    return prices.iloc[:, 0]


def _detect(file: Path) -> InputFormat:
    suffix = file.suffix.lower()
    if suffix == ".json":
        return InputFormat.moments
    if suffix == ".csv":
        return InputFormat.prices
    try:
        with file.open(encoding="utf-8", errors="replace") as handle:
            first = handle.readline().split()
    except OSError as e:
        raise CliError(f"cannot read {file}: {e.strerror}", USAGE_EXIT) from None
    if len(first) == 1 and first[0].isdigit():
        return InputFormat.orlib
    return InputFormat.prices


def _read_moments_json(file: Path) -> tuple[pd.Series, pd.DataFrame]:
    from nqba.finance.errors import DataFormatError

    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise DataFormatError(f"cannot read the file: {e}", path=str(file)) from None
    except json.JSONDecodeError as e:
        raise DataFormatError(f"not valid JSON: {e.msg}", path=str(file), line=e.lineno) from None
    if not isinstance(raw, dict) or not {"assets", "mu", "cov"} <= raw.keys():
        raise DataFormatError(
            'expected an object {"assets": [...], "mu": [...], "cov": [[...]]}', path=str(file)
        )
    assets = [str(a) for a in raw["assets"]] if isinstance(raw["assets"], list) else []
    try:
        mu = np.asarray(raw["mu"], dtype=float)
        cov = np.asarray(raw["cov"], dtype=float)
    except (TypeError, ValueError):
        raise DataFormatError("mu and cov must hold numbers only", path=str(file)) from None
    n = len(assets)
    if mu.shape != (n,) or cov.shape != (n, n):
        raise DataFormatError(
            f"{n} assets need mu of length {n} and cov of {n} x {n}; got mu {mu.shape}, "
            f"cov {cov.shape}",
            path=str(file),
        )
    return pd.Series(mu, index=assets), pd.DataFrame(cov, index=assets, columns=assets)


def build_constraints(
    constraints_file: Path | None,
    long_short: bool,
    leverage: float | None,
    max_weight: float | None,
    current: dict[str, float] | None = None,
) -> Any:
    """PortfolioConstraints from a JSON file and the quick flags (flags win)."""
    from nqba.finance.schemas import PortfolioConstraints

    base: dict[str, Any] = {}
    if constraints_file is not None:
        if not constraints_file.is_file():
            raise CliError(f"no such constraints file: {constraints_file}", USAGE_EXIT)
        try:
            base = json.loads(constraints_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise CliError(
                f"{constraints_file}:{e.lineno}: not valid JSON: {e.msg}", USAGE_EXIT
            ) from None
        if not isinstance(base, dict):
            raise CliError(f"{constraints_file}: expected a JSON object", USAGE_EXIT)
    if long_short:
        base["long_only"] = False
    if leverage is not None:
        base["leverage"] = leverage
    if max_weight is not None:
        low = 0.0 if base.get("long_only", True) else -max_weight
        base["weight_bounds"] = (low, max_weight)
    if current is not None:
        base["current_weights"] = current
    return PortfolioConstraints.model_validate(base)


def parse_weights(text: str, what: str = "--weights") -> dict[str, float]:
    """``A=0.5,B=0.5`` or the path of a JSON object ``{"A": 0.5, ...}``."""
    path = Path(text)
    if "=" not in text and path.suffix.lower() == ".json":
        if not path.is_file():
            raise CliError(f"{what}: no such file: {text}", USAGE_EXIT)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise CliError(
                f"{what}: {text}:{e.lineno}: not valid JSON: {e.msg}", USAGE_EXIT
            ) from None
        if not isinstance(raw, dict):
            raise CliError(f"{what}: {text} must hold a JSON object of name: number", USAGE_EXIT)
        items = list(raw.items())
    else:
        items = []
        for part in text.split(","):
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise CliError(
                    f"{what}: expected NAME=NUMBER pairs separated by commas (or a .json "
                    f"file); got {part!r}",
                    USAGE_EXIT,
                )
            items.append((name.strip(), value.strip()))
    out: dict[str, float] = {}
    for name, value in items:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise CliError(f"{what}: {name}={value!r} is not a number", USAGE_EXIT) from None
        if not math.isfinite(number):
            raise CliError(f"{what}: {name} must be a finite number", USAGE_EXIT)
        if str(name) in out:
            raise CliError(f"{what}: {name} is given twice", USAGE_EXIT)
        out[str(name)] = number
    if not out:
        raise CliError(f"{what}: no weights given", USAGE_EXIT)
    return out


def emit_json(payload: Any) -> None:
    """Write one JSON object to stdout (pydantic models and numpy numbers included)."""
    sys.stdout.write(json.dumps(payload, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in fields(obj)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, pd.Series):
        return {str(k): v for k, v in obj.items()}
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


@contextmanager
def _status(message: str, show: bool) -> Iterator[None]:
    """A spinner on stderr while slow work runs (only on a terminal, never with --json)."""
    if show and _err.is_terminal:
        with _err.status(message):
            yield
    else:
        yield


def _fmt(x: float | None, digits: int = 6) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a" if x is None else str(x)
    return f"{x:.{digits}g}"


def _weights_table(title: str, weights: dict[str, float]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("asset")
    table.add_column("weight", justify="right")
    for name, w in sorted(weights.items(), key=lambda kv: -abs(kv[1])):
        if abs(w) >= PRINT_WEIGHT_FLOOR:
            table.add_row(name, f"{w:.6f}")
    return table


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        _out.print(f"note: {note}")


@finance_app.command("optimize")
def optimize_command(
    file: FileArg,
    objective: Annotated[
        ObjectiveChoice, typer.Option("--objective", "-o", help="What to optimize.")
    ] = ObjectiveChoice.max_sharpe,
    risk_tolerance: Annotated[
        ToleranceChoice | None,
        typer.Option(
            "--risk-tolerance",
            help="max-utility only: conservative, moderate or aggressive (documented risk "
            "aversions 20, 6, 2).",
        ),
    ] = None,
    risk_aversion: Annotated[
        float | None,
        typer.Option("--risk-aversion", help="max-utility: delta in mu'w - delta/2 w'Sw."),
    ] = None,
    target_return: Annotated[
        float | None, typer.Option("--target-return", help="target-return: required return.")
    ] = None,
    target_risk: Annotated[
        float | None, typer.Option("--target-risk", help="target-risk: largest volatility.")
    ] = None,
    cardinality: Annotated[
        int | None,
        typer.Option(
            "--cardinality",
            "-k",
            help="Hold exactly K assets (Chang et al. model, solved through the engine): "
            "minimise L w'Sw - (1-L) mu'w with --risk-weight L, --min-buy, --max-weight.",
        ),
    ] = None,
    at_most: Annotated[
        bool, typer.Option("--at-most", help="With --cardinality: at most K assets, not exactly.")
    ] = False,
    risk_weight: Annotated[
        float, typer.Option("--risk-weight", help="With --cardinality: L in [0, 1].")
    ] = 0.5,
    min_buy: Annotated[
        float, typer.Option("--min-buy", help="With --cardinality: least weight of a held asset.")
    ] = 0.01,
    time_limit: Annotated[
        float | None, typer.Option("--time-limit", "-t", help="With --cardinality: seconds.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="With --cardinality: seed.")] = None,
    input_format: InputOpt = InputFormat.auto,
    returns: ReturnsOpt = ReturnsMethod.cagr,
    cov_method: CovOpt = CovarianceChoice.sample,
    risk_free_rate: RfOpt = 0.0,
    constraints_file: ConstraintsOpt = None,
    long_short: LongShortOpt = False,
    leverage: LeverageOpt = None,
    max_weight: MaxWeightOpt = None,
    current: Annotated[
        str | None,
        typer.Option(
            "--current", help="Current weights (A=0.5,B=0.5 or a .json file): turnover baseline."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Optimize a portfolio and compare it with equal weight (or the current holdings)."""

    def run() -> None:
        moments = load_moments(file, input_format, returns, cov_method)
        if cardinality is not None:
            _run_cardinality(moments)
            return
        from nqba.finance.optimize import optimize_portfolio
        from nqba.finance.schemas import OptimizeSpec

        current_weights = None if current is None else parse_weights(current, "--current")
        spec = OptimizeSpec(
            objective=objective.value.replace("-", "_"),  # type: ignore[arg-type]
            risk_tolerance=None if risk_tolerance is None else risk_tolerance.value,
            risk_aversion=risk_aversion,
            target_return=target_return,
            target_risk=target_risk,
            risk_free_rate=risk_free_rate,
            constraints=build_constraints(
                constraints_file, long_short, leverage, max_weight, current_weights
            ),
        )
        plan = optimize_portfolio(moments.mu, moments.cov, spec)
        if as_json:
            emit_json({"source": moments.source, "input_notes": moments.notes, "plan": plan})
            return
        _out.print(f"[bold]{spec.objective}[/] on {moments.source}")
        _out.print(_weights_table("weights", plan.weights))
        table = Table(title="performance (same mu and cov)", title_justify="left")
        for col in ("portfolio", "expected return", "volatility", "Sharpe"):
            table.add_column(col, justify="right" if col != "portfolio" else "left")
        table.add_row(
            "plan", _fmt(plan.net_expected_return), _fmt(plan.volatility), _fmt(plan.sharpe)
        )
        b = plan.baseline
        table.add_row(
            f"baseline: {b.name}", _fmt(b.net_expected_return), _fmt(b.volatility), _fmt(b.sharpe)
        )
        _out.print(table)
        _out.print(
            f"solver {plan.solver} ({plan.status}) in {plan.solve_seconds * 1e3:.1f} ms; "
            f"risk-free rate {plan.risk_free_rate}"
        )
        _print_notes(moments.notes + plan.notes)

    def _run_cardinality(moments: Moments) -> None:
        from nqba.finance.cardinality import optimize_cardinality

        if cardinality is None:  # for the type checker; checked by the caller
            return
        with _status("searching supports through the engine...", not as_json):
            plan = optimize_cardinality(
                moments.mu,
                moments.cov,
                cardinality,
                risk_weight=risk_weight,
                min_weight=min_buy,
                max_weight=1.0 if max_weight is None else max_weight,
                exact_k=not at_most,
                time_limit=time_limit,
                seed=seed,
            )
        if as_json:
            emit_json({"source": moments.source, "input_notes": moments.notes, "plan": plan})
            return
        _print_cardinality(plan, moments)

    guarded(run)


def _print_cardinality(plan: CardinalityPlan, moments: Moments) -> None:
    weights = {str(k): float(v) for k, v in plan.weights.items()}
    _out.print(f"[bold]cardinality[/] on {moments.source}")
    _out.print(_weights_table("weights", weights))
    status = "proven optimal" if plan.proven_optimal else f"gap {_fmt(plan.gap)} to the lower bound"
    _out.print(
        f"objective {_fmt(plan.objective, 10)} ({status}); lower bound "
        f"{_fmt(plan.lower_bound, 10)}; return {_fmt(plan.expected_return)}, "
        f"variance {_fmt(plan.variance)}"
    )
    base = plan.baseline
    _out.print(
        f"baseline (the engine's best selection alone, QP-weighted): objective "
        f"{_fmt(base.objective, 10)}, assets {', '.join(base.support)} ({base.solver}, "
        f"{base.seconds:.3f} s)"
    )
    _print_notes(moments.notes + list(plan.notes))


@finance_app.command("frontier")
def frontier_command(
    file: FileArg,
    points: Annotated[int, typer.Option("--points", "-n", help="Number of frontier points.")] = 50,
    method: Annotated[
        FrontierMethodChoice,
        typer.Option(
            "--method",
            help="exact: the critical-line frontier (budget and bounds only); parametric: one "
            "cvxpy program re-solved per target (any constraints); auto: exact where it applies.",
        ),
    ] = FrontierMethodChoice.auto,
    png: Annotated[
        Path | None, typer.Option("--png", help="Write a plot of the frontier to this PNG file.")
    ] = None,
    input_format: InputOpt = InputFormat.auto,
    returns: ReturnsOpt = ReturnsMethod.cagr,
    cov_method: CovOpt = CovarianceChoice.sample,
    risk_free_rate: RfOpt = 0.0,
    constraints_file: ConstraintsOpt = None,
    long_short: LongShortOpt = False,
    leverage: LeverageOpt = None,
    max_weight: MaxWeightOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute the efficient frontier: lowest volatility for each target return."""

    def run() -> None:
        from nqba.finance.frontier import efficient_frontier, plot_frontier
        from nqba.finance.schemas import OptimizeSpec

        if png is not None and png.suffix.lower() != ".png":
            raise CliError(f"--png must name a .png file; got {png}", USAGE_EXIT)
        moments = load_moments(file, input_format, returns, cov_method)
        spec = OptimizeSpec(
            risk_free_rate=risk_free_rate,
            constraints=build_constraints(constraints_file, long_short, leverage, max_weight),
        )
        with _status("solving the frontier...", not as_json):
            frontier = efficient_frontier(
                moments.mu, moments.cov, spec, n_points=points, method=method.value
            )
        if png is not None:
            plot_frontier(frontier, png, title=f"Efficient frontier: {file.name}")
        if as_json:
            emit_json(
                {
                    "source": moments.source,
                    "input_notes": moments.notes,
                    "frontier": frontier,
                    "png": None if png is None else str(png),
                }
            )
            return
        table = Table(title=f"efficient frontier of {moments.source}", title_justify="left")
        for col in ("#", "expected return", "volatility", "Sharpe", "assets held"):
            table.add_column(col, justify="right")
        for i, (r, v, s, w) in enumerate(
            zip(
                frontier.expected_returns,
                frontier.volatilities,
                frontier.sharpe_ratios,
                frontier.weights,
                strict=True,
            )
        ):
            held = sum(1 for x in w if abs(x) >= PRINT_WEIGHT_FLOOR)
            table.add_row(str(i + 1), _fmt(r), _fmt(v), _fmt(s), str(held))
        _out.print(table)
        _out.print(
            f"{len(frontier.volatilities)} points by {frontier.solver} in "
            f"{frontier.solve_seconds * 1e3:.1f} ms"
            + ("" if png is None else f"; plot written to {png}")
        )
        _print_notes(moments.notes + frontier.notes)

    guarded(run)


@finance_app.command("risk")
def risk_command(
    file: Annotated[Path, typer.Argument(help="Prices CSV (date column, one column per asset).")],
    weights: Annotated[
        str | None,
        typer.Option("--weights", "-w", help="A=0.5,B=0.5 or a .json file; default: equal weight."),
    ] = None,
    benchmark: Annotated[
        Path | None,
        typer.Option("--benchmark", "-b", help="Prices CSV of a benchmark (one column)."),
    ] = None,
    level: Annotated[float, typer.Option("--level", help="VaR/CVaR confidence level.")] = 0.95,
    risk_free_rate: RfOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Risk figures of a constant-weight portfolio: VaR, CVaR, drawdowns, beta, Sharpe, ..."""

    def run() -> None:
        from nqba.finance.data import simple_returns
        from nqba.finance.risk import assess_risk

        prices, notes = load_price_file(file)
        assets = [str(c) for c in prices.columns]
        if weights is None:
            w = {a: 1.0 / len(assets) for a in assets}
            notes.append(f"equal weight over the {len(assets)} assets (no --weights given)")
        else:
            w = parse_weights(weights)
            unknown = sorted(set(w) - set(assets))
            if unknown:
                raise CliError(
                    f"--weights names asset(s) not in {file.name}: {', '.join(unknown)}",
                    USAGE_EXIT,
                )
        bench_returns = None
        if benchmark is not None:
            bench_returns = simple_returns(load_benchmark(benchmark).to_frame()).iloc[:, 0].dropna()
        report = assess_risk(
            simple_returns(prices),
            pd.Series(w, dtype=float),
            benchmark=bench_returns,
            level=level,
            risk_free_rate=risk_free_rate,
        )
        if as_json:
            emit_json({"weights": w, "input_notes": notes, "report": report})
            return
        _print_risk(report, level)
        _print_notes(notes + list(report.notes))

    guarded(run)


def _print_risk(report: Any, level: float) -> None:
    pct = f"{level:.0%}"
    rows = [
        ("periods", f"{report.periods} ({report.start} to {report.end})"),
        (
            "return, annualised (arithmetic mean x 252)",
            _fmt(report.mean_return_annualized_arithmetic),
        ),
        ("return, annualised (compound)", _fmt(report.return_annualized_compound)),
        ("volatility, annualised", _fmt(report.volatility_annualized)),
        ("Sharpe, annualised", _fmt(report.sharpe_ratio_annualized)),
        ("Sortino, annualised", _fmt(report.sortino_ratio_annualized)),
        (f"VaR {pct}, historical, one period", _fmt(report.var_historical_one_period)),
        (f"CVaR {pct}, historical, one period", _fmt(report.cvar_historical_one_period)),
        (f"VaR {pct}, normal, one period", _fmt(report.var_parametric_normal_one_period)),
        (f"CVaR {pct}, normal, one period", _fmt(report.cvar_parametric_normal_one_period)),
        ("max drawdown, compounded", _fmt(report.max_drawdown_compounded)),
        ("max drawdown, uncompounded", _fmt(report.max_drawdown_uncompounded)),
        ("beta to benchmark", _fmt(report.beta_to_benchmark)),
        ("correlation to benchmark", _fmt(report.correlation_to_benchmark)),
    ]
    table = Table(title="risk", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    _out.print(table)
    contrib = Table(title="risk contributions (annualised volatility)", title_justify="left")
    for col in ("asset", "contribution", "share"):
        contrib.add_column(col, justify="right" if col != "asset" else "left")
    for asset, value in sorted(report.risk_contribution_annualized.items(), key=lambda kv: -kv[1]):
        if abs(value) >= PRINT_WEIGHT_FLOOR:
            share = report.risk_contribution_fraction[asset]
            contrib.add_row(asset, _fmt(value), f"{share:.2%}")
    _out.print(contrib)
    worst = Table(title="worst periods", title_justify="left")
    for col in ("start", "end", "return"):
        worst.add_column(col, justify="right")
    for period in report.worst_periods_one_period:
        worst.add_row(period.start, period.end, _fmt(period.compounded_return))
    _out.print(worst)


@finance_app.command("rebalance")
def rebalance_command(
    target: Annotated[
        str, typer.Option("--target", help="Target weights: A=0.6,B=0.4 or a .json file.")
    ],
    prices: Annotated[
        str,
        typer.Option(
            "--prices",
            help="Last prices: A=101.5,B=20 or a prices CSV (its last row is used).",
        ),
    ],
    holdings: Annotated[
        str | None,
        typer.Option("--holdings", help="Shares held now: A=10,B=5 or a .json file."),
    ] = None,
    cash: Annotated[float, typer.Option("--cash", help="Cash available.")] = 0.0,
    lot_size: Annotated[
        int, typer.Option("--lot-size", help="Shares per tradable lot (1: whole shares).")
    ] = 1,
    fee_rate: Annotated[
        float, typer.Option("--fee-rate", help="Proportional fee on traded value, e.g. 0.001.")
    ] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Trade whole lots to the allocation closest to the target weights (exact MILP)."""

    def run() -> None:
        from nqba.finance.rebalance import rebalance

        last = _last_prices(prices)
        held = {} if holdings is None else parse_weights(holdings, "--holdings")
        with _solver_prints_to_stderr():
            plan = rebalance(
                held,
                cash,
                last,
                parse_weights(target, "--target"),
                lot_sizes=lot_size,
                fee_rate=fee_rate,
            )
        if as_json:
            emit_json(
                {
                    "trades": [vars(t) for t in plan.trades],
                    "holdings": plan.holdings,
                    "weights": plan.weights,
                    "cash_left": plan.cash_left,
                    "total_fees": plan.total_fees,
                    "traded_value": plan.traded_value,
                    "tracking_error": plan.tracking_error,
                    "tracking_error_before": plan.tracking_error_before,
                    "lower_bound": plan.lower_bound,
                    "proven_optimal": plan.proven_optimal,
                    "solver": plan.solver,
                    "status": plan.status,
                    "solve_seconds": plan.solve_seconds,
                    "notes": list(plan.notes),
                }
            )
            return
        table = Table(title="trades", title_justify="left")
        for col in ("asset", "side", "shares", "price", "value", "fee"):
            table.add_column(col, justify="left" if col in ("asset", "side") else "right")
        for t in plan.trades:
            table.add_row(
                t.asset, t.side, str(t.shares), f"{t.price:.4f}", f"{t.value:.2f}", f"{t.fee:.2f}"
            )
        _out.print(table)
        optimal = "proven optimal" if plan.proven_optimal else f"lower bound {plan.lower_bound:.6f}"
        _out.print(
            f"tracking error {plan.tracking_error:.6f} ({optimal}; untouched holdings: "
            f"{plan.tracking_error_before:.6f}); fees {plan.total_fees:.2f}; cash left "
            f"{plan.cash_left:.2f}; {plan.solver} in {plan.solve_seconds * 1e3:.1f} ms"
        )
        _print_notes(list(plan.notes))

    guarded(run)


@contextmanager
def _solver_prints_to_stderr() -> Iterator[None]:
    """Send what native solver code prints on file descriptor 1 to stderr meanwhile.

    scipy's bundled HiGHS can print a debug line to stdout that no option silences; on stdout
    it would corrupt ``--json`` output.
    """
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (embedded use): nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _last_prices(text: str) -> dict[str, float]:
    """Prices as NAME=NUMBER pairs, or the last row of a prices CSV (each asset's last price)."""
    path = Path(text)
    if "=" in text or path.suffix.lower() == ".json":
        return parse_weights(text, "--prices")
    if not path.is_file():
        raise CliError(f"--prices: no such file: {text}", USAGE_EXIT)
    from nqba.finance.data import load_prices

    frame = load_prices(path, min_assets=1).prices
    last = frame.ffill().iloc[-1].dropna()
    return {str(k): float(v) for k, v in last.items()}


class StrategyChoice(enum.StrEnum):
    """Strategies of `nqba finance backtest`."""

    equal_weight = "equal-weight"
    min_variance = "min-variance"
    max_sharpe = "max-sharpe"
    max_utility = "max-utility"


@finance_app.command("backtest")
def backtest_command(
    file: Annotated[Path, typer.Argument(help="Prices CSV (date column, one column per asset).")],
    strategy: Annotated[
        StrategyChoice, typer.Option("--strategy", "-s", help="What to re-optimize each time.")
    ] = StrategyChoice.min_variance,
    window: Annotated[
        int, typer.Option("--window", help="Trailing rows the strategy estimates on.")
    ] = 252,
    every: Annotated[int, typer.Option("--every", help="Rows between rebalances.")] = 21,
    fee_rate: Annotated[
        float, typer.Option("--fee-rate", help="Proportional cost on traded value.")
    ] = 0.001,
    benchmark: Annotated[
        Path | None,
        typer.Option("--benchmark", "-b", help="Prices CSV of a benchmark (one column)."),
    ] = None,
    risk_tolerance: Annotated[
        ToleranceChoice | None,
        typer.Option("--risk-tolerance", help="max-utility: conservative, moderate, aggressive."),
    ] = None,
    max_weight: MaxWeightOpt = None,
    risk_free_rate: RfOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Walk-forward backtest against equal weight (and a benchmark), with trading costs."""

    def run() -> None:
        from nqba.finance.backtest import Strategy, equal_weight_strategy, walk_forward
        from nqba.finance.schemas import OptimizeSpec
        from nqba.finance.strategies import optimizer_strategy

        prices, notes = load_price_file(file)
        chosen: Strategy
        if strategy is StrategyChoice.equal_weight:
            chosen = equal_weight_strategy
        else:
            spec = OptimizeSpec(
                objective=strategy.value.replace("-", "_"),  # type: ignore[arg-type]
                risk_tolerance=None if risk_tolerance is None else risk_tolerance.value,
                risk_free_rate=risk_free_rate,
                constraints=build_constraints(None, False, None, max_weight),
            )
            chosen = optimizer_strategy(spec)
        bench = None if benchmark is None else load_benchmark(benchmark)
        with _status("backtesting...", not as_json):
            result = walk_forward(
                prices,
                chosen,
                window=window,
                rebalance_every=every,
                fee_rate=fee_rate,
                benchmark=bench,
                risk_free_rate=risk_free_rate,
            )
        metrics = result.metrics
        if as_json:
            emit_json(
                {
                    "strategy": strategy.value,
                    "window": window,
                    "rebalance_every": every,
                    "fee_rate": fee_rate,
                    "metrics": {
                        str(name): {str(k): _plain(v) for k, v in row.items()}
                        for name, row in metrics.iterrows()
                    },
                    "rebalances": len(result.rebalance_dates),
                    "notes": notes + list(result.notes),
                }
            )
            return
        table = Table(
            title=f"walk-forward backtest of {strategy.value} on {file.name} (window {window}, "
            f"every {every} rows, fee rate {fee_rate})",
            title_justify="left",
        )
        table.add_column("measure")
        for name in metrics.index:
            table.add_column(str(name).replace("_", " "), justify="right")
        for col in metrics.columns:
            table.add_row(str(col).replace("_", " "), *(_fmt(_plain(v), 4) for v in metrics[col]))
        _out.print(table)
        _print_notes(notes + list(result.notes))

    guarded(run)


def _plain(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number
