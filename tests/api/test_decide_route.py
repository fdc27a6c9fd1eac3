"""The decision routes' own request path answers as FastAPI's general one would.

Each decision endpoint is mounted twice in one app: at its own path, through
``DecisionRoute``, and at a reference path through FastAPI's ``APIRoute``. Every request of
the matrix below goes to both; the status, the error body and the headers a client acts on
must be the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from nqba.api.app import create_app
from nqba.api.decide import DecisionRoute, reference_router
from nqba.api.routes import decisions as decision_routes
from nqba.api.routes import engine as engine_routes
from nqba.auth.service import create_organisation, create_user, principal_of
from nqba.auth.tokens import issue_access_token
from nqba.authz import Role
from nqba.finance import endpoints as finance_endpoints
from nqba.services import Services, build_services
from tests.support.platform import platform_settings, temporary_database

MARKET = {
    "assets": ["A", "B", "C"],
    "expected_returns": [0.10, 0.08, 0.05],
    "covariance": [[0.04, 0.01, 0.0], [0.01, 0.03, 0.0], [0.0, 0.0, 0.01]],
}
OPTIMIZE = {"market": MARKET, "spec": {"objective": "min_variance"}}
GENERIC = {"unit": "finance", "kind": "portfolio-optimization", "payload": OPTIMIZE}
PORTFOLIO = "/api/v1/goliath/portfolio-optimization"
GENERIC_PATH = "/api/v1/nqba/decision-engine"
REFERENCE = "/reference"
JSON_TYPE = {"Content-Type": "application/json"}
COMPARED_HEADERS = ("content-type", "www-authenticate", "retry-after", "idempotent-replayed")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    """An app with each decision route mounted twice, and the headers of three callers."""
    tmp: Path = tmp_path_factory.mktemp("decide-route")
    with temporary_database("sqlite", tmp) as url:
        services: Services = build_services(platform_settings(url), migrate=True)
        app = create_app(services)
        app.include_router(reference_router(_decision_routes(), REFERENCE))
        tokens = {}
        with services.session_factory.begin() as session:
            org = create_organisation(session, "acme")
            for role in (Role.ANALYST, Role.VIEWER):
                email = f"{role.value}@acme.test"
                user = create_user(session, org.id, email, "correct horse battery", role)
                tokens[role.value] = issue_access_token(services.settings, principal_of(user))
        headers = {
            "analyst": {"Authorization": f"Bearer {tokens['analyst']}"},
            "viewer": {"Authorization": f"Bearer {tokens['viewer']}"},
            "none": {},
            "bad token": {"Authorization": "Bearer not-a-token"},
            "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
            "two credentials": {
                "Authorization": f"Bearer {tokens['analyst']}",
                "X-API-Key": "nqba_abc_def",
            },
        }
        try:
            with TestClient(app) as client:
                yield client, headers
        finally:
            services.close()


DECISION_ROUTERS = (finance_endpoints.router, engine_routes.router, decision_routes.router)


def _decision_routes() -> list[DecisionRoute]:
    return [r for x in DECISION_ROUTERS for r in x.routes if isinstance(r, DecisionRoute)]


def _both(client: TestClient, path: str, **kwargs: Any) -> tuple[Any, Any]:
    return client.post(path, **kwargs), client.post(REFERENCE + path, **kwargs)


def _same_answer(ours: Any, reference: Any) -> None:
    assert ours.status_code == reference.status_code, (ours.text, reference.text)
    for header in COMPARED_HEADERS:
        assert ours.headers.get(header) == reference.headers.get(header), header
    if ours.status_code >= 400:
        assert ours.json() == reference.json()
    else:
        assert ours.json().keys() == reference.json().keys()


def test_every_decision_endpoint_takes_the_decision_route() -> None:
    """And their routers declare no dependencies, which the route's own path would skip."""
    assert all(not router.dependencies for router in DECISION_ROUTERS)
    paths = {r.path for r in _decision_routes()}
    assert paths == {
        PORTFOLIO,
        "/api/v1/goliath/efficient-frontier",
        "/api/v1/goliath/portfolio-selection",
        "/api/v1/engine/solve",
        GENERIC_PATH,
    }


