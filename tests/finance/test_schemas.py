"""Request/response schemas: defaults, field ranges, documented risk tolerances, round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from nqba.finance.optimize import optimize_portfolio
from nqba.finance.schemas import (
    RISK_AVERSION_BY_TOLERANCE,
    Frontier,
    OptimizeSpec,
    PortfolioConstraints,
    PortfolioPlan,
)


def test_default_spec_is_long_only_max_utility_with_no_extra_constraints() -> None:
    spec = OptimizeSpec()
    assert spec.objective == "max_utility"
    assert spec.risk_tolerance is None
    assert spec.risk_free_rate == 0.0
    assert spec.solver == "auto"
    c = spec.constraints
    assert c.long_only is True
    assert c.weight_bounds is None
    assert c.leverage is None
    assert c.current_weights is None
    assert c.max_turnover is None
    assert c.transaction_cost_rate == 0.0


def test_risk_tolerances_map_to_documented_decreasing_risk_aversion() -> None:
    assert RISK_AVERSION_BY_TOLERANCE == {"conservative": 20.0, "moderate": 6.0, "aggressive": 2.0}
    description = OptimizeSpec.model_fields["risk_tolerance"].description or ""
    for name, value in RISK_AVERSION_BY_TOLERANCE.items():
        assert f"{name} -> risk aversion {value:g}" in description


@pytest.mark.parametrize(
    "payload",
    [
        {"constraints": {"leverage": 0.0}},
        {"constraints": {"max_turnover": -0.1}},
        {"constraints": {"transaction_cost_rate": -0.01}},
        {"constraints": {"transaction_cost_rate": 1.0}},
        {"risk_aversion": 0.0},
        {"target_risk": -0.2},
        {"objective": "max_return"},
        {"risk_tolerance": "reckless"},
        {"solver": "GUROBI"},
        {"risk_free_rate": float("nan")},
        {"constraints": {"weight_bounds": [0.0, float("inf")]}},
        {"unknown_field": 1},
        {"constraints": {"max_weight": 0.2}},
    ],
)
def test_out_of_range_or_unknown_fields_are_rejected(payload: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        OptimizeSpec.model_validate(payload)


def test_spec_reads_json_with_lists_for_bound_pairs() -> None:
    spec = OptimizeSpec.model_validate_json(
        json.dumps(
            {
                "objective": "target_return",
                "target_return": 0.1,
                "constraints": {
                    "weight_bounds": [0.0, 0.4],
                    "asset_bounds": {"A0": [0.1, 0.2]},
                    "sectors": {"A0": "tech"},
                    "sector_limits": {"tech": [0.0, 0.5]},
                },
            }
        )
    )
    assert spec.constraints.weight_bounds == (0.0, 0.4)
    assert spec.constraints.asset_bounds == {"A0": (0.1, 0.2)}
    assert spec.constraints.sector_limits == {"tech": (0.0, 0.5)}


def test_plan_round_trips_through_json_and_gives_a_weight_series() -> None:
    mu = np.array([0.08, 0.12, 0.10])
    cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.06]])
    plan = optimize_portfolio(mu, cov, OptimizeSpec(objective="min_variance"))
    again = PortfolioPlan.model_validate_json(plan.model_dump_json())
    assert again == plan
    series = plan.weights_series()
    assert list(series.index) == ["A0", "A1", "A2"]
    assert series.sum() == pytest.approx(1.0, abs=1e-9)


def test_frontier_weights_frame_has_one_row_per_point_and_asset_columns() -> None:
    frontier = Frontier(
        assets=["X", "Y"],
        method="exact",
        target_returns=[0.1, 0.2],
        expected_returns=[0.1, 0.2],
        volatilities=[0.15, 0.25],
        sharpe_ratios=[0.1 / 0.15, 0.2 / 0.25],
        weights=[[0.7, 0.3], [0.2, 0.8]],
        risk_free_rate=0.0,
        solver="critical_line",
        solve_seconds=0.001,
    )
    frame = frontier.weights_frame()
    assert frame.shape == (2, 2)
    assert list(frame.columns) == ["X", "Y"]
    assert frame.loc[1, "Y"] == 0.8


def test_constraints_accept_per_asset_bounds_and_current_weights() -> None:
    c = PortfolioConstraints(
        asset_bounds={"A": (0.0, 0.5)},
        current_weights={"A": 0.5, "B": 0.5},
        max_turnover=0.2,
        transaction_cost_rate=0.001,
    )
    assert c.asset_bounds["A"] == (0.0, 0.5)
    assert c.max_turnover == 0.2
