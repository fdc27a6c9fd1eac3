"""``nqba worker`` refuses a configuration it cannot run, and the Celery app's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nqba.jobs.celery_app import DEFAULT_WORK, TASK_NAME, WorkLoadError, load_work, make_celery
from nqba.jobs.runners import JobsConfigError
from tests.support.platform import platform_settings

NQBA = Path(sys.executable).with_name("nqba")


def _worker(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NQBA_")}
    return subprocess.run(
        [str(NQBA), "worker"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_worker_with_in_process_jobs_refuses_with_one_line_and_exit_code_2() -> None:
    result = _worker(NQBA_JOBS="inprocess", NQBA_REDIS_URL="redis://127.0.0.1:6379/14")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: nqba worker runs Celery jobs, but NQBA_JOBS is")
    assert "NQBA_JOBS=celery" in result.stderr


def test_worker_without_a_broker_url_refuses_naming_the_settings() -> None:
    result = _worker(NQBA_JOBS="celery")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "NQBA_CELERY_BROKER_URL or NQBA_REDIS_URL" in result.stderr


def test_worker_with_an_unimportable_work_function_refuses_before_starting() -> None:
    result = _worker(
        NQBA_JOBS="celery",
        NQBA_REDIS_URL="redis://127.0.0.1:6379/14",
        NQBA_JOB_WORK="tests.jobs.nowhere:work",
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: NQBA_JOB_WORK: cannot import 'tests.jobs.nowhere'")


def test_worker_rejects_a_zero_concurrency_as_a_usage_error() -> None:
    result = subprocess.run(
        [str(NQBA), "worker", "--concurrency", "0"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "--concurrency" in result.stderr


def test_celery_app_acknowledges_late_and_takes_its_limits_from_the_settings() -> None:
    settings = platform_settings(
        "sqlite://",
        jobs="celery",
        redis_url="redis://127.0.0.1:6379/14",
        celery_visibility_timeout_s=900,
        job_time_limit_s=600,
        job_max_retries=5,
    )
    app = make_celery(settings)
    try:
        conf = app.conf
        assert conf.broker_url == conf.result_backend == "redis://127.0.0.1:6379/14"
        assert conf.task_acks_late is True
        assert conf.task_reject_on_worker_lost is True
        assert conf.worker_prefetch_multiplier == 1
        assert (conf.task_soft_time_limit, conf.task_time_limit) == (540, 600)
        assert conf.broker_transport_options["visibility_timeout"] == 900
        task = app.tasks[TASK_NAME]
        assert task.acks_late is True
        assert task.reject_on_worker_lost is True
        assert task.max_retries == 5
        assert task.time_limit == 600
        assert {e.__name__ for e in task.autoretry_for} == {
            "OperationalError",
            "ConnectionError",
            "TimeoutError",
        }
    finally:
        app.close()


def test_celery_app_without_a_broker_is_refused() -> None:
    with pytest.raises(JobsConfigError, match="NQBA_CELERY_BROKER_URL or NQBA_REDIS_URL"):
        make_celery(platform_settings("sqlite://", jobs="celery"))


def test_work_function_defaults_to_the_decision_job_and_bad_paths_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NQBA_JOB_WORK", raising=False)
    from nqba.decisions.service import run_job

    assert DEFAULT_WORK == "nqba.decisions.service:run_job"
    assert load_work() is run_job
    assert load_work("tests.jobs.work.slow_job").__name__ == "slow_job"
    with pytest.raises(WorkLoadError, match="has no function 'nothing'"):
        load_work("tests.jobs.work:nothing")
    with pytest.raises(WorkLoadError, match="not of the form module:function"):
        load_work("slow_job")


def test_the_celery_command_finds_the_app_in_the_module() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NQBA_")}
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "nqba.jobs.celery_app", "report"],
        env={**clean, "NQBA_JOBS": "celery", "NQBA_REDIS_URL": "redis://127.0.0.1:6379/14"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "task_acks_late: True" in result.stdout
    assert "task_reject_on_worker_lost: True" in result.stdout
