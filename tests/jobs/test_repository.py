"""Job rows on SQLite and PostgreSQL: claim rules, progress, finish, cancel."""

from __future__ import annotations

import threading

import pytest

from nqba.jobs.repository import (
    JobAlreadyFinished,
    JobCancelled,
    JobSuperseded,
    claim,
    finish,
    get_job,
    reclaim_allowed,
    report_progress,
    request_cancel,
)
from nqba.services import Services
from nqba.store.models import AuditLeaf, Decision, Job
from nqba.store.session import read_session, write_transaction
from tests.jobs.work import submit
from tests.support.platform import CallerFactory


@pytest.fixture
def job_ids(services: Services, make_caller: CallerFactory) -> tuple[str, str]:
    """A queued job (not handed to any runner): (decision id, job id)."""
    caller = make_caller("analyst")
    return submit(services, caller.organisation_id, caller.user_id, runner=None)


def _job(services: Services, job_id: str) -> Job:
    with read_session(services.session_factory) as session:
        job = get_job(session, job_id)
        assert job is not None
        return job


def _decision(services: Services, decision_id: str) -> Decision:
    with read_session(services.session_factory) as session:
        return session.get_one(Decision, decision_id)


def test_a_new_job_is_queued_with_no_attempts(services: Services, job_ids: tuple[str, str]) -> None:
    job = _job(services, job_ids[1])
    assert (job.status, job.attempts, job.progress, job.cancel_requested) == (
        "queued",
        0,
        0.0,
        False,
    )
    assert job.decision_id == job_ids[0]


def test_claim_takes_a_queued_job_once_and_marks_it_and_its_decision_running(
    services: Services, job_ids: tuple[str, str]
) -> None:
    decision_id, job_id = job_ids
    with write_transaction(services.session_factory) as session:
        job = claim(session, job_id)
    assert job is not None
    assert (job.status, job.attempts) == ("running", 1)
    assert job.started_at is not None
    assert _decision(services, decision_id).status == "running"
    with write_transaction(services.session_factory) as session:
        assert claim(session, job_id) is None  # a fresh delivery never takes a running job
    assert _job(services, job_id).attempts == 1


def test_a_running_job_is_claimed_again_only_on_redelivery(
    services: Services, job_ids: tuple[str, str]
) -> None:
    job_id = job_ids[1]
    with write_transaction(services.session_factory) as session:
        assert claim(session, job_id) is not None
    report_progress(services.session_factory, job_id, 0.5, "half way, then the worker died")
    with reclaim_allowed(), write_transaction(services.session_factory) as session:
        again = claim(session, job_id)
    assert again is not None
    assert (again.status, again.attempts, again.progress) == ("running", 2, 0.0)


def test_a_finished_job_is_never_claimed_again(
    services: Services, job_ids: tuple[str, str]
) -> None:
    job_id = job_ids[1]
    with write_transaction(services.session_factory) as session:
        job = claim(session, job_id)
        assert job is not None
        finish(session, job, "succeeded", "done")
    for reclaim in (False, True):
        with write_transaction(services.session_factory) as session:
            assert claim(session, job_id, reclaim=reclaim) is None
    assert _job(services, job_id).status == "succeeded"


def test_an_unknown_job_is_not_claimed(services: Services) -> None:
    with write_transaction(services.session_factory) as session:
        assert claim(session, "no-such-job", reclaim=True) is None


