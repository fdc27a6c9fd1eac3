"""Liveness, readiness and metrics answer on both databases."""

from __future__ import annotations

from fastapi.testclient import TestClient


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
