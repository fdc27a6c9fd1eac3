"""The access matrix: every endpoint x every role, and every resource of another organisation.

The table below must name every route of the OpenAPI schema (a new route without a row fails
the first test). For each role, a route answers 403 exactly when the role lacks the route's
permission; a resource of another organisation answers 404 to a role that could see its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nqba.api.app import create_app
from nqba.authz import Permission, Role, permissions_of
from nqba.services import Services, build_services
from tests.support.platform import Caller, platform_settings

MARKET2 = {
    "assets": ["A", "B"],
    "expected_returns": [0.10, 0.05],
    "covariance": [[0.04, 0.0], [0.0, 0.01]],
}
MARKET3 = {
    "assets": ["A", "B", "C"],
    "expected_returns": [0.10, 0.08, 0.05],
    "covariance": [[0.04, 0.01, 0.0], [0.01, 0.03, 0.0], [0.0, 0.0, 0.01]],
}
PUBLIC = "public"
AUTHENTICATED = "authenticated"


@dataclass
class World:
    """Two organisations with resources, and a caller of every role in the first."""

    client: TestClient
    services: Services
    callers: dict[Role, Caller]
    mine: dict[str, Any]
    theirs: dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One route: who may call it, how to call it, and what a permitted caller gets."""

    method: str
    path: str
    permission: Permission | str
    call: Callable[[World, Caller, dict[str, Any]], Any]
    ok: tuple[int, ...]
    foreign: bool = False  # whether the path names a resource of an organisation


def _post_decision(
    path: str, body: dict[str, Any]
) -> Callable[[World, Caller, dict[str, Any]], Any]:
    return lambda w, c, r: w.client.post(path, json=body, headers=c.headers)


def _get(template: str, key: str | None = None) -> Callable[[World, Caller, dict[str, Any]], Any]:
    def call(w: World, c: Caller, r: dict[str, Any]) -> Any:
        path = template.format(**{key: r[key]}) if key else template
        return w.client.get(path, headers=c.headers)

    return call


def _new_user(w: World, c: Caller, r: dict[str, Any]) -> Any:
    email = f"u{time.monotonic_ns()}@acme.test"
    body = {"email": email, "password": "correct horse battery", "role": "viewer"}
    return w.client.post("/api/v1/users", json=body, headers=c.headers)


def _patch_user(w: World, c: Caller, r: dict[str, Any]) -> Any:
    return w.client.patch(
        f"/api/v1/users/{r['viewer_user']}", json={"role": "viewer"}, headers=c.headers
    )


def _new_key(w: World, c: Caller, r: dict[str, Any]) -> Any:
    body = {"name": "bot", "role": "viewer"}
    return w.client.post("/api/v1/api-keys", json=body, headers=c.headers)


def _revoke_key(w: World, c: Caller, r: dict[str, Any]) -> Any:
    key_id = r["api_key"]
    if r is w.mine:  # a fresh key each time, so every permitted role can revoke one
        owner = w.callers[Role.OWNER]
        made = w.client.post(
            "/api/v1/api-keys", json={"name": "x", "role": "viewer"}, headers=owner.headers
        )
        key_id = made.json()["id"]
    return w.client.delete(f"/api/v1/api-keys/{key_id}", headers=c.headers)


def _token(w: World, c: Caller, r: dict[str, Any]) -> Any:
    return w.client.post("/api/v1/auth/token", data={"username": c.email, "password": c.password})


def _refresh(w: World, c: Caller, r: dict[str, Any]) -> Any:
    refresh = _token(w, c, r).json()["refresh_token"]
    return w.client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})


def _logout(w: World, c: Caller, r: dict[str, Any]) -> Any:
    refresh = _token(w, c, r).json()["refresh_token"]
    return w.client.post("/api/v1/auth/logout", json={"refresh_token": refresh})


def _password(w: World, c: Caller, r: dict[str, Any]) -> Any:
    """Change the password, then change it back so later rows can still sign in."""
    other = c.password + " again"
    body = {"current_password": c.password, "new_password": other}
    answer = w.client.post("/api/v1/auth/password", json=body, headers=c.headers)
    if answer.status_code < 300:
        back = {"current_password": other, "new_password": c.password}
        w.client.post("/api/v1/auth/password", json=back, headers=c.headers)
    return answer


def _cancel(w: World, c: Caller, r: dict[str, Any]) -> Any:
    return w.client.post(f"/api/v1/jobs/{r['job']}/cancel", headers=c.headers)


def _events(w: World, c: Caller, r: dict[str, Any]) -> Any:
    with w.client.stream("GET", f"/api/v1/jobs/{r['job']}/events", headers=c.headers) as s:
        s.read()
        return s


