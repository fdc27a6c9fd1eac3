"""A server process imports the solvers at start and freezes its start-up heap."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from nqba.api.app import create_app
from nqba.decisions.registry import decision_kinds
from tests.support.platform import platform_settings


def test_every_kind_names_its_solver_modules() -> None:
    for kind in decision_kinds():
        assert kind.solver_modules, f"{kind.unit}/{kind.kind} names no solver modules"


def test_a_server_process_imports_every_solver_and_freezes_its_startup_heap(
    database_url: str,
) -> None:
    settings = platform_settings(database_url)
    try:
        with TestClient(create_app(settings=settings, server_process=True)) as client:
            assert client.get("/readyz").status_code == 200
            assert gc.get_freeze_count() > 0
            for kind in decision_kinds():
                for name in kind.solver_modules:
                    assert name in sys.modules
    finally:
        gc.unfreeze()


def test_an_app_not_run_as_a_server_process_freezes_nothing(database_url: str) -> None:
    gc.unfreeze()
    with TestClient(create_app(settings=platform_settings(database_url))) as client:
        assert client.get("/readyz").status_code == 200
        assert gc.get_freeze_count() == 0


FIRST_DECISION = """
import gc, json, sys
from fastapi.testclient import TestClient
from nqba.api.app import create_app
from nqba.auth.service import create_organisation, create_user, principal_of
from nqba.auth.tokens import issue_access_token
from nqba.authz import Role
from tests.support.platform import platform_settings

settings = platform_settings(sys.argv[1])
with TestClient(create_app(settings=settings, server_process=True)) as client:
    services = client.app.state.services
    with services.session_factory.begin() as session:
        org = create_organisation(session, "acme")
        user = create_user(session, org.id, "a@acme.test", "a long password 1", Role.ANALYST)
        token = issue_access_token(settings, principal_of(user))
    gc.collect()
    before = len(gc.get_objects(generation=2))
    body = {
        "market": {
            "assets": ["A", "B", "C"],
            "expected_returns": [0.10, 0.08, 0.05],
            "covariance": [[0.04, 0.01, 0.0], [0.01, 0.03, 0.0], [0.0, 0.0, 0.01]],
        },
        "spec": {"objective": "min_variance"},
    }
    answer = client.post(
        "/api/v1/goliath/portfolio-optimization",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    gc.collect()
    after = len(gc.get_objects(generation=2))
    print(json.dumps({"status": answer.status_code, "solver": answer.json().get("solver"),
                      "added": after - before}))
"""


def test_a_fresh_server_s_first_quick_decision_adds_little_for_the_collector_to_walk(
    tmp_path: Path,
) -> None:
    # numba's typing context, set up when a kernel is first loaded (some 50,000 objects), is
    # set up before the start-up heap is frozen, not by the first decision
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    run = subprocess.run(
        [sys.executable, "-c", FIRST_DECISION, url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    assert result["solver"] == "critical_line"
    assert result["added"] < 10_000
