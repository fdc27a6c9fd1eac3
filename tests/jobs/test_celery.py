"""The Celery path for real: jobs sent to the Redis at 127.0.0.1:6379 (one database per
pytest-xdist worker, 14 down, flushed first)
and run by ``nqba worker`` processes, on a SQLite file and on a PostgreSQL schema.

The work function is the tests' slow job (``NQBA_JOB_WORK``), which claims the job, reports
progress in steps and finishes it with its decision and audit leaf.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from nqba.config import Settings
from nqba.jobs.repository import get_job
from nqba.services import Services, build_services
from nqba.store.models import Decision, Job
from nqba.store.session import read_session
from tests.jobs.work import submit
from tests.support.platform import CallerFactory, platform_settings

pytestmark = pytest.mark.celery


def _redis_db() -> int:
    """A Redis database of this xdist worker's own: parallel workers flush and queue apart."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    return 14 - (int(worker) if worker.isdigit() else 0) % 8


REDIS_URL = f"redis://127.0.0.1:6379/{_redis_db()}"
REPO_ROOT = Path(__file__).resolve().parents[2]
NQBA = Path(sys.executable).with_name("nqba")
VISIBILITY_TIMEOUT_S = 4.0
FINISHED = {"succeeded", "failed", "cancelled"}


def _settings(database_url: str) -> Settings:
    return platform_settings(
        database_url,
        jobs="celery",
        celery_broker_url=REDIS_URL,
        celery_visibility_timeout_s=VISIBILITY_TIMEOUT_S,
        job_time_limit_s=60.0,
        job_max_retries=3,
    )


class Worker:
    """An ``nqba worker`` process (its own process group) with its log in a file."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NQBA_")}
        env.update(
            {
                "NQBA_ENVIRONMENT": settings.environment,
                "NQBA_DATABASE_URL": settings.database_url,
                "NQBA_SECRET_KEY": settings.secret_key,
                "NQBA_AUDIT_SIGNING_KEY": settings.audit_signing_key,
                "NQBA_JOBS": "celery",
                "NQBA_CELERY_BROKER_URL": REDIS_URL,
                "NQBA_CELERY_VISIBILITY_TIMEOUT_S": str(settings.celery_visibility_timeout_s),
                "NQBA_JOB_TIME_LIMIT_S": str(settings.job_time_limit_s),
                "NQBA_JOB_MAX_RETRIES": str(settings.job_max_retries),
                "NQBA_LOG_JSON": "false",
                "NQBA_JOB_WORK": "tests.jobs.work:slow_job",
                "PYTHONPATH": os.pathsep.join(
                    [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
                ),
            }
        )
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(NQBA), "worker", "--concurrency", "1", "--loglevel", "info"],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL the whole worker: its main process and its pool process."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL whatever is left of the group."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """The real Redis, its test database flushed; fails (not skips) when Redis is down."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as e:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {e}")
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def celery_services(database_url: str, broker: redis.Redis) -> Iterator[Services]:
    """Services of the API side: a migrated database and the Celery runner."""
    built = build_services(_settings(database_url), migrate=True)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def workers(celery_services: Services, tmp_path: Path) -> Iterator[list[Worker]]:
    """Started workers, stopped (killed if need be) after the test."""
    started: list[Worker] = []
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def _start(workers: list[Worker], services: Services, tmp_path: Path, **overrides: float) -> Worker:
    """Start a worker with the services' settings, some changed by ``overrides``."""
    settings = services.settings.model_copy(update=overrides)
    worker = Worker(settings, tmp_path / f"worker-{len(workers)}.log")
    workers.append(worker)
    return worker


def _job(services: Services, job_id: str) -> Job:
    with read_session(services.session_factory) as session:
        job = get_job(session, job_id)
    assert job is not None
    return job


