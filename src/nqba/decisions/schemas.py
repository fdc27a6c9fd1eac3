"""Response bodies of decisions: the result of one, its record, a page of them, a job."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")

DecisionStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class AuditRef(BaseModel):
    """Where the decision sits in the audit log."""

    seq: int = Field(description="Leaf index in the RFC 6962 log.")
    leaf_hash: str = Field(description="SHA-256(0x00 || canonical JSON record), hex.")


class DecisionResponse(BaseModel, Generic[T]):
    """A decision made inline: the result in business terms, how it was found, its audit leaf."""

    decision_id: str
    unit: str
    kind: str
    status: DecisionStatus
    result: T
    solver: str | None
    objective: float | None
    baseline: dict[str, Any] | None = Field(
        description="The measured baseline on the same inputs (named inside)."
    )
    timings: dict[str, float]
    model_version: str
    audit: AuditRef
    created_at: datetime
    completed_at: datetime | None


class JobLinks(BaseModel):
    """Where to follow a job."""

    job: str
    events: str
    decision: str


class JobAccepted(BaseModel):
    """A decision too large to run inline: it runs as a job (HTTP 202)."""

    decision_id: str
    job_id: str
    status: DecisionStatus
    reason: str = Field(description="Why it runs as a job (size or requested time).")
    links: JobLinks


class DecisionSummary(BaseModel):
    """One row of the decision list."""

    id: str
    unit: str
    kind: str
    status: DecisionStatus
    solver: str | None
    objective: float | None
    actor_kind: str
    actor_id: str
    created_at: datetime
    completed_at: datetime | None
    audit: AuditRef | None
    job_id: str | None


class AuditProof(BaseModel):
    """An inclusion proof of the decision's leaf in the log of ``tree_size`` leaves."""

    seq: int
    leaf_hash: str
    tree_size: int
    root_hash: str
    inclusion_proof: list[str] = Field(description="Sibling hashes, hex, leaf to root.")
    checkpoint_signed: bool = Field(
        description="Whether tree_size is a signed checkpoint (else the current size)."
    )


class DecisionDetail(DecisionSummary):
    """A decision with its inputs, outputs, baseline, timings and audit proof."""

    inputs: dict[str, Any]
    inputs_digest: str
    outputs: dict[str, Any] | None
    error: dict[str, Any] | None
    baseline: dict[str, Any] | None
    timings: dict[str, Any] | None
    model_version: str
    proof: AuditProof | None


class DecisionPage(BaseModel):
    """A page of decisions, newest first; pass ``next_cursor`` to get the next page."""

    items: list[DecisionSummary]
    next_cursor: str | None


class GenericDecisionRequest(BaseModel):
    """Body of ``POST /api/v1/nqba/decision-engine``: any unit's decision by name."""

    unit: str = Field(examples=["finance"])
    kind: str = Field(examples=["portfolio-optimization"])
    payload: dict[str, Any] = Field(
        description="The body the unit's own endpoint takes.",
        examples=[
            {
                "market": {
                    "assets": ["A", "B"],
                    "expected_returns": [0.1, 0.05],
                    "covariance": [[0.04, 0.0], [0.0, 0.01]],
                },
                "spec": {"objective": "min_variance"},
            }
        ],
    )
