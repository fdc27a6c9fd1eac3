"""Liveness, readiness and metrics answer on both databases."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from nqba.api.app import create_app
from nqba.auth.service import create_organisation, create_user, principal_of
from nqba.auth.tokens import issue_access_token
from nqba.services import build_services
from tests.support.platform import platform_settings


def test_healthz_and_readyz_report_ok_on_a_migrated_database(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


def test_metrics_are_prometheus_text_with_request_latency(client: TestClient) -> None:
    client.get("/healthz")
    body = client.get("/metrics").text
    assert "nqba_http_request_duration_seconds_bucket" in body
    assert 'route="/healthz"' in body
    assert "nqba_job_queue_depth" in body


def test_unknown_path_answers_404_in_the_error_format(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    assert len(client.get("/healthz").headers["x-request-id"]) == 32


def test_an_unreachable_database_answers_503_with_a_reason_not_500(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    built = build_services(platform_settings(f"sqlite:///{folder / 'nqba.db'}"), migrate=True)
    try:
        with built.session_factory.begin() as session:
            org = create_organisation(session, "acme")
            user = create_user(session, org.id, "a@acme.test", "correct horse battery", "owner")
            token = issue_access_token(built.settings, principal_of(user))
        with TestClient(create_app(built)) as client:
            built.engine.dispose()
            shutil.rmtree(folder)
            response = client.get("/api/v1/decisions", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "database_unavailable"
            assert response.headers["Retry-After"] == "1"
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"].startswith("unreachable")
    finally:
        built.close()
