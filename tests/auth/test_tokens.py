"""Access tokens: a verified token is answered from the cache until it expires, and only then."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from nqba.auth import tokens
from nqba.auth.errors import InvalidCredentialsError
from nqba.auth.tokens import decode_access_token, issue_access_token
from nqba.authz import Principal, Role
from tests.support.platform import platform_settings

PRINCIPAL = Principal(organisation_id="org-1", actor_kind="user", actor_id="u-1", role=Role.ANALYST)


def _counting_decode(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = jwt.decode

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counted)
    return calls


def test_a_verified_token_is_answered_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = platform_settings("sqlite://")
    token = issue_access_token(settings, PRINCIPAL)
    calls = _counting_decode(monkeypatch)
    first = decode_access_token(settings, token)
    second = decode_access_token(settings, token)
    assert first == second
    assert first.actor_id == "u-1"
    assert first.role is Role.ANALYST
    assert len(calls) == 1


def test_a_cached_token_past_its_expiry_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = platform_settings("sqlite://", access_token_ttl_s=60)
    token = issue_access_token(settings, PRINCIPAL)
    decode_access_token(settings, token)
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidCredentialsError, match="expired"):
        decode_access_token(settings, token)
    assert (settings.secret_key, token) not in tokens._verified


def test_a_token_is_verified_anew_under_another_secret_or_when_changed() -> None:
    settings = platform_settings("sqlite://")
    token = issue_access_token(settings, PRINCIPAL)
    decode_access_token(settings, token)
    other = platform_settings("sqlite://", secret_key="another secret key of enough length 123")
    with pytest.raises(InvalidCredentialsError, match="invalid access token"):
        decode_access_token(other, token)
    head, body, signature = token.split(".")
    forged = ".".join([head, body, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")])
    with pytest.raises(InvalidCredentialsError, match="invalid access token"):
        decode_access_token(settings, forged)
