"""Prometheus metrics of the API, the decisions and the jobs (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUEST_LATENCY = Histogram(
    "nqba_http_request_duration_seconds",
    "Latency of HTTP requests, by method, route template and status.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
REQUESTS_IN_FLIGHT = Gauge(
    "nqba_http_requests_in_flight", "HTTP requests being served now.", registry=REGISTRY
)
DECISION_LATENCY = Histogram(
    "nqba_decision_duration_seconds",
    "Wall time of a decision from spec to recorded result, by unit, kind and outcome.",
    ["unit", "kind", "outcome"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
SOLVER_SECONDS = Histogram(
    "nqba_solver_duration_seconds",
    "Time spent in the solver of a decision, by unit and solver.",
    ["unit", "solver"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
JOB_OUTCOMES = Counter(
    "nqba_jobs_total",
    "Jobs finished, by runner and outcome (succeeded, failed, cancelled).",
    ["runner", "outcome"],
    registry=REGISTRY,
)
JOB_QUEUE_DEPTH = Gauge(
    "nqba_job_queue_depth",
    "Jobs waiting or running, by status (read from the database at each scrape).",
    ["status"],
    registry=REGISTRY,
)
AUDIT_TREE_SIZE = Gauge(
    "nqba_audit_tree_size", "Leaves in the audit log (at the last scrape).", registry=REGISTRY
)