def _checkpoint(w: World, c: Caller, r: dict[str, Any]) -> Any:
    return w.client.post("/api/v1/audit/checkpoints", headers=c.headers)


ROWS = [
    Row("GET", "/healthz", PUBLIC, _get("/healthz"), (200,)),
    Row("GET", "/readyz", PUBLIC, _get("/readyz"), (200,)),
    Row("GET", "/metrics", PUBLIC, _get("/metrics"), (200,)),
    Row("POST", "/api/v1/auth/token", PUBLIC, _token, (200,)),
    Row("POST", "/api/v1/auth/refresh", PUBLIC, _refresh, (200,)),
    Row("POST", "/api/v1/auth/logout", PUBLIC, _logout, (204, 200)),
    Row("GET", "/api/v1/auth/me", AUTHENTICATED, _get("/api/v1/auth/me"), (200,)),
    Row("POST", "/api/v1/auth/password", AUTHENTICATED, _password, (204, 200)),
    Row("POST", "/api/v1/users", Permission.USERS_MANAGE, _new_user, (201,)),
    Row("GET", "/api/v1/users", Permission.USERS_MANAGE, _get("/api/v1/users"), (200,)),
    Row("PATCH", "/api/v1/users/{user_id}", Permission.USERS_MANAGE, _patch_user, (200,), True),
    Row("POST", "/api/v1/api-keys", Permission.USERS_MANAGE, _new_key, (201,)),
    Row("GET", "/api/v1/api-keys", Permission.USERS_MANAGE, _get("/api/v1/api-keys"), (200,)),
    Row("DELETE", "/api/v1/api-keys/{key_id}", Permission.USERS_MANAGE, _revoke_key, (204,), True),
    Row(
        "POST",
        "/api/v1/nqba/decision-engine",
        Permission.FINANCE_DECIDE,
        _post_decision(
            "/api/v1/nqba/decision-engine",
            {"unit": "finance", "kind": "portfolio-optimization", "payload": {"market": MARKET2}},
        ),
        (200,),
    ),
    Row("GET", "/api/v1/decisions", Permission.FINANCE_READ, _get("/api/v1/decisions"), (200,)),
    Row(
        "GET",
        "/api/v1/decisions/{decision_id}",
        Permission.FINANCE_READ,
        _get("/api/v1/decisions/{decision}", "decision"),
        (200,),
        True,
    ),
    Row(
        "POST",
        "/api/v1/goliath/portfolio-optimization",
        Permission.FINANCE_DECIDE,
        _post_decision("/api/v1/goliath/portfolio-optimization", {"market": MARKET2}),
        (200,),
    ),
    Row(
        "POST",
        "/api/v1/goliath/efficient-frontier",
        Permission.FINANCE_DECIDE,
        _post_decision("/api/v1/goliath/efficient-frontier", {"market": MARKET2, "n_points": 3}),
        (200,),
    ),
    Row(
        "POST",
        "/api/v1/goliath/portfolio-selection",
        Permission.FINANCE_DECIDE,
        _post_decision(
            "/api/v1/goliath/portfolio-selection", {"market": MARKET2, "k": 1, "time_limit": 1}
        ),
        (200,),
    ),
    Row(
        "POST",
        "/api/v1/engine/solve",
        Permission.ENGINE_DECIDE,
        _post_decision("/api/v1/engine/solve", {"format": "gset", "model": "2 1\n1 2 1\n"}),
        (200,),
    ),
    Row(
        "GET",
        "/api/v1/jobs/{job_id}",
        Permission.FINANCE_READ,
        _get("/api/v1/jobs/{job}", "job"),
        (200,),
        True,
    ),
    Row(
        "POST",
        "/api/v1/jobs/{job_id}/cancel",
        Permission.FINANCE_DECIDE,
        _cancel,
        (202, 409),
        True,
    ),
    Row(
        "GET",
        "/api/v1/jobs/{job_id}/events",
        Permission.FINANCE_READ,
        _events,
        (200,),
        True,
    ),
    Row("GET", "/api/v1/audit/public-key", AUTHENTICATED, _get("/api/v1/audit/public-key"), (200,)),
    Row(
        "GET",
        "/api/v1/audit/checkpoints/latest",
        Permission.AUDIT_READ,
        _get("/api/v1/audit/checkpoints/latest"),
        (200,),
    ),
    Row("POST", "/api/v1/audit/checkpoints", Permission.AUDIT_READ, _checkpoint, (200, 201)),
    Row(
        "GET",
        "/api/v1/audit/leaves/{seq}",
        Permission.AUDIT_READ,
        _get("/api/v1/audit/leaves/{seq}", "seq"),
        (200,),
        True,
    ),
    Row(
        "GET",
        "/api/v1/audit/proofs/inclusion",
        Permission.AUDIT_READ,
        lambda w, c, r: w.client.get(
            "/api/v1/audit/proofs/inclusion", params={"seq": r["seq"]}, headers=c.headers
        ),
        (200,),
    ),
    Row(
        "GET",
        "/api/v1/audit/proofs/consistency",
        Permission.AUDIT_READ,
        lambda w, c, r: w.client.get(
            "/api/v1/audit/proofs/consistency", params={"first": 1}, headers=c.headers
        ),
        (200,),
    ),
]


