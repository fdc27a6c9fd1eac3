"""Running decisions: inline, or as jobs that a runner picks up after commit."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nqba.services import Services


def run_job(services: Services, job_id: str) -> None:
    """Run the decision of job ``job_id`` (being written by the lead)."""
    raise NotImplementedError(job_id)
