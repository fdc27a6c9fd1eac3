"""Making decisions: inline for small requests, as jobs for large ones; always audited.

A decision is recorded in the same transaction as its audit leaf. Requests with an
``Idempotency-Key`` store their first answer in that transaction too, so a retry replays it
and never makes a second decision. Solving happens outside any database transaction.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nqba.authz import Principal
from nqba.decisions.records import (
    AnyDecision,
    DecisionDraft,
    append_decision_leaf,
    append_decision_leaves,
    decision_entries,
    digest,
)
from nqba.decisions.registry import (
    DecisionKind,
    Outcome,
    Progress,
    UnknownDecisionKindError,
    get_kind,
    no_progress,
)
from nqba.engine.errors import (
    BackendUnavailableError,
    EngineError,
    ModelTooLargeError,
    UnknownSolverError,
)
from nqba.finance.errors import (
    FinanceError,
    InfeasiblePortfolioError,
    InvalidSpecError,
    OptimizationError,
)
from nqba.jobs.repository import (
    JobCancelled,
    JobSuperseded,
    claim,
    create_job,
    finish,
    report_progress,
)
from nqba.jobs.runners import enqueue_after_commit
from nqba.store.base import new_id, utcnow
from nqba.store.batch import WriteBatch
from nqba.store.group import Joiner, group_writer
from nqba.store.models import Decision, IdempotencyRecord
from nqba.store.session import read_session, write_transaction
from nqba.telemetry.metrics import DECISION_LATENCY, SOLVER_SECONDS
from nqba.telemetry.tracing import span

if TYPE_CHECKING:
    from nqba.audit.log import AuditLog
    from nqba.services import Services

log = logging.getLogger("nqba.decisions")

MAX_IDEMPOTENCY_KEY = 255


class DecisionInputError(Exception):
    """The request cannot be decided as given (bad spec, infeasible, bad model): a 4xx."""

    def __init__(self, code: str, reason: str, details: Any = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.details = details


class IdempotencyConflictError(Exception):
    """The key was used before with a different request."""


@dataclass(frozen=True)
class Reply:
    """What to answer: the status, the JSON body, and whether it replays an earlier answer."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


_FINANCE_CODES: tuple[tuple[type[Exception], str], ...] = (
    (OptimizationError, "solver_failed"),
    (InfeasiblePortfolioError, "infeasible"),
    (InvalidSpecError, "invalid_spec"),
)
_ENGINE_CODES: tuple[tuple[type[Exception], str], ...] = (
    (UnknownSolverError, "unknown_solver"),
    (ModelTooLargeError, "model_too_large"),
    (BackendUnavailableError, "backend_unavailable"),  # missing credentials included
)


def _first_code(
    error: Exception, codes: tuple[tuple[type[Exception], str], ...], other: str
) -> str:
    return next((code for cls, code in codes if isinstance(error, cls)), other)


def classify(error: Exception) -> DecisionInputError | None:
    """The 4xx a domain error means, or None for an error of ours (a bug: 500)."""
    if isinstance(error, DecisionInputError):
        return error
    if isinstance(error, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in error.errors()
        ]
        return DecisionInputError("invalid_request", "; ".join(parts[:5]), error.errors())
    if isinstance(error, UnknownDecisionKindError):
        return DecisionInputError("unknown_decision", str(error))
    if isinstance(error, FinanceError):
        return DecisionInputError(_first_code(error, _FINANCE_CODES, "invalid_data"), str(error))
    if isinstance(error, EngineError):
        code = _first_code(error, _ENGINE_CODES, "invalid_model")
        return DecisionInputError(code, str(error).strip("'\""))
    return None


def request_digest(method: str, path: str, inputs_digest: str) -> str:
    """What makes two requests 'the same' for an idempotency key (built on the inputs'
    digest, so the inputs are serialised once per request)."""
    return digest({"method": method, "path": path, "inputs_digest": inputs_digest})


