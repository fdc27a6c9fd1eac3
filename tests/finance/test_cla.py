"""The exact (critical-line) portfolios agree with the convex programs they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nqba.finance.optimize import optimize_portfolio
from nqba.finance.schemas import OptimizeSpec, PortfolioConstraints


def _market(n: int, seed: int) -> tuple[pd.Series, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, 3)) * 0.15
    cov = factors @ factors.T + np.diag(rng.uniform(0.01, 0.05, n))
    mu = rng.uniform(0.02, 0.15, n)
    names = [f"S{i}" for i in range(n)]
    return pd.Series(mu, index=names), pd.DataFrame(cov, index=names, columns=names)


SPECS = [
    {"objective": "min_variance"},
    {"objective": "max_sharpe", "risk_free_rate": 0.02},
    {"objective": "max_utility", "risk_aversion": 3.0},
    {"objective": "max_utility", "risk_tolerance": "conservative"},
    {"objective": "target_return", "target_return": 0.09},
    {"objective": "target_risk", "target_risk": 0.22},
]
CONSTRAINTS = [
    {},
    {"weight_bounds": (0.02, 0.3)},
    {"long_only": False, "weight_bounds": (-0.2, 0.5)},
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("constraints", CONSTRAINTS)
@pytest.mark.parametrize("fields", SPECS)
def test_exact_portfolio_matches_the_convex_program(
    seed: int, constraints: dict[str, object], fields: dict[str, object]
) -> None:
    mu, cov = _market(12, seed)
    spec = OptimizeSpec.model_validate(
        {**fields, "constraints": PortfolioConstraints.model_validate(constraints)}
    )
    exact = optimize_portfolio(mu, cov, spec)
    convex = optimize_portfolio(mu, cov, spec.model_copy(update={"solver": "CLARABEL"}))
    assert exact.solver == "critical_line", exact.notes
    assert convex.solver == "CLARABEL"
    w_exact = pd.Series(exact.weights)
    w_convex = pd.Series(convex.weights)
    assert w_exact.sum() == pytest.approx(1.0, abs=1e-12)
    # the exact optimum is at least as good as the interior-point one, and the same portfolio
    if spec.objective in ("min_variance", "target_return"):
        assert exact.volatility <= convex.volatility + 1e-9
    elif spec.objective == "max_sharpe":
        assert exact.sharpe is not None
        assert convex.sharpe is not None
        assert exact.sharpe >= convex.sharpe - 1e-9
    elif spec.objective == "target_risk":
        assert exact.expected_return >= convex.expected_return - 1e-7
        assert exact.volatility <= spec.target_risk + 1e-12  # type: ignore[operator]
    assert np.max(np.abs(w_exact - w_convex)) < 2e-5


def test_exact_path_gives_way_to_the_program_for_an_unreachable_target() -> None:
    mu, cov = _market(6, 4)
    from nqba.finance.errors import InfeasiblePortfolioError

    with pytest.raises(InfeasiblePortfolioError, match="highest net expected return"):
        optimize_portfolio(mu, cov, OptimizeSpec(objective="target_return", target_return=0.5))
    with pytest.raises(InfeasiblePortfolioError, match="lowest volatility"):
        optimize_portfolio(mu, cov, OptimizeSpec(objective="target_risk", target_risk=0.01))


def test_sector_limits_still_use_the_convex_program() -> None:
    mu, cov = _market(6, 5)
    spec = OptimizeSpec(
        objective="min_variance",
        constraints=PortfolioConstraints(
            sectors={"S0": "x", "S1": "x"}, sector_limits={"x": (0.0, 0.2)}
        ),
    )
    assert optimize_portfolio(mu, cov, spec).solver in ("OSQP", "CLARABEL")
