"""The jobs API on SQLite and PostgreSQL: read, cancel, and follow a job as server-sent events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import partial

import anyio
import pytest
from fastapi.testclient import TestClient

from nqba.api.routes.jobs import job_event_stream
from nqba.authz import Role
from nqba.jobs.repository import claim
from nqba.jobs.runners import InProcessRunner
from nqba.services import Services
from nqba.store.models import Decision
from nqba.store.session import read_session, write_transaction
from tests.jobs.work import slow_job, submit
from tests.support.platform import Caller, CallerFactory


@pytest.fixture
def runner(services: Services) -> Iterator[InProcessRunner]:
    """An in-process runner whose work is the tests' slow job."""
    built = InProcessRunner(partial(slow_job, services), services.session_factory, services.audit)
    try:
        yield built
    finally:
        built.close()


def _queued_job(services: Services, caller: Caller, unit: str = "finance") -> tuple[str, str]:
    return submit(services, caller.organisation_id, caller.user_id, runner=None, unit=unit)


def _events(body: str) -> list[tuple[str, dict[str, object]]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = [line for line in block.split("\n") if not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def _wait_running_with_progress(client: TestClient, caller: Caller, job_id: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}", headers=caller.headers).json()
        if job["status"] == "running" and job["progress"] > 0:
            return
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_a_viewer_reads_the_job_state(
    client: TestClient, services: Services, make_caller: CallerFactory
) -> None:
    viewer = make_caller(Role.VIEWER)
    decision_id, job_id = _queued_job(services, viewer)
    response = client.get(f"/api/v1/jobs/{job_id}", headers=viewer.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == job_id
    assert body["decision_id"] == decision_id
    assert (body["status"], body["progress"], body["attempts"]) == ("queued", 0.0, 0)
    assert body["cancel_requested"] is False
    assert body["started_at"] is None
    assert body["finished_at"] is None
    assert set(body) == {
        "id",
        "decision_id",
        "status",
        "progress",
        "message",
        "attempts",
        "cancel_requested",
        "runner",
        "created_at",
        "started_at",
        "finished_at",
        "updated_at",
    }


def test_another_organisations_job_answers_404_on_every_route(
    client: TestClient, services: Services, make_caller: CallerFactory
) -> None:
    owner = make_caller(Role.OWNER, organisation="acme")
    stranger = make_caller(Role.OWNER, organisation="globex")
    _, job_id = _queued_job(services, owner)
    for method, path in (
        ("GET", f"/api/v1/jobs/{job_id}"),
        ("POST", f"/api/v1/jobs/{job_id}/cancel"),
        ("GET", f"/api/v1/jobs/{job_id}/events"),
    ):
        response = client.request(method, path, headers=stranger.headers)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "not_found"
    assert client.get(f"/api/v1/jobs/{job_id}", headers=owner.headers).json()["status"] == "queued"


def test_an_unknown_job_answers_404(client: TestClient, make_caller: CallerFactory) -> None:
    owner = make_caller(Role.OWNER)
    response = client.get("/api/v1/jobs/no-such-job", headers=owner.headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_job_without_credentials_answers_401(
    client: TestClient, services: Services, make_caller: CallerFactory
) -> None:
    _, job_id = _queued_job(services, make_caller(Role.OWNER))
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 401
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 401


@pytest.mark.parametrize("role", [Role.VIEWER, Role.AUDITOR])
def test_a_role_that_cannot_decide_cannot_cancel_and_gets_403(
    client: TestClient, services: Services, make_caller: CallerFactory, role: Role
) -> None:
    caller = make_caller(role)
    _, job_id = _queued_job(services, caller)
    response = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=caller.headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "finance:decide" in response.json()["error"]["reason"]
    assert client.get(f"/api/v1/jobs/{job_id}", headers=caller.headers).json()["status"] == "queued"


def test_cancelling_a_queued_job_answers_202_and_cancels_its_decision(
    client: TestClient, services: Services, make_caller: CallerFactory
) -> None:
    analyst = make_caller(Role.ANALYST)
    decision_id, job_id = _queued_job(services, analyst, unit="energy")
    response = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=analyst.headers)
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["cancel_requested"]) == ("cancelled", True)
    assert body["finished_at"] is not None
    with read_session(services.session_factory) as session:
        decision = session.get_one(Decision, decision_id)
        assert decision.status == "cancelled"
        assert decision.audit_seq is not None


def test_cancelling_a_running_job_answers_202_and_the_job_ends_cancelled(
    client: TestClient, services: Services, make_caller: CallerFactory, runner: InProcessRunner
) -> None:
    analyst = make_caller(Role.ANALYST)
    _, job_id = submit(
        services, analyst.organisation_id, analyst.user_id, runner=runner, steps=200, step_s=0.05
    )
    _wait_running_with_progress(client, analyst, job_id)
    response = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=analyst.headers)
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)
    with client.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=analyst.headers) as stream:
        events = _events(stream.read().decode())
    final = events[-1][1]
    assert final["status"] == "cancelled"
    assert isinstance(final["progress"], float)
    assert final["progress"] < 1


