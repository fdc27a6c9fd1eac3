"""The in-process runner and enqueue-after-commit, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial

import pytest

from nqba.config import Settings
from nqba.jobs.repository import get_job, request_cancel
from nqba.jobs.runners import (
    CeleryRunner,
    InProcessRunner,
    JobsConfigError,
    enqueue_after_commit,
    make_runner,
)
from nqba.services import Services
from nqba.store.models import AuditLeaf, Decision, Job
from nqba.store.session import make_engine, make_session_factory, read_session, write_transaction
from nqba.telemetry.metrics import REGISTRY
from tests.jobs.work import failing_job, slow_job, submit
from tests.support.platform import CallerFactory, platform_settings


@pytest.fixture
def runner(services: Services) -> Iterator[InProcessRunner]:
    """An in-process runner whose work is the tests' slow job."""
    built = InProcessRunner(partial(slow_job, services), services.session_factory, services.audit)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def owner(services: Services, make_caller: CallerFactory) -> tuple[str, str]:
    """(organisation id, user id) of the jobs' owner."""
    caller = make_caller("owner")
    return caller.organisation_id, caller.user_id


class CommitCheckingRunner:
    """A runner that records each id it gets and whether the job row was visible (committed)
    to another session at that moment."""

    name = "commit-check"

    def __init__(self, services: Services) -> None:
        self.services = services
        self.received: list[tuple[str, bool]] = []

    def enqueue(self, job_id: str) -> None:
        with read_session(self.services.session_factory) as session:
            self.received.append((job_id, get_job(session, job_id) is not None))

    def close(self) -> None:
        pass


def _wait_for(services: Services, job_id: str, statuses: set[str], timeout_s: float = 20) -> Job:
    deadline = time.monotonic() + timeout_s
    while True:
        with read_session(services.session_factory) as session:
            job = get_job(session, job_id)
        assert job is not None
        if job.status in statuses:
            return job
        assert time.monotonic() < deadline, f"job still {job.status}: {job.message}"
        time.sleep(0.05)


def _succeeded_count() -> float:
    labels = {"runner": "inprocess", "outcome": "succeeded"}
    return REGISTRY.get_sample_value("nqba_jobs_total", labels) or 0.0


def _decision(services: Services, decision_id: str) -> Decision:
    with read_session(services.session_factory) as session:
        return session.get_one(Decision, decision_id)


def test_a_job_is_handed_to_the_runner_only_after_its_transaction_commits(
    services: Services, owner: tuple[str, str]
) -> None:
    checking = CommitCheckingRunner(services)
    _, job_id = submit(services, *owner, runner=checking)
    assert checking.received == [(job_id, True)]


def test_a_rolled_back_job_is_never_run(
    services: Services, owner: tuple[str, str], runner: InProcessRunner
) -> None:
    checking = CommitCheckingRunner(services)
    session = services.session_factory()
    try:
        decision = Decision(
            organisation_id=owner[0],
            unit="finance",
            kind="test-job",
            status="queued",
            actor_kind="user",
            actor_id=owner[1],
            inputs={"steps": 1, "step_s": 0.01},
            inputs_digest="0" * 64,
            model_version="test",
        )
        session.add(decision)
        session.flush()
        job = Job(organisation_id=owner[0], decision_id=decision.id, status="queued", runner="x")
        session.add(job)
        session.flush()
        job_id = job.id
        enqueue_after_commit(session, checking, job_id)
        enqueue_after_commit(session, runner, job_id)
        session.rollback()
        session.commit()  # a later commit of the same session does not revive the dropped ids
    finally:
        session.close()
    runner.close()  # waits for anything that was submitted
    assert checking.received == []
    with read_session(services.session_factory) as read:
        assert read.get(Job, job_id) is None


def test_in_process_job_reports_progress_and_succeeds_with_its_audit_leaf(
    services: Services, owner: tuple[str, str], runner: InProcessRunner
) -> None:
    before = _succeeded_count()
    decision_id, job_id = submit(services, *owner, runner=runner, steps=6, step_s=0.15)
    seen: list[float] = []
    deadline = time.monotonic() + 20
    while True:
        with read_session(services.session_factory) as session:
            job = get_job(session, job_id)
        assert job is not None
        seen.append(job.progress)
        if job.status == "succeeded" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert job.status == "succeeded"
    assert (job.attempts, job.progress, job.message) == (1, 1.0, "done")
    assert any(0 < p < 1 for p in seen), seen
    assert seen == sorted(seen)
    decision = _decision(services, decision_id)
    assert decision.status == "succeeded"
    assert decision.outputs is not None
    assert decision.outputs["attempt"] == 1
    assert decision.audit_seq is not None
    runner.close()  # the runner counts the outcome after the work returns
    assert _succeeded_count() == before + 1


def test_cancelling_a_running_in_process_job_stops_it_at_its_next_progress_report(
    services: Services, owner: tuple[str, str], runner: InProcessRunner
) -> None:
    decision_id, job_id = submit(services, *owner, runner=runner, steps=100, step_s=0.05)
    deadline = time.monotonic() + 20
    while _wait_for(services, job_id, {"running"}).progress == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with write_transaction(services.session_factory) as session:
        request_cancel(session, session.get_one(Job, job_id), audit=services.audit)
    job = _wait_for(services, job_id, {"succeeded", "failed", "cancelled"})
    assert job.status == "cancelled"
    assert job.progress < 1
    decision = _decision(services, decision_id)
    assert decision.status == "cancelled"
    assert decision.audit_seq is not None


def test_a_work_function_that_raises_fails_its_job_and_decision(
    services: Services, owner: tuple[str, str]
) -> None:
    failing = InProcessRunner(
        partial(failing_job, services), services.session_factory, services.audit
    )
    try:
        decision_id, job_id = submit(services, *owner, runner=failing)
        job = _wait_for(services, job_id, {"succeeded", "failed", "cancelled"})
    finally:
        failing.close()
    assert job.status == "failed"
    assert job.message == "ValueError: the model has no feasible point"
    decision = _decision(services, decision_id)
    assert decision.status == "failed"
    assert decision.error == {
        "code": "job_failed",
        "reason": "ValueError: the model has no feasible point",
    }
    with read_session(services.session_factory) as session:
        leaf = session.get_one(AuditLeaf, decision.audit_seq)
        assert leaf.decision_id == decision_id


def test_make_runner_gives_the_runner_the_settings_name() -> None:
    url = "sqlite://"
    factory = make_session_factory(make_engine(url))
    inprocess = make_runner(platform_settings(url), factory, lambda _: None)
    assert isinstance(inprocess, InProcessRunner)
    inprocess.close()
    settings = platform_settings(url, jobs="celery", redis_url="redis://127.0.0.1:6379/14")
    celery = make_runner(settings, factory, lambda _: None)
    assert isinstance(celery, CeleryRunner)
    celery.close()


def test_celery_runner_without_a_broker_url_is_refused_with_the_settings_to_set() -> None:
    settings: Settings = platform_settings("sqlite://", jobs="celery")
    factory = make_session_factory(make_engine("sqlite://"))
    with pytest.raises(JobsConfigError, match="NQBA_CELERY_BROKER_URL or NQBA_REDIS_URL"):
        make_runner(settings, factory, lambda _: None)


def test_importing_nqba_and_its_in_process_services_does_not_import_celery() -> None:
    code = (
        "import sys, nqba, nqba.jobs, nqba.services, nqba.api.app\n"
        "from nqba.jobs.runners import make_runner\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('celery', 'kombu'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