def _resources(w: World, caller: Caller) -> dict[str, Any]:
    """A decision, a job, an audit leaf, a user and an API key of ``caller``'s organisation."""
    decision = w.client.post(
        "/api/v1/goliath/portfolio-optimization", json={"market": MARKET2}, headers=caller.headers
    ).json()
    job = w.client.post(
        "/api/v1/goliath/portfolio-optimization", json={"market": MARKET3}, headers=caller.headers
    ).json()
    assert "job_id" in job, job
    key = w.client.post(
        "/api/v1/api-keys", json={"name": "bot", "role": "viewer"}, headers=caller.headers
    ).json()
    viewer = w.client.post(
        "/api/v1/users",
        json={
            "email": f"managed-viewer@{caller.organisation}.test",
            "password": "correct horse battery",
            "role": "viewer",
        },
        headers=caller.headers,
    ).json()
    w.client.post("/api/v1/audit/checkpoints", headers=caller.headers)
    return {
        "decision": decision["decision_id"],
        "seq": decision["audit"]["seq"],
        "job": job["job_id"],
        "api_key": key["id"],
        "viewer_user": viewer["id"],
    }


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    """Inline limit 2 variables: the 2-asset decisions run inline, the 3-asset one as a job."""
    from nqba.auth.service import create_organisation, create_user, principal_of
    from nqba.auth.tokens import issue_access_token

    services = build_services(
        platform_settings(database_url, inline_max_variables=2, audit_checkpoint_every=1000),
        migrate=True,
    )

    def make(session: Any, org_id: str, org: str, role: Role) -> Caller:
        email = f"{role.value}@{org}.test"
        user = create_user(session, org_id, email, "correct horse battery", role)
        token = issue_access_token(services.settings, principal_of(user))
        headers = {"Authorization": f"Bearer {token}"}
        return Caller(org_id, org, user.id, email, "correct horse battery", role, headers)

    with services.session_factory.begin() as session:
        acme = create_organisation(session, "acme").id
        globex = create_organisation(session, "globex").id
        callers = {role: make(session, acme, "acme", role) for role in Role}
        foreign = make(session, globex, "globex", Role.OWNER)
    try:
        with TestClient(create_app(services)) as client:
            w = World(client, services, callers, {}, {})
            w.mine = _resources(w, callers[Role.OWNER])
            w.theirs = _resources(w, foreign)
            yield w
    finally:
        services.close()


def _schema_routes(client: TestClient) -> set[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return {(m.upper(), p) for p, ops in paths.items() for m in ops}


def _allowed(role: Role, permission: Permission | str) -> bool:
    if permission in (PUBLIC, AUTHENTICATED):
        return True
    assert isinstance(permission, Permission)
    return permission in permissions_of(role)


def test_the_matrix_names_every_route_of_the_schema(world: World) -> None:
    assert {(row.method, row.path) for row in ROWS} == _schema_routes(world.client)


def test_every_route_answers_403_exactly_to_roles_without_its_permission(world: World) -> None:
    wrong: list[str] = []
    for row in ROWS:
        for role, caller in world.callers.items():
            status = row.call(world, caller, world.mine).status_code
            expected = row.ok if _allowed(role, row.permission) else (403,)
            if status not in expected:
                wrong.append(f"{row.method} {row.path} as {role.value}: {status}, want {expected}")
    assert not wrong, "\n".join(wrong)


def test_every_resource_of_another_organisation_answers_404(world: World) -> None:
    wrong: list[str] = []
    for row in ROWS:
        if not row.foreign:
            continue
        for role, caller in world.callers.items():
            if not _allowed(role, row.permission):
                continue
            status = row.call(world, caller, world.theirs).status_code
            if status != 404:
                wrong.append(f"{row.method} {row.path} as {role.value}: {status}, want 404")
    assert not wrong, "\n".join(wrong)


def test_requests_without_credentials_get_401_on_every_protected_route(world: World) -> None:
    anonymous = Caller("", "", "", "", "", Role.VIEWER, {})
    wrong = [
        f"{row.method} {row.path}: {status}"
        for row in ROWS
        if row.permission != PUBLIC
        and (status := row.call(world, anonymous, world.mine).status_code) != 401
    ]
    assert not wrong, "\n".join(wrong)
