"""A restarted in-process server picks up the jobs its previous process left unfinished."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import update

from nqba.api.app import create_app
from nqba.auth.service import create_organisation
from nqba.decisions.records import digest
from nqba.jobs.repository import create_job
from nqba.services import build_services
from nqba.store.base import utcnow
from nqba.store.models import AuditLeaf, Decision, Job
from tests.support.platform import platform_settings

REQUEST = {
    "market": {
        "assets": ["A", "B"],
        "expected_returns": [0.1, 0.05],
        "covariance": [[0.04, 0.0], [0.0, 0.01]],
    }
}


def test_jobs_left_queued_or_running_by_a_stopped_server_are_run_at_the_next_start(
    database_url: str,
) -> None:
    settings = platform_settings(database_url)
    old = build_services(settings, migrate=True)
    ids = []
    with old.session_factory.begin() as session:
        org = create_organisation(session, "acme")
        for status in ("queued", "running"):
            decision = Decision(
                organisation_id=org.id,
                unit="finance",
                kind="portfolio-optimization",
                status="queued",
                actor_kind="user",
                actor_id="someone",
                inputs=REQUEST,
                inputs_digest=digest(REQUEST),
                model_version="finance/1",
                created_at=utcnow(),
            )
            session.add(decision)
            session.flush()
            job = create_job(
                session, organisation_id=org.id, decision_id=decision.id, runner="inprocess"
            )
            session.execute(update(Job).where(Job.id == job.id).values(status=status))
            ids.append(job.id)
    old.close()  # the old server is gone; its jobs were never run

    with TestClient(create_app(settings=settings)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with services.session_factory() as session:
                statuses = [session.get_one(Job, i, populate_existing=True).status for i in ids]
            if all(s == "succeeded" for s in statuses):
                break
            time.sleep(0.05)
        assert statuses == ["succeeded", "succeeded"]
        with services.session_factory() as session:
            for job_id in ids:
                decision = session.get_one(Decision, session.get_one(Job, job_id).decision_id)
                assert decision.status == "succeeded"
                assert session.get(AuditLeaf, decision.audit_seq) is not None