def _find_replay(
    session: Session, principal: Principal, key: str, fingerprint: str
) -> Reply | None:
    record = session.execute(
        select(IdempotencyRecord).where(
            IdempotencyRecord.organisation_id == principal.organisation_id,
            IdempotencyRecord.actor_id == principal.actor_id,
            IdempotencyRecord.key == key,
        )
    ).scalar_one_or_none()
    if record is None:
        return None
    if record.request_digest != fingerprint:
        raise IdempotencyConflictError(
            f"Idempotency-Key {key!r} was already used with a different request"
        )
    return Reply(record.status_code, dict(record.response), replayed=True)


async def decide(
    services: Services,
    principal: Principal,
    kind: DecisionKind,
    request: BaseModel,
    *,
    path: str,
    idempotency_key: str | None = None,
    force_job: bool = False,
) -> Reply:
    """Make the decision ``kind`` on ``request`` for ``principal``; inline or as a job.

    Runs on the server's event loop: a quick kind (``DecisionKind.quick``) is decided there,
    anything else and every database read in a worker thread; the write is group-committed
    (:mod:`nqba.store.group`).
    """
    inputs = request.model_dump(mode="json")
    inputs_digest = digest(inputs)
    fingerprint = request_digest("POST", path, inputs_digest)
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise DecisionInputError(
                "invalid_idempotency_key",
                f"Idempotency-Key must have 1 to {MAX_IDEMPOTENCY_KEY} characters",
            )
        replay = await to_thread.run_sync(
            _lookup_replay, services, principal, idempotency_key, fingerprint
        )
        if replay is not None:
            return replay
    decision = _new_decision(principal, kind, inputs, inputs_digest)
    job_reason = _job_reason(services, kind, request) if not force_job else "asked for a job"
    if job_reason is not None:
        return await to_thread.run_sync(
            functools.partial(
                _submit,
                services,
                principal,
                decision,
                fingerprint,
                idempotency_key,
                job_reason,
                path,
            )
        )
    return await _decide_inline(
        services, principal, kind, request, decision, fingerprint, idempotency_key, path
    )


def _lookup_replay(
    services: Services, principal: Principal, key: str, fingerprint: str
) -> Reply | None:
    with read_session(services.session_factory) as session:
        return _find_replay(session, principal, key, fingerprint)


def _job_reason(services: Services, kind: DecisionKind, request: BaseModel) -> str | None:
    settings = services.settings
    size = kind.size(request)
    if size > settings.inline_max_variables:
        return f"{size} variables is more than the inline limit of {settings.inline_max_variables}"
    seconds = kind.requested_seconds(request)
    if seconds is not None and seconds > settings.inline_time_limit_s:
        return (
            f"a time limit of {seconds:g} s is more than the inline limit of "
            f"{settings.inline_time_limit_s:g} s"
        )
    return None


def _new_decision(
    principal: Principal, kind: DecisionKind, inputs: dict[str, Any], inputs_digest: str
) -> DecisionDraft:
    """A queued decision, not yet stored."""
    return DecisionDraft(
        id=new_id(),
        organisation_id=principal.organisation_id,
        unit=kind.unit,
        kind=kind.kind,
        status="queued",
        actor_kind=principal.actor_kind,
        actor_id=principal.actor_id,
        inputs=inputs,
        inputs_digest=inputs_digest,
        model_version=kind.model_version,
        created_at=utcnow(),
    )


def _run(kind: DecisionKind, request: BaseModel, progress: Progress) -> tuple[Outcome, float]:
    start = time.perf_counter()
    try:
        with span("decision", **{"nqba.unit": kind.unit, "nqba.kind": kind.kind}):
            outcome = kind.run(request, progress)
    except Exception as e:
        elapsed = time.perf_counter() - start
        input_error = classify(e)
        DECISION_LATENCY.labels(
            kind.unit, kind.kind, "rejected" if input_error else "error"
        ).observe(elapsed)
        if input_error is not None:
            raise input_error from e
        raise
    elapsed = time.perf_counter() - start
    DECISION_LATENCY.labels(kind.unit, kind.kind, "succeeded").observe(elapsed)
    SOLVER_SECONDS.labels(kind.unit, outcome.solver or "none").observe(
        float(outcome.timings.get("solve_s", elapsed))
    )
    return outcome, elapsed