def _wait(
    services: Services, job_id: str, done: str, workers: list[Worker], timeout_s: float = 30
) -> Job:
    """Poll the job until ``done`` says so ("progress" or "finished")."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = _job(services, job_id)
        if (done == "progress" and job.status == "running" and job.progress > 0) or (
            done == "finished" and job.status in FINISHED
        ):
            return job
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.log_path.name}\n{w.log_tail()}" for w in workers)
            pytest.fail(f"job {job.status} ({job.message}) after {timeout_s} s\n{logs}")
        time.sleep(0.1)


def _decision(services: Services, decision_id: str) -> Decision:
    with read_session(services.session_factory) as session:
        return session.get_one(Decision, decision_id)


def _pool_pid(job: Job) -> int:
    match = re.search(r"pid (\d+)", job.message)
    assert match, job.message
    return int(match.group(1))


def test_a_job_runs_to_completion_in_a_celery_worker_process(
    celery_services: Services, workers: list[Worker], make_caller: CallerFactory, tmp_path: Path
) -> None:
    services = celery_services
    _start(workers, services, tmp_path)
    caller = make_caller("analyst")
    decision_id, job_id = submit(
        services, caller.organisation_id, caller.user_id, runner=services.jobs, steps=4, step_s=0.1
    )
    job = _wait(services, job_id, "finished", workers)
    assert (job.status, job.attempts, job.progress, job.runner) == ("succeeded", 1, 1.0, "celery")
    decision = _decision(services, decision_id)
    assert decision.status == "succeeded"
    assert decision.audit_seq is not None
    assert decision.outputs is not None
    assert decision.outputs["pid"] != os.getpid()  # it ran in the worker, not here


def test_a_worker_killed_mid_job_does_not_lose_the_job(
    celery_services: Services, workers: list[Worker], make_caller: CallerFactory, tmp_path: Path
) -> None:
    services = celery_services
    worker_a = _start(workers, services, tmp_path)
    caller = make_caller("analyst")
    decision_id, job_id = submit(
        services, caller.organisation_id, caller.user_id, runner=services.jobs, steps=12, step_s=0.2
    )
    running = _wait(services, job_id, "progress", workers)
    pid_a = _pool_pid(running)
    worker_a.kill()
    assert _job(services, job_id).status == "running"  # nobody finishes it for A

    _start(workers, services, tmp_path)  # worker B gets the message after the visibility timeout
    job = _wait(services, job_id, "finished", workers)
    assert (job.status, job.attempts, job.progress) == ("succeeded", 2, 1.0)
    decision = _decision(services, decision_id)
    assert decision.status == "succeeded"
    assert decision.outputs is not None
    assert decision.outputs["attempt"] == 2
    assert decision.outputs["pid"] != pid_a
    assert decision.audit_seq is not None


def test_a_pool_process_killed_mid_job_is_requeued_at_once_by_its_worker(
    celery_services: Services, workers: list[Worker], make_caller: CallerFactory, tmp_path: Path
) -> None:
    services = celery_services
    # A long visibility timeout: the job can only come back this soon by being rejected back
    # to the queue when the worker sees its pool process die (task_reject_on_worker_lost).
    worker = _start(workers, services, tmp_path, celery_visibility_timeout_s=60)
    caller = make_caller("analyst")
    _, job_id = submit(
        services, caller.organisation_id, caller.user_id, runner=services.jobs, steps=12, step_s=0.2
    )
    running = _wait(services, job_id, "progress", workers)
    killed_at = time.monotonic()
    os.kill(_pool_pid(running), signal.SIGKILL)
    job = _wait(services, job_id, "finished", workers)
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert time.monotonic() - killed_at < 30  # billiard notices a dead child within ~5 s
    assert "WorkerLostError" in worker.log_tail()


def test_a_transient_redis_error_in_the_work_is_retried_with_backoff(
    celery_services: Services, workers: list[Worker], make_caller: CallerFactory, tmp_path: Path
) -> None:
    services = celery_services
    _start(workers, services, tmp_path, celery_visibility_timeout_s=60.0)  # see the next test
    caller = make_caller("analyst")
    decision_id, job_id = submit(
        services,
        caller.organisation_id,
        caller.user_id,
        runner=services.jobs,
        steps=2,
        step_s=0.05,
        transient_until_attempt=1,
    )
    job = _wait(services, job_id, "finished", workers)
    assert (job.status, job.attempts) == ("succeeded", 2)
    assert _decision(services, decision_id).status == "succeeded"
    log = workers[0].log_tail()
    assert re.search(r"nqba\.jobs\.run\[[^]]+\] retry: Retry in \d+s: \S*ConnectionError", log), log


def test_a_job_whose_transient_errors_outlast_its_retries_fails_with_the_error(
    celery_services: Services, workers: list[Worker], make_caller: CallerFactory, tmp_path: Path
) -> None:
    services = celery_services
    # No worker dies here: a visibility timeout well above the retry's countdown keeps a
    # slow machine from delivering the retry message a second time (an extra attempt).
    _start(workers, services, tmp_path, job_max_retries=1, celery_visibility_timeout_s=60.0)
    caller = make_caller("analyst")
    decision_id, job_id = submit(
        services,
        caller.organisation_id,
        caller.user_id,
        runner=services.jobs,
        transient_until_attempt=99,
    )
    job = _wait(services, job_id, "finished", workers)
    assert (job.status, job.attempts) == ("failed", 2)  # the first try and one retry
    assert job.message.startswith("ConnectionError: ")
    decision = _decision(services, decision_id)
    assert decision.status == "failed"
    assert decision.audit_seq is not None


def test_a_job_past_its_time_limit_is_stopped_and_failed(
    celery_services: Services, workers: list[Worker], make_caller: CallerFactory, tmp_path: Path
) -> None:
    services = celery_services
    _start(workers, services, tmp_path, job_time_limit_s=2.0)
    caller = make_caller("analyst")
    decision_id, job_id = submit(
        services, caller.organisation_id, caller.user_id, runner=services.jobs, steps=50, step_s=0.1
    )
    job = _wait(services, job_id, "finished", workers)
    assert (job.status, job.attempts) == ("failed", 1)
    assert job.message == "JobTimeLimitError: the job ran past its time limit of 1.8 s"
    assert 0 < job.progress < 1
    assert _decision(services, decision_id).status == "failed"