def test_cancelling_a_finished_job_answers_409(
    client: TestClient, services: Services, make_caller: CallerFactory
) -> None:
    owner = make_caller(Role.OWNER)
    _, job_id = _queued_job(services, owner)
    first = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=owner.headers)
    assert first.status_code == 202
    again = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=owner.headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_finished"
    assert again.json()["error"]["details"] == {"status": "cancelled"}


def test_the_event_stream_follows_progress_and_ends_with_the_final_status(
    client: TestClient, services: Services, make_caller: CallerFactory, runner: InProcessRunner
) -> None:
    viewer = make_caller(Role.VIEWER)
    _, job_id = submit(
        services, viewer.organisation_id, viewer.user_id, runner=runner, steps=5, step_s=0.4
    )
    with client.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=viewer.headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = _events(stream.read().decode())
    assert all(name == "job" for name, _ in events)
    states = [data for _, data in events]
    progress = [float(str(s["progress"])) for s in states]
    assert progress == sorted(progress)
    assert any(0 < p < 1 for p in progress), states
    assert len({(s["status"], s["progress"], s["message"]) for s in states}) == len(states)
    assert (states[-1]["status"], states[-1]["progress"], states[-1]["attempts"]) == (
        "succeeded",
        1.0,
        1,
    )


def test_the_event_stream_of_a_finished_job_is_one_event(
    client: TestClient, services: Services, make_caller: CallerFactory
) -> None:
    owner = make_caller(Role.OWNER)
    _, job_id = _queued_job(services, owner)
    client.post(f"/api/v1/jobs/{job_id}/cancel", headers=owner.headers)
    with client.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=owner.headers) as stream:
        events = _events(stream.read().decode())
    assert [(name, data["status"]) for name, data in events] == [("job", "cancelled")]


def test_the_event_stream_sends_heartbeats_while_quiet_and_stops_when_the_client_leaves(
    services: Services, make_caller: CallerFactory
) -> None:
    owner = make_caller(Role.OWNER)
    _, job_id = _queued_job(services, owner)
    with write_transaction(services.session_factory) as session:
        claim(session, job_id)
    polls = 0

    async def disconnected_after_polls() -> bool:
        nonlocal polls
        polls += 1
        return polls > 8

    async def collect() -> list[str]:
        stream = job_event_stream(
            services.session_factory,
            job_id,
            disconnected_after_polls,
            poll_interval_s=0.05,
            heartbeat_interval_s=0.1,
        )
        return [chunk async for chunk in stream]

    chunks = anyio.run(collect)
    assert chunks[0].startswith("event: job\n")
    assert '"status":"running"' in chunks[0]
    heartbeats = [c for c in chunks if c == ": heartbeat\n\n"]
    assert len(heartbeats) >= 2
    assert len(chunks) == 1 + len(heartbeats)  # nothing changed, so no second event
    assert polls == 9  # it asked once more, was told the client left, and stopped