def _complete(decision: AnyDecision, outcome: Outcome, elapsed: float) -> None:
    decision.status = "succeeded"
    decision.outputs = outcome.outputs
    decision.solver = outcome.solver
    decision.objective = outcome.objective
    decision.baseline = outcome.baseline
    decision.timings = {**outcome.timings, "decision_s": elapsed}
    decision.completed_at = utcnow()


def response_body(decision: AnyDecision, leaf_hash: bytes) -> dict[str, Any]:
    """The JSON answer of an inline decision (also what an idempotent retry replays)."""
    assert decision.audit_seq is not None
    return {
        "decision_id": decision.id,
        "unit": decision.unit,
        "kind": decision.kind,
        "status": decision.status,
        "result": decision.outputs,
        "solver": decision.solver,
        "objective": decision.objective,
        "baseline": decision.baseline,
        "timings": decision.timings,
        "model_version": decision.model_version,
        "audit": {"seq": decision.audit_seq, "leaf_hash": leaf_hash.hex()},
        "created_at": decision.created_at.isoformat(),
        "completed_at": None
        if decision.completed_at is None
        else decision.completed_at.isoformat(),
    }


def _reply_record(
    principal: Principal,
    key: str,
    path: str,
    fingerprint: str,
    status_code: int,
    body: dict[str, Any],
    decision_id: str,
) -> IdempotencyRecord:
    return IdempotencyRecord(
        organisation_id=principal.organisation_id,
        actor_id=principal.actor_id,
        key=key,
        method="POST",
        path=path,
        request_digest=fingerprint,
        status_code=status_code,
        response=body,
        decision_id=decision_id,
    )


def _replay_after_race(
    services: Services, principal: Principal, key: str, fingerprint: str
) -> Reply:
    """A concurrent request with the same key committed first: answer what it answered."""
    replay = _lookup_replay(services, principal, key, fingerprint)
    if replay is None:  # the unique violation was not the key's: a real error
        raise RuntimeError("idempotency record vanished after a unique violation")
    return replay


@dataclass(frozen=True)
class _InlineWrite:
    """What an inline decision writes: its row, its leaf, and the answer a key replays."""

    audit: AuditLog
    decision: DecisionDraft
    principal: Principal
    key: str | None
    path: str
    fingerprint: str


def _write_inline(
    session: Session, writes: Sequence[_InlineWrite], join: Joiner[_InlineWrite]
) -> list[dict[str, Any]]:
    """Append the decisions' leaves, insert their rows (and their keys' answers) in
    ``session``'s transaction: on PostgreSQL two statements for the whole batch (the head's
    lock and read, then one WriteBatch), on SQLite one per table. The decisions queued while
    the lock was awaited join the batch once it is held. Their answers, in order (``writes``,
    then the joined)."""
    decisions = [w.decision for w in writes]
    entries = decision_entries(decisions)  # hashed before the lock
    batch = WriteBatch(session)
    audit = writes[0].audit
    head = audit.lock_for_append(batch)
    joined = join()
    writes = [*writes, *joined]
    late = [w.decision for w in joined]
    decisions += late
    entries += decision_entries(late)
    leaves = append_decision_leaves(audit, session, decisions, batch, head, entries)  # audit_seq
    batch.insert(Decision, [d.row() for d in decisions])
    bodies = [response_body(d, leaf.leaf_hash) for d, leaf in zip(decisions, leaves, strict=True)]
    replies = [
        _reply_record(w.principal, w.key, w.path, w.fingerprint, 200, body, w.decision.id)
        for w, body in zip(writes, bodies, strict=True)
        if w.key is not None
    ]
    batch.insert_objects(replies)
    batch.send()
    return bodies