def test_two_claimers_racing_for_one_queued_job_only_one_wins(
    services: Services, job_ids: tuple[str, str]
) -> None:
    job_id = job_ids[1]
    barrier = threading.Barrier(2)
    results: list[int | None] = []
    lock = threading.Lock()

    def claimer() -> None:
        barrier.wait()
        with write_transaction(services.session_factory) as session:
            job = claim(session, job_id)
            attempts = None if job is None else job.attempts
        with lock:
            results.append(attempts)

    threads = [threading.Thread(target=claimer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results, key=lambda r: r is None) == [1, None]
    assert _job(services, job_id).attempts == 1


def test_finish_by_an_attempt_that_was_taken_over_is_refused(
    services: Services, job_ids: tuple[str, str]
) -> None:
    job_id = job_ids[1]
    with write_transaction(services.session_factory) as session:
        first = claim(session, job_id)
    with write_transaction(services.session_factory) as session:
        second = claim(session, job_id, reclaim=True)
    assert first is not None
    assert second is not None
    with pytest.raises(JobSuperseded), write_transaction(services.session_factory) as session:
        finish(session, first, "succeeded", "done by the first attempt")
    with write_transaction(services.session_factory) as session:
        done = finish(session, second, "succeeded", "done by the second attempt")
    assert (done.status, done.attempts, done.progress) == ("succeeded", 2, 1.0)
    assert _job(services, job_id).message == "done by the second attempt"


def test_report_progress_records_the_fraction_and_message(
    services: Services, job_ids: tuple[str, str]
) -> None:
    job_id = job_ids[1]
    with write_transaction(services.session_factory) as session:
        claim(session, job_id)
    report_progress(services.session_factory, job_id, 0.25, "a quarter")
    job = _job(services, job_id)
    assert (job.progress, job.message) == (0.25, "a quarter")
    report_progress(services.session_factory, job_id, 7.0, "clamped")
    assert _job(services, job_id).progress == 1.0
    with pytest.raises(ValueError, match="NaN"):
        report_progress(services.session_factory, job_id, float("nan"), "no")


def test_report_progress_raises_job_cancelled_once_cancel_is_requested(
    services: Services, job_ids: tuple[str, str]
) -> None:
    job_id = job_ids[1]
    with write_transaction(services.session_factory) as session:
        claim(session, job_id)
    with write_transaction(services.session_factory) as session:
        job = request_cancel(session, session.get_one(Job, job_id), audit=services.audit)
    assert (job.status, job.cancel_requested) == ("running", True)
    with pytest.raises(JobCancelled):
        report_progress(services.session_factory, job_id, 0.5, "still going")


def test_report_progress_on_a_job_finished_elsewhere_raises_superseded(
    services: Services, job_ids: tuple[str, str]
) -> None:
    job_id = job_ids[1]
    with write_transaction(services.session_factory) as session:
        job = claim(session, job_id)
        assert job is not None
        finish(session, job, "failed", "gave up")
    with pytest.raises(JobSuperseded):
        report_progress(services.session_factory, job_id, 0.5, "late")


def test_cancelling_a_queued_job_cancels_it_and_its_decision_with_an_audit_leaf(
    services: Services, job_ids: tuple[str, str]
) -> None:
    decision_id, job_id = job_ids
    with write_transaction(services.session_factory) as session:
        job = request_cancel(session, session.get_one(Job, job_id), audit=services.audit)
    assert job.status == "cancelled"
    assert job.finished_at is not None
    decision = _decision(services, decision_id)
    assert decision.status == "cancelled"
    assert decision.audit_seq is not None
    with read_session(services.session_factory) as session:
        leaf = session.get_one(AuditLeaf, decision.audit_seq)
        assert leaf.decision_id == decision_id
        assert '"status":"cancelled"' in leaf.payload
    with write_transaction(services.session_factory) as session:
        assert claim(session, job_id, reclaim=True) is None


def test_cancelling_a_finished_job_raises_already_finished(
    services: Services, job_ids: tuple[str, str]
) -> None:
    job_id = job_ids[1]
    with write_transaction(services.session_factory) as session:
        job = claim(session, job_id)
        assert job is not None
        finish(session, job, "succeeded", "done")
    with (
        pytest.raises(JobAlreadyFinished, match="already succeeded"),
        write_transaction(services.session_factory) as session,
    ):
        request_cancel(session, session.get_one(Job, job_id), audit=services.audit)


def test_finish_refuses_a_status_that_is_not_final(
    services: Services, job_ids: tuple[str, str]
) -> None:
    with write_transaction(services.session_factory) as session:
        job = claim(session, job_ids[1])
        assert job is not None
        with pytest.raises(ValueError, match="not a final job status"):
            finish(session, job, "running", "no")  # type: ignore[arg-type]