BODIES: dict[str, dict[str, Any]] = {
    "valid": {"json": OPTIMIZE},
    "valid, +json media type": {
        "content": json.dumps(OPTIMIZE),
        "headers": {"Content-Type": "application/vnd.nqba+json; charset=utf-8"},
    },
    "no body": {"headers": JSON_TYPE},
    "empty body": {"content": b"", "headers": JSON_TYPE},
    "malformed JSON": {"content": b'{"market": ', "headers": JSON_TYPE},
    "not JSON text": {"content": b"market=1", "headers": JSON_TYPE},
    "text/plain": {"content": json.dumps(OPTIMIZE), "headers": {"Content-Type": "text/plain"}},
    "no content type": {"content": json.dumps(OPTIMIZE)},
    "a list": {"json": [OPTIMIZE]},
    "null": {"content": b"null", "headers": JSON_TYPE},
    "missing market": {"json": {"spec": OPTIMIZE["spec"]}},
    "wrong types": {"json": {"market": {**MARKET, "expected_returns": "high"}, "spec": {}}},
    "NaN return": {
        "content": json.dumps(OPTIMIZE).replace("0.08", "NaN"),
        "headers": JSON_TYPE,
    },
    "unknown objective": {"json": {"market": MARKET, "spec": {"objective": "luck"}}},
    "infeasible sizes": {
        "json": {"market": {**MARKET, "expected_returns": [0.1, 0.2]}, "spec": {}},
    },
    "duplicate keys": {
        "content": b'{"spec": {"objective": "luck"}, "market": '
        + json.dumps(MARKET).encode()
        + b', "spec": {"objective": "min_variance"}}',
        "headers": JSON_TYPE,
    },
}


@pytest.mark.parametrize("caller", ["analyst", "viewer", "none", "bad token", "basic"])
@pytest.mark.parametrize("body", list(BODIES))
def test_portfolio_route_answers_as_fastapi_would(
    setup: tuple[TestClient, dict[str, Any]], caller: str, body: str
) -> None:
    client, headers = setup
    kwargs = dict(BODIES[body])
    kwargs["headers"] = {**kwargs.get("headers", {}), **headers[caller]}
    _same_answer(*_both(client, PORTFOLIO, **kwargs))


@pytest.mark.parametrize(
    ("caller", "key", "body"),
    [
        ("analyst", "k" * 256, OPTIMIZE),
        ("analyst", "k" * 256, {"spec": {}}),
        ("none", "k" * 256, {"spec": {}}),
        ("viewer", "k" * 256, OPTIMIZE),
        ("two credentials", "k", OPTIMIZE),
    ],
)
def test_idempotency_key_and_credentials_errors_match_fastapi(
    setup: tuple[TestClient, dict[str, Any]], caller: str, key: str, body: Any
) -> None:
    client, headers = setup
    kwargs = {"json": body, "headers": {**headers[caller], "Idempotency-Key": key}}
    _same_answer(*_both(client, PORTFOLIO, **kwargs))


def test_a_replayed_decision_says_so_on_both_routes(
    setup: tuple[TestClient, dict[str, Any]],
) -> None:
    client, headers = setup
    for path in (PORTFOLIO, REFERENCE + PORTFOLIO):
        kwargs = {"json": OPTIMIZE, "headers": {**headers["analyst"], "Idempotency-Key": path}}
        first, again = client.post(path, **kwargs), client.post(path, **kwargs)
        assert first.status_code == again.status_code == 200
        assert "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["decision_id"] == first.json()["decision_id"]


@pytest.mark.parametrize(
    "body",
    [
        GENERIC,
        {**GENERIC, "payload": {"market": MARKET, "spec": {"objective": "luck"}}},
        {**GENERIC, "unit": "energy"},
        {**GENERIC, "unit": "nowhere"},
        {"unit": "finance"},
    ],
)
@pytest.mark.parametrize("caller", ["analyst", "viewer", "none"])
def test_generic_route_answers_as_fastapi_would(
    setup: tuple[TestClient, dict[str, Any]], caller: str, body: Any
) -> None:
    client, headers = setup
    _same_answer(*_both(client, GENERIC_PATH, json=body, headers=headers[caller]))


def test_an_endpoint_of_another_shape_is_refused_when_the_route_is_built() -> None:
    router = APIRouter()

    async def endpoint(body: dict[str, Any]) -> dict[str, Any]:
        return body

    with pytest.raises(TypeError, match="a decision endpoint takes exactly"):
        router.add_api_route("/x", endpoint, methods=["POST"], route_class_override=DecisionRoute)
