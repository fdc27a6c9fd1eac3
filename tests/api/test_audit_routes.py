"""The audit API on SQLite and PostgreSQL: proofs that verify against signed checkpoints,
audit:read for owners and auditors only, organisation scoping of leaves, 422 for bad sizes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nqba.audit.checkpoints import SignedCheckpoint, verify_checkpoint
from nqba.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from nqba.audit.verify import verify_database
from nqba.authz import Role
from nqba.services import Services, build_services
from nqba.store.session import read_session
from tests.audit.logdata import append_plain, tamper
from tests.support.platform import Caller, CallerFactory, platform_settings

EVERY = 4


@pytest.fixture
def services(database_url: str) -> Iterator[Services]:
    """The platform with a checkpoint signed every 4 leaves (overrides the shared fixture)."""
    built = build_services(
        platform_settings(database_url, audit_checkpoint_every=EVERY), migrate=True
    )
    try:
        yield built
    finally:
        built.close()


def _interleaved(services: Services, a: Caller, b: Caller, rounds: int) -> None:
    """Leaves of two organisations, alternating: a gets even seqs, b odd ones."""
    for i in range(rounds):
        append_plain(services, a.organisation_id, 1, start=i)
        append_plain(services, b.organisation_id, 1, start=i)


def _checkpoint(body: dict[str, Any]) -> SignedCheckpoint:
    return SignedCheckpoint(
        tree_size=body["tree_size"],
        root_hash=bytes.fromhex(body["root_hash"]),
        origin=body["origin"],
        key_id=body["key_id"],
        signature=base64.b64decode(body["signature"]),
    )


def _hashes(items: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in items]


def test_inclusion_proofs_over_http_verify_against_the_signed_checkpoint(
    client: TestClient, make_caller: CallerFactory, services: Services
) -> None:
    auditor = make_caller(Role.AUDITOR, "acme")
    other = make_caller(Role.AUDITOR, "globex")
    _interleaved(services, auditor, other, 5)  # 10 leaves, checkpoints at 4 and 8
    key = client.get("/api/v1/audit/public-key", headers=auditor.headers).json()
    latest = client.get("/api/v1/audit/checkpoints/latest", headers=auditor.headers)
    assert latest.status_code == 200
    checkpoint = latest.json()
    assert checkpoint["tree_size"] == 8
    assert checkpoint["key_id"] == key["key_id"]
    verify_checkpoint(key["public_key"], _checkpoint(checkpoint))
    assert checkpoint["note"] == (
        f"{checkpoint['origin']}\n8\n"
        f"{base64.b64encode(bytes.fromhex(checkpoint['root_hash'])).decode()}\n"
    )
    root = bytes.fromhex(checkpoint["root_hash"])
    for seq in (0, 2, 4, 6):
        body = client.get(f"/api/v1/audit/leaves/{seq}", headers=auditor.headers).json()
        assert body["organisation_id"] == auditor.organisation_id
        assert body["record"]["n"] == seq // 2
        digest = bytes.fromhex(body["leaf_hash"])
        assert digest == leaf_hash(body["payload"].encode())
        proof = body["inclusion"]
        assert proof["tree_size"] == 8
        assert proof["checkpoint"]["signature"] == checkpoint["signature"]
        verify_inclusion(digest, seq, 8, _hashes(proof["proof"]), root)

    # A newer tree: sign a checkpoint of all 10 leaves, then prove leaf 8 against it.
    signed = client.post("/api/v1/audit/checkpoints", headers=auditor.headers)
    assert signed.status_code == 201
    newer = signed.json()
    verify_checkpoint(key["public_key"], _checkpoint(newer))
    proof = client.get(
        "/api/v1/audit/proofs/inclusion",
        params={"seq": 8, "tree_size": 10},
        headers=auditor.headers,
    ).json()
    assert proof["root_hash"] == newer["root_hash"]
    verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        8,
        10,
        _hashes(proof["proof"]),
        bytes.fromhex(newer["root_hash"]),
    )


def test_consistency_proofs_over_http_verify_between_signed_checkpoints(
    client: TestClient, make_caller: CallerFactory, services: Services
) -> None:
    auditor = make_caller(Role.AUDITOR)
    append_plain(services, auditor.organisation_id, 10)
    roots = {}
    for size in (4, 8):
        body = client.get(
            "/api/v1/audit/proofs/consistency",
            params={"first": size, "second": size},
            headers=auditor.headers,
        ).json()
        roots[size] = bytes.fromhex(body["second_checkpoint"]["root_hash"])
    ten = client.post("/api/v1/audit/checkpoints", headers=auditor.headers).json()
    roots[10] = bytes.fromhex(ten["root_hash"])
    for first, second in ((4, 8), (8, 10), (4, 10)):
        body = client.get(
            "/api/v1/audit/proofs/consistency",
            params={"first": first, "second": second},
            headers=auditor.headers,
        ).json()
        assert body["first_checkpoint"]["tree_size"] == first
        verify_consistency(first, second, roots[first], roots[second], _hashes(body["proof"]))
    for first in range(1, 11):  # every older size, against the latest checkpoint by default
        body = client.get(
            "/api/v1/audit/proofs/consistency", params={"first": first}, headers=auditor.headers
        ).json()
        assert body["second"] == 10
        verify_consistency(
            first, 10, bytes.fromhex(body["first_root"]), roots[10], _hashes(body["proof"])
        )


AUDIT_READS = [
    ("get", "/api/v1/audit/checkpoints/latest", {}),
    ("post", "/api/v1/audit/checkpoints", {}),
    ("get", "/api/v1/audit/leaves/0", {}),
    ("get", "/api/v1/audit/proofs/inclusion", {"seq": 0, "tree_size": 4}),
    ("get", "/api/v1/audit/proofs/consistency", {"first": 1, "second": 4}),
]


@pytest.mark.parametrize("role", [Role.ANALYST, Role.VIEWER, Role.ADMIN])
def test_roles_without_audit_read_get_403_on_every_audit_endpoint(
    client: TestClient, make_caller: CallerFactory, services: Services, role: Role
) -> None:
    caller = make_caller(role)
    append_plain(services, caller.organisation_id, 4)
    for method, path, params in AUDIT_READS:
        response = client.request(method, path, params=params, headers=caller.headers)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"]["code"] == "forbidden"
        assert "audit:read" in response.json()["error"]["reason"]
    assert client.get("/api/v1/audit/public-key", headers=caller.headers).status_code == 200


@pytest.mark.parametrize("role", [Role.OWNER, Role.AUDITOR])
def test_owner_and_auditor_read_the_audit_log(
    client: TestClient, make_caller: CallerFactory, services: Services, role: Role
) -> None:
    caller = make_caller(role)
    append_plain(services, caller.organisation_id, 4)
    for method, path, params in AUDIT_READS:
        response = client.request(method, path, params=params, headers=caller.headers)
        assert response.status_code in (200, 201), (path, response.text)


def test_audit_endpoints_need_credentials(client: TestClient) -> None:
    for method, path, params in [*AUDIT_READS, ("get", "/api/v1/audit/public-key", {})]:
        response = client.request(method, path, params=params)
        assert response.status_code == 401, path


def test_another_organisations_leaf_answers_404(
    client: TestClient, make_caller: CallerFactory, services: Services
) -> None:
    acme = make_caller(Role.AUDITOR, "acme")
    globex = make_caller(Role.AUDITOR, "globex")
    _interleaved(services, acme, globex, 2)  # acme: 0, 2; globex: 1, 3
    assert client.get("/api/v1/audit/leaves/1", headers=globex.headers).status_code == 200
    for response in (
        client.get("/api/v1/audit/leaves/1", headers=acme.headers),
        client.get(
            "/api/v1/audit/proofs/inclusion",
            params={"seq": 1, "tree_size": 4},
            headers=acme.headers,
        ),
        client.get("/api/v1/audit/leaves/99", headers=acme.headers),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    # The global checkpoint and consistency proofs stay readable to both.
    for caller in (acme, globex):
        latest = client.get("/api/v1/audit/checkpoints/latest", headers=caller.headers)
        assert latest.json()["tree_size"] == 4


@pytest.mark.parametrize(
    ("path", "params", "words"),
    [
        ("/api/v1/audit/proofs/inclusion", {"seq": 4, "tree_size": 4}, "not below tree_size 4"),
        ("/api/v1/audit/proofs/inclusion", {"seq": 0, "tree_size": 9}, "beyond the log"),
        ("/api/v1/audit/proofs/inclusion", {"seq": -1, "tree_size": 4}, "greater than or equal"),
        ("/api/v1/audit/proofs/inclusion", {"seq": 0, "tree_size": 0}, "greater than or equal"),
        ("/api/v1/audit/proofs/inclusion", {"seq": "x"}, "valid integer"),
        ("/api/v1/audit/proofs/consistency", {"first": 5, "second": 4}, "larger than second"),
        ("/api/v1/audit/proofs/consistency", {"first": 0, "second": 4}, "greater than or equal"),
        ("/api/v1/audit/proofs/consistency", {"first": 1, "second": 7}, "beyond the log"),
        ("/api/v1/audit/proofs/consistency", {"first": 2**70, "second": 4}, "larger than"),
        ("/api/v1/audit/proofs/consistency", {}, "first"),
        ("/api/v1/audit/leaves/0", {"tree_size": 9}, "beyond the log"),
        ("/api/v1/audit/leaves/2", {"tree_size": 2}, "not below tree_size 2"),
        ("/api/v1/audit/leaves/-3", {}, "greater than or equal"),
    ],
)
def test_bad_sizes_answer_422_with_the_reason(
    client: TestClient,
    make_caller: CallerFactory,
    services: Services,
    path: str,
    params: dict[str, Any],
    words: str,
) -> None:
    auditor = make_caller(Role.AUDITOR)
    append_plain(services, auditor.organisation_id, 6)
    response = client.get(path, params=params, headers=auditor.headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert words in error["reason"], error


def test_before_any_checkpoint_the_api_says_how_to_get_one(
    client: TestClient, make_caller: CallerFactory, services: Services
) -> None:
    auditor = make_caller(Role.AUDITOR)
    latest = client.get("/api/v1/audit/checkpoints/latest", headers=auditor.headers)
    assert latest.status_code == 404
    assert "POST /api/v1/audit/checkpoints" in latest.json()["error"]["reason"]
    append_plain(services, auditor.organisation_id, 2)
    leaf = client.get("/api/v1/audit/leaves/1", headers=auditor.headers).json()
    assert leaf["inclusion"] is None
    assert "no signed checkpoint covers leaf 1" in leaf["inclusion_unavailable"]
    proof = client.get("/api/v1/audit/proofs/inclusion", params={"seq": 1}, headers=auditor.headers)
    assert proof.status_code == 422
    assert "pass tree_size" in proof.json()["error"]["reason"]
    leaf = client.get(
        "/api/v1/audit/leaves/1", params={"tree_size": 2}, headers=auditor.headers
    ).json()
    assert leaf["inclusion"]["checkpoint"] is None  # a proof, against an unsigned size


def test_signing_again_without_new_leaves_answers_200_with_the_same_checkpoint(
    client: TestClient, make_caller: CallerFactory, services: Services
) -> None:
    auditor = make_caller(Role.AUDITOR)
    append_plain(services, auditor.organisation_id, 5)
    first = client.post("/api/v1/audit/checkpoints", headers=auditor.headers)
    again = client.post("/api/v1/audit/checkpoints", headers=auditor.headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["signature"] == again.json()["signature"]
    assert first.json()["tree_size"] == 5
    assert first.json()["signed_note"].startswith(first.json()["note"] + "\n\u2014 ")


def test_openapi_documents_the_audit_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/v1/audit/public-key",
        "/api/v1/audit/checkpoints/latest",
        "/api/v1/audit/checkpoints",
        "/api/v1/audit/leaves/{seq}",
        "/api/v1/audit/proofs/inclusion",
        "/api/v1/audit/proofs/consistency",
    ):
        assert path in paths
    schema = spec["components"]["schemas"]["CheckpointResponse"]
    assert schema["properties"]["tree_size"]["examples"] == [8]


OPTIMIZE = {
    "market": {
        "assets": ["A", "B", "C"],
        "expected_returns": [0.10, 0.08, 0.05],
        "covariance": [[0.04, 0.01, 0.0], [0.01, 0.03, 0.0], [0.0, 0.0, 0.01]],
    },
    "spec": {"objective": "max_sharpe"},
}


def test_decisions_made_over_http_verify_and_a_changed_decision_row_is_named(
    client: TestClient, make_caller: CallerFactory, services: Services
) -> None:
    analyst = make_caller(Role.ANALYST)
    auditor = make_caller(Role.AUDITOR)
    made = []
    for _ in range(5):
        response = client.post(
            "/api/v1/goliath/portfolio-optimization", json=OPTIMIZE, headers=analyst.headers
        )
        assert response.status_code == 200, response.text
        made.append(response.json())
    with read_session(services.session_factory) as session:
        report = verify_database(
            session, services.audit.signer.public_key, services.settings.audit_log_origin
        )
    assert report.ok, [p.describe() for p in report.problems]
    assert (report.tree_size, report.decisions_checked, report.checkpoints_verified) == (5, 5, 1)
    leaf = client.get(
        f"/api/v1/audit/leaves/{made[2]['audit']['seq']}", headers=auditor.headers
    ).json()
    assert leaf["decision_id"] == made[2]["decision_id"]
    assert leaf["leaf_hash"] == made[2]["audit"]["leaf_hash"]
    tamper(
        services,
        "UPDATE decisions SET objective = objective + 1 WHERE id = :d",
        d=made[3]["decision_id"],
    )
    with read_session(services.session_factory) as session:
        report = verify_database(
            session, services.audit.signer.public_key, services.settings.audit_log_origin
        )
    assert report.first_bad_seq == made[3]["audit"]["seq"]
    assert "fields differ: objective" in report.problems[0].message
