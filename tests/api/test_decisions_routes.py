"""Decisions over HTTP on SQLite and PostgreSQL: made, recorded, audited, replayed, listed."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from nqba.api.app import create_app
from nqba.audit.merkle import decision_leaf, verify_inclusion
from nqba.authz import Role
from nqba.decisions.records import decision_record
from nqba.services import Services, build_services
from nqba.store.models import AuditLeaf, Decision, IdempotencyRecord
from tests.support.platform import CallerFactory, platform_settings

MARKET = {
    "assets": ["A", "B", "C"],
    "expected_returns": [0.10, 0.08, 0.05],
    "covariance": [[0.04, 0.01, 0.0], [0.01, 0.03, 0.0], [0.0, 0.0, 0.01]],
}
OPTIMIZE = {"market": MARKET, "spec": {"objective": "max_sharpe"}}
TRIANGLE = "3 3\n1 2 1\n2 3 1\n1 3 1\n"


def _count(services: Services, model: type[Any]) -> int:
    with services.session_factory() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def test_portfolio_decision_is_recorded_with_its_audit_leaf_in_the_same_write(
    client: TestClient, services: Services, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.ANALYST)
    response = client.post(
        "/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    weights = body["result"]["weights"]
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-6)
    assert body["baseline"]["name"] == "equal_weight"
    assert body["objective"] == pytest.approx(body["result"]["sharpe"])
    assert body["objective"] > body["baseline"]["sharpe"]
    with services.session_factory() as session:
        decision = session.get(Decision, body["decision_id"])
        assert decision is not None
        assert decision.status == "succeeded"
        assert decision.organisation_id == caller.organisation_id
        assert decision.actor_id == caller.user_id
        leaf = session.get(AuditLeaf, decision.audit_seq)
        assert leaf is not None
        assert leaf.leaf_hash == decision_leaf(decision_record(decision))
    assert body["audit"] == {"seq": leaf.seq, "leaf_hash": leaf.leaf_hash.hex()}


def test_detail_carries_inputs_outputs_and_an_inclusion_proof_that_verifies(
    client: TestClient, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.ANALYST)
    ids = [
        client.post(
            "/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=caller.headers
        ).json()["decision_id"]
        for _ in range(5)
    ]
    detail = client.get(f"/api/v1/decisions/{ids[2]}", headers=caller.headers).json()
    assert detail["inputs"]["market"]["assets"] == ["A", "B", "C"]
    assert detail["outputs"]["objective"] == "max_sharpe"
    assert detail["solver"]
    assert "decision_s" in detail["timings"]
    proof = detail["proof"]
    assert proof["tree_size"] == 5
    verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        proof["seq"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["inclusion_proof"]],
        bytes.fromhex(proof["root_hash"]),
    )


def test_a_retried_request_with_the_same_idempotency_key_makes_no_second_decision(
    client: TestClient, services: Services, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.ANALYST)
    headers = {**caller.headers, "Idempotency-Key": "order-42"}
    first = client.post("/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=headers)
    again = client.post("/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert _count(services, Decision) == 1
    assert _count(services, AuditLeaf) == 1


def test_the_same_key_with_a_different_body_is_refused(
    client: TestClient, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.ANALYST)
    headers = {**caller.headers, "Idempotency-Key": "order-43"}
    client.post("/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=headers)
    other = {"market": MARKET, "spec": {"objective": "min_variance"}}
    response = client.post("/api/v1/goliath/portfolio-optimization", json=other, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"


def test_concurrent_requests_with_one_key_make_exactly_one_decision(
    client: TestClient, services: Services, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.ANALYST)
    headers = {**caller.headers, "Idempotency-Key": "burst"}
    answers: list[Any] = []

    def post() -> None:
        answers.append(
            client.post("/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=headers)
        )

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 6
    assert len({a.json()["decision_id"] for a in answers}) == 1
    assert _count(services, Decision) == 1
    assert _count(services, IdempotencyRecord) == 1


def test_keys_of_two_callers_do_not_collide(
    client: TestClient, services: Services, make_caller: CallerFactory
) -> None:
    one, two = make_caller(Role.ANALYST), make_caller(Role.ANALYST)
    for caller in (one, two):
        headers = {**caller.headers, "Idempotency-Key": "same-key"}
        r = client.post("/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=headers)
        assert r.status_code == 200
    assert _count(services, Decision) == 2


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        ({"market": MARKET, "spec": {"objective": "maximum"}}, "invalid_request", "objective"),
        (
            {"market": {**MARKET, "expected_returns": [0.1, 0.2]}},
            "invalid_data",
            "expected_returns has 2 values for 3 assets",
        ),
        (
            {"market": MARKET, "spec": {"objective": "target_return", "target_return": 0.5}},
            "infeasible",
            "0.5",
        ),
        ({"market": {"assets": ["A", "B"]}}, "invalid_data", "give expected_returns"),
        ({"market": MARKET, "surprise": 1}, "invalid_request", "surprise"),
    ],
)
def test_bad_portfolio_requests_get_422_with_a_code_and_a_reason(
    client: TestClient, make_caller: CallerFactory, body: dict[str, Any], code: str, says: str
) -> None:
    caller = make_caller(Role.ANALYST)
    response = client.post(
        "/api/v1/goliath/portfolio-optimization", json=body, headers=caller.headers
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert says in error["reason"]


def test_engine_solves_a_gset_graph_and_reports_the_cut_and_a_random_baseline(
    client: TestClient, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.ANALYST)
    rng = np.random.default_rng(3)
    n = 10
    edges = [(i, j) for i, j in itertools.combinations(range(n), 2) if rng.random() < 0.5]
    text = f"{n} {len(edges)}\n" + "".join(f"{i + 1} {j + 1} 1\n" for i, j in edges)
    best = max(
        sum(1 for i, j in edges if (mask >> i & 1) != (mask >> j & 1)) for mask in range(2**n)
    )
    response = client.post(
        "/api/v1/engine/solve",
        json={"format": "gset", "model": text, "seed": 5, "solver": "exact"},
        headers=caller.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"]["cut"] == best
    assert body["objective"] == best
    assert body["baseline"]["name"] == "random_assignments"
    assert body["baseline"]["best_energy"] >= body["result"]["energy"]


@pytest.mark.parametrize(
    ("payload", "code", "says"),
    [
        (
            {"format": "gset", "model": "3 3\n1 2 1\n2 9 1\n1 3 1\n"},
            "invalid_model",
            "model:3: vertex 9",
        ),
        ({"format": "gset", "model": TRIANGLE, "solver": "magic"}, "unknown_solver", "magic"),
        ({"format": "bqm-json", "model": {"type": "Nope"}}, "invalid_model", "BQM"),
        ({"format": "bqm-json", "model": TRIANGLE}, "invalid_model", "JSON object"),
        ({"format": "gset", "model": TRIANGLE, "time_limit": -1}, "invalid_request", "time_limit"),
    ],
)
def test_bad_engine_models_get_422_naming_the_problem(
    client: TestClient, make_caller: CallerFactory, payload: dict[str, Any], code: str, says: str
) -> None:
    caller = make_caller(Role.ANALYST)
    response = client.post("/api/v1/engine/solve", json=payload, headers=caller.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert says in response.json()["error"]["reason"]


def test_generic_endpoint_dispatches_to_the_unit_and_checks_its_permission(
    client: TestClient, make_caller: CallerFactory
) -> None:
    analyst, viewer = make_caller(Role.ANALYST), make_caller(Role.VIEWER)
    body = {"unit": "finance", "kind": "efficient-frontier", "payload": {"market": MARKET}}
    made = client.post("/api/v1/nqba/decision-engine", json=body, headers=analyst.headers)
    assert made.status_code == 200, made.text
    assert made.json()["kind"] == "efficient-frontier"
    assert len(made.json()["result"]["volatilities"]) == 50
    refused = client.post("/api/v1/nqba/decision-engine", json=body, headers=viewer.headers)
    assert refused.status_code == 403
    bad = {**body, "payload": {"market": MARKET, "n_points": 1}}
    invalid = client.post("/api/v1/nqba/decision-engine", json=bad, headers=analyst.headers)
    assert invalid.status_code == 422
    assert invalid.json()["error"]["details"][0]["loc"][:2] == ["payload", "n_points"]


def test_unknown_and_reserved_units_are_clear_errors(
    client: TestClient, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.OWNER)
    unknown = client.post(
        "/api/v1/nqba/decision-engine",
        json={"unit": "finance", "kind": "astrology", "payload": {}},
        headers=caller.headers,
    )
    assert unknown.status_code == 422
    assert "finance/portfolio-optimization" in unknown.json()["error"]["reason"]
    reserved = client.post(
        "/api/v1/nqba/decision-engine",
        json={"unit": "energy", "kind": "unit-commitment", "payload": {}},
        headers=caller.headers,
    )
    assert reserved.json()["error"]["code"] == "unit_not_available"
    for path in ("/api/v1/flyfox/unit-commitment", "/api/v1/sigma/lead-scoring"):
        answer = client.post(path, headers=caller.headers)
        assert answer.status_code == 501
        assert answer.json()["error"]["code"] == "unit_not_available"


def test_list_filters_pages_and_hides_other_organisations(
    client: TestClient, make_caller: CallerFactory
) -> None:
    mine = make_caller(Role.ANALYST, organisation="acme")
    theirs = make_caller(Role.ANALYST, organisation="globex")
    for _ in range(3):
        client.post("/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=mine.headers)
    client.post(
        "/api/v1/engine/solve", json={"format": "gset", "model": TRIANGLE}, headers=mine.headers
    )
    foreign = client.post(
        "/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=theirs.headers
    ).json()["decision_id"]

    page = client.get("/api/v1/decisions", params={"limit": 2}, headers=mine.headers).json()
    assert len(page["items"]) == 2
    rest = client.get(
        "/api/v1/decisions",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=mine.headers,
    ).json()
    assert len(rest["items"]) == 2
    assert rest["next_cursor"] is None
    ids = [d["id"] for d in page["items"] + rest["items"]]
    assert len(set(ids)) == 4
    assert foreign not in ids
    engine_only = client.get(
        "/api/v1/decisions", params={"unit": "engine"}, headers=mine.headers
    ).json()
    assert [d["unit"] for d in engine_only["items"]] == ["engine"]
    assert client.get(f"/api/v1/decisions/{foreign}", headers=mine.headers).status_code == 404
    bad = client.get("/api/v1/decisions", params={"cursor": "zzz"}, headers=mine.headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.AUDITOR])
def test_roles_without_decide_get_403_and_no_decision(
    client: TestClient, services: Services, make_caller: CallerFactory, role: Role
) -> None:
    caller = make_caller(role)
    response = client.post(
        "/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=caller.headers
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert _count(services, Decision) == 0


def test_no_credentials_get_401(client: TestClient) -> None:
    response = client.post("/api/v1/goliath/portfolio-optimization", json=OPTIMIZE)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.fixture
def small_inline_client(database_url: str) -> Iterator[tuple[TestClient, Services]]:
    """A platform whose inline limit is 2 variables, so most decisions become jobs."""
    built = build_services(platform_settings(database_url, inline_max_variables=2), migrate=True)
    try:
        with TestClient(create_app(built)) as test_client:
            yield test_client, built
    finally:
        built.close()


def _caller_on(services: Services) -> dict[str, str]:
    from nqba.auth.service import create_organisation, create_user, principal_of
    from nqba.auth.tokens import issue_access_token

    with services.session_factory.begin() as session:
        org = create_organisation(session, "jobs-org")
        user = create_user(session, org.id, "jobs@jobs.test", "correct horse battery", "analyst")
        principal = principal_of(user)
    return {"Authorization": f"Bearer {issue_access_token(services.settings, principal)}"}


def test_a_large_decision_becomes_a_job_that_completes_with_its_audit_leaf(
    small_inline_client: tuple[TestClient, Services], tmp_path: Path
) -> None:
    client, services = small_inline_client
    headers = _caller_on(services)
    accepted = client.post("/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=headers)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert "3 variables" in body["reason"]
    deadline = time.monotonic() + 30
    while True:
        detail = client.get(body["links"]["decision"], headers=headers).json()
        if detail["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert detail["status"] == "succeeded", detail
    assert detail["job_id"] == body["job_id"]
    assert sum(detail["outputs"]["weights"].values()) == pytest.approx(1.0, abs=1e-6)
    with services.session_factory() as session:
        decision = session.get(Decision, body["decision_id"])
        assert decision is not None
        leaf = session.get(AuditLeaf, decision.audit_seq)
        assert leaf is not None
        assert leaf.leaf_hash == decision_leaf(decision_record(decision))


def test_decision_answers_carry_the_rate_limit_and_the_limit_stops_decisions(
    database_url: str,
) -> None:
    built = build_services(platform_settings(database_url, rate_limit_per_minute=3), migrate=True)
    try:
        with TestClient(create_app(built)) as client:
            headers = _caller_on(built)
            answers = [
                client.post(
                    "/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=headers
                )
                for _ in range(4)
            ]
    finally:
        built.close()
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers.get("X-RateLimit-Remaining") for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    assert int(answers[3].headers["Retry-After"]) >= 1
    assert answers[3].json()["error"]["code"] == "rate_limited"
    assert _count(built, Decision) == 3
