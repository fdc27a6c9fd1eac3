"""Work functions of the job tests, and a helper that submits a job as the API would.

They do real work on the real database, through the same repository functions a decision
job uses: claim the job, report progress in steps, stop when cancellation is requested,
and finish the job together with its decision and audit leaf in one write transaction. The
Celery tests run them in real worker processes through ``NQBA_JOB_WORK``.

The decision's ``inputs`` parametrise them: ``steps`` and ``step_s`` (how long), and
``transient_until_attempt`` (attempts up to this one hit a real Redis connection error
first, which the Celery task retries).
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from nqba.decisions.records import decision_record, digest
from nqba.jobs.repository import (
    JobCancelled,
    claim,
    create_job,
    finish,
    report_progress,
)
from nqba.jobs.runners import JobRunner, enqueue_after_commit
from nqba.services import Services
from nqba.store.base import utcnow
from nqba.store.models import Decision
from nqba.store.session import write_transaction

CLOSED_PORT = 1
"""Nothing listens on port 1: connecting there is a real, immediate ConnectionError."""


def submit(
    services: Services,
    organisation_id: str,
    actor_id: str,
    *,
    runner: JobRunner | None,
    unit: str = "finance",
    **inputs: Any,
) -> tuple[str, str]:
    """Create a queued decision and its job in one transaction; hand the job to ``runner``
    after the commit (or to no runner: it stays queued). Returns (decision id, job id)."""
    with write_transaction(services.session_factory) as session:
        decision = Decision(
            organisation_id=organisation_id,
            unit=unit,
            kind="test-job",
            status="queued",
            actor_kind="user",
            actor_id=actor_id,
            inputs=inputs,
            inputs_digest=digest(inputs),
            model_version="test",
        )
        session.add(decision)
        session.flush()
        job = create_job(
            session,
            organisation_id=organisation_id,
            decision_id=decision.id,
            runner=runner.name if runner is not None else "none",
        )
        if runner is not None:
            enqueue_after_commit(session, runner, job.id)
        return decision.id, job.id


def slow_job(services: Services, job_id: str) -> None:
    """Claim the job, sleep ``steps`` x ``step_s`` reporting progress, then succeed.

    The outputs record which attempt and which process finished it. A JobCancelled from a
    progress report is left to the runner, which finishes the job cancelled.
    """
    factory = services.session_factory
    with write_transaction(factory) as session:
        job = claim(session, job_id)
        if job is None:
            return
        decision = session.get_one(Decision, job.decision_id)
        inputs = dict(decision.inputs)
    if job.cancel_requested:
        raise JobCancelled(job_id)
    if int(inputs.get("transient_until_attempt", 0)) >= job.attempts:
        redis.Redis(host="127.0.0.1", port=CLOSED_PORT, socket_connect_timeout=1).ping()
    steps, step_s = int(inputs.get("steps", 3)), float(inputs.get("step_s", 0.1))
    pid = os.getpid()
    for step in range(1, steps + 1):
        time.sleep(step_s)
        message = f"step {step} of {steps} (attempt {job.attempts}, pid {pid})"
        report_progress(factory, job_id, step / steps, message)
    with write_transaction(factory) as session:
        finish(session, job, "succeeded", "done")
        decision = session.get_one(Decision, job.decision_id)
        decision.status = "succeeded"
        decision.outputs = {"attempt": job.attempts, "pid": pid, "steps": steps}
        decision.completed_at = utcnow()
        session.flush()
        leaf = services.audit.append(
            session,
            organisation_id=decision.organisation_id,
            decision_id=decision.id,
            record=decision_record(decision),
        )
        decision.audit_seq = leaf.seq


def failing_job(services: Services, job_id: str) -> None:
    """Claim the job, report a first step, then fail with an error of the work's own."""
    with write_transaction(services.session_factory) as session:
        job = claim(session, job_id)
        if job is None:
            return
    report_progress(services.session_factory, job_id, 0.5, "half way")
    raise ValueError("the model has no feasible point")