async def _decide_inline(
    services: Services,
    principal: Principal,
    kind: DecisionKind,
    request: BaseModel,
    decision: DecisionDraft,
    fingerprint: str,
    key: str | None,
    path: str,
) -> Reply:
    if kind.quick(request):
        outcome, elapsed = _run(kind, request, no_progress)
    else:
        outcome, elapsed = await to_thread.run_sync(_run, kind, request, no_progress)
    _complete(decision, outcome, elapsed)
    write = _InlineWrite(services.audit, decision, principal, key, path, fingerprint)
    try:
        # committed with the other decisions written meanwhile (group commit)
        body = await group_writer(services.session_factory, _write_inline, joins=True).write(write)
    except IntegrityError:
        if key is None:
            raise
        return await to_thread.run_sync(_replay_after_race, services, principal, key, fingerprint)
    return Reply(200, body)


def _submit(
    services: Services,
    principal: Principal,
    decision: DecisionDraft,
    fingerprint: str,
    key: str | None,
    reason: str,
    path: str,
) -> Reply:
    try:
        with write_transaction(services.session_factory) as session:
            session.add(decision.as_decision())
            session.flush()
            job = create_job(
                session,
                organisation_id=principal.organisation_id,
                decision_id=decision.id,
                runner=services.jobs.name,
            )
            enqueue_after_commit(session, services.jobs, job.id)
            body = {
                "decision_id": decision.id,
                "job_id": job.id,
                "status": "queued",
                "reason": reason,
                "links": {
                    "job": f"/api/v1/jobs/{job.id}",
                    "events": f"/api/v1/jobs/{job.id}/events",
                    "decision": f"/api/v1/decisions/{decision.id}",
                },
            }
            if key is not None:
                session.add(
                    _reply_record(principal, key, path, fingerprint, 202, body, decision.id)
                )
    except IntegrityError:
        if key is None:
            raise
        return _replay_after_race(services, principal, key, fingerprint)
    return Reply(202, body)


def run_job(services: Services, job_id: str) -> None:
    """Run job ``job_id``'s decision and record it with its audit leaf (at-least-once safe).

    The claim rules of :mod:`nqba.jobs.repository` decide whether this delivery runs the job;
    only the attempt that still holds the job can finish it, so a decision is recorded once.
    """
    factory = services.session_factory
    with write_transaction(factory) as session:
        job = claim(session, job_id)
        if job is None:
            return
        decision = session.get_one(Decision, job.decision_id)
        unit, kind_name, inputs = decision.unit, decision.kind, dict(decision.inputs)

    def progress(fraction: float, message: str = "") -> None:
        report_progress(factory, job_id, fraction, message)

    error: dict[str, Any] | None = None
    outcome: Outcome | None = None
    elapsed = 0.0
    try:
        progress(0.0, "started")
        kind = get_kind(unit, kind_name)
        request = kind.request_model.model_validate(inputs)
        outcome, elapsed = _run(kind, request, progress)
    except (JobCancelled, JobSuperseded):
        raise  # the runner finishes a cancelled job; a superseded attempt leaves it alone
    except DecisionInputError as e:
        error = {"code": e.code, "reason": e.reason}
    except Exception as e:
        input_error = classify(e)
        if input_error is None:
            raise  # a bug: the runner fails the job and logs it
        error = {"code": input_error.code, "reason": input_error.reason}
    with write_transaction(factory) as session:
        if outcome is not None:
            finish(session, job, "succeeded", "done")
            decision = session.get_one(Decision, job.decision_id, populate_existing=True)
            _complete(decision, outcome, elapsed)
        else:
            assert error is not None
            finish(session, job, "failed", error["reason"])
            decision = session.get_one(Decision, job.decision_id, populate_existing=True)
            decision.status = "failed"
            decision.error = error
            decision.completed_at = utcnow()
        append_decision_leaf(services.audit, session, decision)


def lookup_kind(unit: str, kind: str) -> DecisionKind:
    """The registered kind, or ``DecisionInputError('unknown_decision')``."""
    try:
        return get_kind(unit, kind)
    except UnknownDecisionKindError as e:
        raise DecisionInputError("unknown_decision", str(e)) from None
