"""A server process imports the solvers at start and freezes its start-up heap."""

from __future__ import annotations

import gc
import sys

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
