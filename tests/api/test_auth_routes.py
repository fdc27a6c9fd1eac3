"""Identity over HTTP on SQLite and PostgreSQL: tokens, refresh, API keys, users, rate limits."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from nqba.api.app import create_app
from nqba.auth.api_keys import hash_secret, parse_api_key
from nqba.auth.ratelimit import LOGIN_FAILURES_PER_MINUTE
from nqba.auth.service import create_organisation, create_user
from nqba.authz import Role
from nqba.services import Services, build_services
from nqba.store.cache import RedisCache
from nqba.store.models import ApiKey
from tests.support.platform import TEST_SECRET, CallerFactory, platform_settings

REDIS_URL = "redis://127.0.0.1:6379/0"
PASSWORD = "correct horse battery"


def _sign_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/api/v1/auth/token", data={"username": email, "password": password})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    reason: str = error["reason"]
    return reason


# --- password flow ------------------------------------------------------------------------


def test_password_flow_answers_bearer_tokens_that_authenticate(
    client: TestClient, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.ANALYST)
    response = _sign_in(client, caller.email.upper(), caller.password)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["refresh_token"]
    me = client.get("/api/v1/auth/me", headers=_bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["actor_kind"] == "user"
    assert me.json()["email"] == caller.email
    assert me.json()["organisation"] == {"id": caller.organisation_id, "name": "acme"}
    assert me.json()["role"] == "analyst"
    assert "finance:decide" in me.json()["permissions"]
    assert "users:manage" not in me.json()["permissions"]


def test_wrong_password_and_unknown_email_get_the_same_401(
    client: TestClient, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.VIEWER)
    wrong = _sign_in(client, caller.email, "not the password")
    unknown = _sign_in(client, "nobody@acme.test", "not the password")
    assert _error(wrong, 401, "unauthorized") == _error(unknown, 401, "unauthorized")
    assert wrong.json() == unknown.json()


def test_token_endpoint_without_form_fields_answers_422(client: TestClient) -> None:
    _error(client.post("/api/v1/auth/token", data={"username": "a@b.c"}), 422, "invalid_request")


def test_a_deactivated_user_cannot_sign_in_or_refresh(
    client: TestClient, make_caller: CallerFactory
) -> None:
    admin, user = make_caller(Role.ADMIN), make_caller(Role.ANALYST)
    refresh = _sign_in(client, user.email).json()["refresh_token"]
    patch = client.patch(
        f"/api/v1/users/{user.user_id}", json={"is_active": False}, headers=admin.headers
    )
    assert patch.status_code == 200, patch.text
    assert "deactivated" in _error(_sign_in(client, user.email), 401, "unauthorized")
    reason = _error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": refresh}), 401, "unauthorized"
    )
    assert "revoked" in reason


def test_missing_tampered_or_expired_access_tokens_answer_401_with_a_reason(
    client: TestClient, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.VIEWER)
    assert "missing credentials" in _error(client.get("/api/v1/auth/me"), 401, "unauthorized")
    token = caller.headers["Authorization"].removeprefix("Bearer ")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    reason = _error(client.get("/api/v1/auth/me", headers=_bearer(tampered)), 401, "unauthorized")
    assert "invalid access token" in reason
    now = int(time.time())
    expired = jwt.encode(
        {
            "iss": "nqba",
            "sub": caller.user_id,
            "org": caller.organisation_id,
            "role": "viewer",
            "kind": "user",
            "typ": "access",
            "iat": now - 120,
            "exp": now - 60,
        },
        TEST_SECRET,
        algorithm="HS256",
    )
    response = client.get("/api/v1/auth/me", headers=_bearer(expired))
    assert "expired" in _error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


# --- refresh and sign-out -----------------------------------------------------------------


def test_refresh_rotates_and_reusing_an_old_token_revokes_the_family(
    client: TestClient, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.ANALYST)
    first = _sign_in(client, caller.email).json()["refresh_token"]
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    me = client.get("/api/v1/auth/me", headers=_bearer(rotated.json()["access_token"]))
    assert me.json()["email"] == caller.email

    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert "already used" in _error(reuse, 401, "unauthorized")
    # The thief's reuse also ends the legitimate holder's session: the newer token is dead.
    after = client.post("/api/v1/auth/refresh", json={"refresh_token": second})
    assert "revoked" in _error(after, 401, "unauthorized")
    # Another sign-in is a new family and still works.
    other = _sign_in(client, caller.email).json()["refresh_token"]
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": other}).status_code == 200


def test_two_concurrent_uses_of_one_refresh_token_let_exactly_one_win(
    client: TestClient, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.VIEWER)
    token = _sign_in(client, caller.email).json()["refresh_token"]
    barrier = threading.Barrier(2)

    def use() -> Any:
        barrier.wait()
        return client.post("/api/v1/auth/refresh", json={"refresh_token": token})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: use(), range(2)))
    assert sorted(a.status_code for a in answers) == [200, 401]
    [winner] = [a for a in answers if a.status_code == 200]
    # The loser counts as reuse, so the winner's new token is revoked with its family.
    after = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": winner.json()["refresh_token"]}
    )
    assert "revoked" in _error(after, 401, "unauthorized")


def test_logout_revokes_the_family_of_the_refresh_token(
    client: TestClient, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.VIEWER)
    token = _sign_in(client, caller.email).json()["refresh_token"]
    response = client.post("/api/v1/auth/logout", json={"refresh_token": token})
    assert response.status_code == 204, response.text
    reason = _error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": token}), 401, "unauthorized"
    )
    assert "revoked" in reason
    unknown = client.post("/api/v1/auth/logout", json={"refresh_token": "nope"})
    assert "invalid refresh token" in _error(unknown, 401, "unauthorized")


def test_refresh_with_a_bad_body_answers_422(client: TestClient) -> None:
    _error(client.post("/api/v1/auth/refresh", json={}), 422, "invalid_request")
    _error(client.post("/api/v1/auth/refresh", json={"refresh_token": ""}), 422, "invalid_request")


@contextmanager
def _platform(database_url: str, cache: str = "inprocess", **overrides: Any) -> Iterator[Platform]:
    """Services with ``overrides`` on ``database_url``; with ``cache="redis"``, a RedisCache
    whose keys live under a prefix of this test, removed afterwards."""
    services = build_services(platform_settings(database_url, **overrides), migrate=True)
    prefix = f"nqba-test-{uuid.uuid4().hex}:"
    if cache == "redis":
        services.cache.close()
        services.cache = RedisCache(REDIS_URL, prefix=prefix)
    try:
        with TestClient(create_app(services)) as client:
            yield Platform(client, services)
    finally:
        services.close()
        if cache == "redis":
            cleanup = redis.Redis.from_url(REDIS_URL)
            for key in cleanup.scan_iter(f"{prefix}*"):
                cleanup.delete(key)
            cleanup.close()


@dataclass
class Platform:
    """A client over services of its own (settings the shared fixture does not have)."""

    client: TestClient
    services: Services

    def seed_user(self, role: Role = Role.ADMIN) -> str:
        """A new user with ``PASSWORD`` in a new organisation; its email."""
        email = f"{role.value}-{uuid.uuid4().hex[:8]}@acme.test"
        with self.services.session_factory.begin() as session:
            org = create_organisation(session, f"acme-{uuid.uuid4().hex[:8]}")
            create_user(session, org.id, email, PASSWORD, role)
        return email

    def access_token(self, email: str) -> str:
        response = _sign_in(self.client, email)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


def test_an_expired_refresh_token_answers_401(database_url: str) -> None:
    with _platform(database_url, refresh_token_ttl_s=1) as platform:
        email = platform.seed_user(Role.VIEWER)
        body = _sign_in(platform.client, email).json()
        assert body["refresh_expires_in"] == 1
        time.sleep(1.2)
        response = platform.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]}
        )
        assert "expired" in _error(response, 401, "unauthorized")


def test_a_role_change_reaches_the_next_access_token_at_refresh(
    client: TestClient, make_caller: CallerFactory
) -> None:
    admin, user = make_caller(Role.ADMIN), make_caller(Role.VIEWER)
    refresh = _sign_in(client, user.email).json()["refresh_token"]
    client.patch(f"/api/v1/users/{user.user_id}", json={"role": "analyst"}, headers=admin.headers)
    access = client.post("/api/v1/auth/refresh", json={"refresh_token": refresh}).json()
    me = client.get("/api/v1/auth/me", headers=_bearer(access["access_token"]))
    assert me.json()["role"] == "analyst"


def test_changing_my_password_needs_the_current_one_and_signs_out_elsewhere(
    client: TestClient, make_caller: CallerFactory
) -> None:
    caller = make_caller(Role.VIEWER)
    refresh = _sign_in(client, caller.email).json()["refresh_token"]
    wrong = client.post(
        "/api/v1/auth/password",
        json={"current_password": "not it at all", "new_password": "a new long passphrase"},
        headers=caller.headers,
    )
    _error(wrong, 403, "forbidden")
    weak = client.post(
        "/api/v1/auth/password",
        json={"current_password": caller.password, "new_password": "short"},
        headers=caller.headers,
    )
    _error(weak, 422, "invalid_request")
    done = client.post(
        "/api/v1/auth/password",
        json={"current_password": caller.password, "new_password": "a new long passphrase"},
        headers=caller.headers,
    )
    assert done.status_code == 204, done.text
    _error(_sign_in(client, caller.email), 401, "unauthorized")
    assert _sign_in(client, caller.email, "a new long passphrase").status_code == 200
    stale = client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert "revoked" in _error(stale, 401, "unauthorized")


# --- API keys ----------------------------------------------------------------------------


def _create_key(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/api/v1/api-keys", json={"name": "bot", **body}, headers=headers)


def test_api_key_is_shown_once_and_authenticates_with_every_header_form(
    client: TestClient, services: Services, make_caller: CallerFactory
) -> None:
    admin = make_caller(Role.ADMIN)
    created = _create_key(client, admin.headers, role="analyst")
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    key = created.json()["key"]
    assert key.startswith(f"nqba_{created.json()['prefix']}_")

    listed = client.get("/api/v1/api-keys", headers=admin.headers)
    assert listed.status_code == 200
    [item] = listed.json()
    assert "key" not in item
    _, secret = parse_api_key(key)
    assert secret not in listed.text
    assert item["id"] == created.json()["id"]
    assert item["created_by"] == admin.user_id
    with services.session_factory() as session:
        row = session.execute(select(ApiKey)).scalar_one()
        assert row.secret_hash == hash_secret(secret)

    for headers in ({"X-API-Key": key}, _bearer(key)):
        me = client.get("/api/v1/auth/me", headers=headers)
        assert me.status_code == 200, me.text
        assert me.json()["actor_kind"] == "api_key"
        assert me.json()["id"] == item["id"]
        assert me.json()["email"] is None
        assert me.json()["role"] == "analyst"
        assert me.json()["organisation"]["id"] == admin.organisation_id


def test_a_revoked_unknown_or_doubled_api_key_answers_401(
    client: TestClient, make_caller: CallerFactory
) -> None:
    admin = make_caller(Role.ADMIN)
    created = _create_key(client, admin.headers, role="viewer").json()
    key = created["key"]
    deleted = client.delete(f"/api/v1/api-keys/{created['id']}", headers=admin.headers)
    assert deleted.status_code == 204, deleted.text
    revoked = client.get("/api/v1/auth/me", headers={"X-API-Key": key})
    assert "revoked" in _error(revoked, 401, "unauthorized")
    assert client.get("/api/v1/api-keys", headers=admin.headers).json()[0]["revoked_at"]

    prefix, secret = parse_api_key(key)
    for bad in (f"nqba_{prefix}_{secret[:-1]}x", "nqba_AAAAAAAAAAAA_" + "A" * 43, "nqba_oops"):
        _error(client.get("/api/v1/auth/me", headers={"X-API-Key": bad}), 401, "unauthorized")
    live = _create_key(client, admin.headers, role="viewer").json()["key"]
    both = client.get("/api/v1/auth/me", headers={"X-API-Key": live, **admin.headers})
    assert "not both" in _error(both, 401, "unauthorized")


def test_api_key_roles_may_not_exceed_the_creators(
    client: TestClient, make_caller: CallerFactory
) -> None:
    admin, owner = make_caller(Role.ADMIN), make_caller(Role.OWNER)
    _error(_create_key(client, admin.headers, role="owner"), 403, "forbidden")
    assert _create_key(client, admin.headers, role="auditor").status_code == 201
    assert _create_key(client, admin.headers, role="admin").status_code == 201
    assert _create_key(client, owner.headers, role="owner").status_code == 201


def test_an_admin_api_key_can_manage_keys_but_not_mint_an_owner_key(
    client: TestClient, make_caller: CallerFactory
) -> None:
    admin = make_caller(Role.ADMIN)
    machine = {"X-API-Key": _create_key(client, admin.headers, role="admin").json()["key"]}
    created = _create_key(client, machine, role="viewer")
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] is None
    _error(_create_key(client, machine, role="owner"), 403, "forbidden")


def test_only_users_managers_handle_api_keys(
    client: TestClient, make_caller: CallerFactory
) -> None:
    for role in (Role.ANALYST, Role.VIEWER, Role.AUDITOR):
        headers = make_caller(role).headers
        _error(_create_key(client, headers, role="viewer"), 403, "forbidden")
        _error(client.get("/api/v1/api-keys", headers=headers), 403, "forbidden")
    _error(client.get("/api/v1/api-keys"), 401, "unauthorized")


def test_another_organisations_api_key_is_not_found(
    client: TestClient, make_caller: CallerFactory
) -> None:
    acme, globex = make_caller(Role.ADMIN, "acme"), make_caller(Role.ADMIN, "globex")
    theirs = _create_key(client, globex.headers, role="viewer").json()
    assert client.get("/api/v1/api-keys", headers=acme.headers).json() == []
    gone = client.delete(f"/api/v1/api-keys/{theirs['id']}", headers=acme.headers)
    _error(gone, 404, "not_found")
    still = client.get("/api/v1/auth/me", headers={"X-API-Key": theirs["key"]})
    assert still.status_code == 200
    _error(
        client.delete(f"/api/v1/api-keys/{uuid.uuid4()}", headers=acme.headers), 404, "not_found"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"role": "viewer", "rate_limit_per_minute": 0},
        {"role": "god"},
        {"role": "viewer", "name": ""},
        {"role": "viewer", "secret": "mine"},
    ],
)
def test_bad_api_key_requests_answer_422(
    client: TestClient, make_caller: CallerFactory, body: dict[str, Any]
) -> None:
    admin = make_caller(Role.ADMIN)
    _error(_create_key(client, admin.headers, **body), 422, "invalid_request")


def test_last_used_is_recorded_on_use_and_not_rewritten_within_the_minute(
    client: TestClient, make_caller: CallerFactory
) -> None:
    admin = make_caller(Role.ADMIN)
    key = _create_key(client, admin.headers, role="viewer").json()["key"]
    assert client.get("/api/v1/api-keys", headers=admin.headers).json()[0]["last_used_at"] is None
    client.get("/api/v1/auth/me", headers={"X-API-Key": key})
    first = client.get("/api/v1/api-keys", headers=admin.headers).json()[0]["last_used_at"]
    assert first is not None
    client.get("/api/v1/auth/me", headers={"X-API-Key": key})
    assert client.get("/api/v1/api-keys", headers=admin.headers).json()[0]["last_used_at"] == first


# --- users ----------------------------------------------------------------------------------


def _create_user(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    values = {"email": f"u-{uuid.uuid4().hex[:8]}@acme.test", "password": PASSWORD, **body}
    return client.post("/api/v1/users", json=values, headers=headers)


def test_admin_creates_lists_and_updates_users_of_its_organisation(
    client: TestClient, make_caller: CallerFactory
) -> None:
    admin = make_caller(Role.ADMIN)
    created = _create_user(client, admin.headers, email="Ada@Acme.test", role="analyst")
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["email"] == "ada@acme.test"
    assert user["organisation_id"] == admin.organisation_id
    assert user["is_active"] is True
    assert "password" not in created.text
    assert _sign_in(client, "ada@acme.test").status_code == 200

    emails = {u["email"] for u in client.get("/api/v1/users", headers=admin.headers).json()}
    assert emails == {admin.email, "ada@acme.test"}
    patched = client.patch(
        f"/api/v1/users/{user['id']}", json={"role": "auditor"}, headers=admin.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["role"] == "auditor"


def test_user_errors_duplicate_409_and_bad_email_or_weak_password_422(
    client: TestClient, make_caller: CallerFactory
) -> None:
    admin = make_caller(Role.ADMIN)
    assert _create_user(client, admin.headers, email="ada@acme.test", role="viewer").is_success
    duplicate = _create_user(client, admin.headers, email="ADA@acme.test", role="viewer")
    assert "already exists" in _error(duplicate, 409, "conflict")
    bad_email = _create_user(client, admin.headers, email="not-an-email", role="viewer")
    assert "not an email" in _error(bad_email, 422, "invalid_request")
    weak = _create_user(client, admin.headers, password="short", role="viewer")
    assert "at least 12" in _error(weak, 422, "invalid_request")
    _error(_create_user(client, admin.headers, role="god"), 422, "invalid_request")
    empty = client.patch(f"/api/v1/users/{admin.user_id}", json={}, headers=admin.headers)
    _error(empty, 422, "invalid_request")


def test_user_roles_may_not_exceed_the_callers_and_owner_only_by_an_owner(
    client: TestClient, make_caller: CallerFactory
) -> None:
    admin, owner = make_caller(Role.ADMIN), make_caller(Role.OWNER)
    _error(_create_user(client, admin.headers, role="owner"), 403, "forbidden")
    assert _create_user(client, admin.headers, role="admin").status_code == 201
    assert _create_user(client, owner.headers, role="owner").status_code == 201
    demote = client.patch(
        f"/api/v1/users/{owner.user_id}", json={"role": "viewer"}, headers=admin.headers
    )
    _error(demote, 403, "forbidden")
    viewer = make_caller(Role.VIEWER)
    raise_self = client.patch(
        f"/api/v1/users/{viewer.user_id}", json={"role": "owner"}, headers=viewer.headers
    )
    _error(raise_self, 403, "forbidden")


def test_the_last_active_owner_cannot_be_deactivated_over_the_api(
    client: TestClient, make_caller: CallerFactory
) -> None:
    owner = make_caller(Role.OWNER)
    response = client.patch(
        f"/api/v1/users/{owner.user_id}", json={"is_active": False}, headers=owner.headers
    )
    assert "last active owner" in _error(response, 409, "conflict")


def test_another_organisations_user_is_not_found(
    client: TestClient, make_caller: CallerFactory
) -> None:
    acme, globex = make_caller(Role.OWNER, "acme"), make_caller(Role.VIEWER, "globex")
    emails = {u["email"] for u in client.get("/api/v1/users", headers=acme.headers).json()}
    assert globex.email not in emails
    response = client.patch(
        f"/api/v1/users/{globex.user_id}", json={"is_active": False}, headers=acme.headers
    )
    _error(response, 404, "not_found")
    assert _sign_in(client, globex.email).status_code == 200


def test_me_answers_any_authenticated_role(client: TestClient, make_caller: CallerFactory) -> None:
    for role in Role:
        caller = make_caller(role)
        me = client.get("/api/v1/auth/me", headers=caller.headers)
        assert me.status_code == 200, me.text
        assert me.json()["role"] == role.value
    auditor = make_caller(Role.AUDITOR)
    permissions = client.get("/api/v1/auth/me", headers=auditor.headers).json()["permissions"]
    assert "audit:read" in permissions
    assert not any(p.endswith(":decide") for p in permissions)


# --- rate limits ------------------------------------------------------------------------------


def _fresh_window() -> None:
    """Wait for a new minute if this one ends within 5 s, so a burst stays in one window."""
    remaining = 60 - time.time() % 60
    if remaining < 5:
        time.sleep(remaining + 0.1)


@pytest.fixture(params=["inprocess", "redis"])
def limited(request: pytest.FixtureRequest, database_url: str) -> Iterator[Platform]:
    """A platform limited to 3 requests per minute per caller, on each cache kind."""
    with _platform(database_url, cache=request.param, rate_limit_per_minute=3) as platform:
        yield platform


def test_over_the_default_limit_answers_429_with_retry_after(limited: Platform) -> None:
    token = limited.access_token(limited.seed_user(Role.VIEWER))
    _fresh_window()
    answers = [limited.client.get("/api/v1/auth/me", headers=_bearer(token)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers.get("x-ratelimit-remaining") for a in answers[:3]] == ["2", "1", "0"]
    reason = _error(answers[3], 429, "rate_limited")
    assert "3 requests per minute" in reason
    assert 1 <= int(answers[3].headers["retry-after"]) <= 60
    assert answers[3].json()["error"]["details"]["limit"] == 3


def test_a_keys_own_limit_overrides_the_default_and_callers_count_apart(
    limited: Platform,
) -> None:
    admin = _bearer(limited.access_token(limited.seed_user(Role.ADMIN)))
    _fresh_window()
    created = _create_key(limited.client, admin, role="viewer", rate_limit_per_minute=1)
    assert created.status_code == 201, created.text
    key = {"X-API-Key": created.json()["key"]}
    assert limited.client.get("/api/v1/auth/me", headers=key).status_code == 200
    over = limited.client.get("/api/v1/auth/me", headers=key)
    _error(over, 429, "rate_limited")
    assert int(over.headers["retry-after"]) >= 1
    # The admin's own budget (3 per minute) is separate: one request spent so far.
    assert limited.client.get("/api/v1/api-keys", headers=admin).status_code == 200


def test_repeated_failed_sign_ins_lock_the_email_for_the_minute(limited: Platform) -> None:
    email = limited.seed_user(Role.VIEWER)
    _fresh_window()
    for _ in range(LOGIN_FAILURES_PER_MINUTE):
        _error(_sign_in(limited.client, email, "wrong password!"), 401, "unauthorized")
    locked = _sign_in(limited.client, email)
    _error(locked, 429, "rate_limited")
    assert 1 <= int(locked.headers["retry-after"]) <= 60
