"""Fixed-window rate limits on both caches: the in-process one and real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from nqba.auth.errors import TooManyAttemptsError
from nqba.auth.ratelimit import (
    LOGIN_FAILURES_PER_MINUTE,
    check_login_allowed,
    hit,
    limit_for,
    record_login_failure,
)
from nqba.authz import Principal, Role
from nqba.store.cache import Cache, InProcessCache, RedisCache

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["inprocess", "redis"])
def cache(request: pytest.FixtureRequest) -> Iterator[Cache]:
    """Each cache kind; Redis keys live under a prefix of their own, removed afterwards."""
    if request.param == "inprocess":
        yield InProcessCache()
        return
    prefix = f"nqba-test-{uuid.uuid4().hex}:"
    real = RedisCache(REDIS_URL, prefix=prefix)
    try:
        yield real
    finally:
        real.close()
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()


def _key(limit: int | None = None) -> Principal:
    return Principal(
        organisation_id="org",
        actor_kind="api_key",
        actor_id=uuid.uuid4().hex,
        role=Role.ANALYST,
        rate_limit_per_minute=limit,
    )


START = 1_800_000_000.0  # a window boundary (divisible by 60)


def test_requests_within_the_limit_pass_and_count_down(cache: Cache) -> None:
    principal = _key(3)
    states = [hit(cache, principal, 600, now=START + i) for i in range(3)]
    assert [s.remaining for s in states if s is not None] == [2, 1, 0]
    assert all(s is not None and s.limit == 3 for s in states)


def test_request_over_the_limit_raises_with_seconds_to_the_next_window(cache: Cache) -> None:
    principal = _key(2)
    hit(cache, principal, 600, now=START + 10)
    hit(cache, principal, 600, now=START + 10.5)
    with pytest.raises(TooManyAttemptsError) as caught:
        hit(cache, principal, 600, now=START + 15.2)
    assert caught.value.retry_after_s == 45
    assert caught.value.limit == 2


def test_a_new_minute_starts_a_new_window(cache: Cache) -> None:
    principal = _key(1)
    hit(cache, principal, 600, now=START + 59)
    with pytest.raises(TooManyAttemptsError) as caught:
        hit(cache, principal, 600, now=START + 59.5)
    assert caught.value.retry_after_s == 1
    state = hit(cache, principal, 600, now=START + 60)
    assert state is not None
    assert state.remaining == 0


def test_callers_are_counted_separately(cache: Cache) -> None:
    first, second = _key(1), _key(1)
    hit(cache, first, 600, now=START)
    with pytest.raises(TooManyAttemptsError):
        hit(cache, first, 600, now=START)
    assert hit(cache, second, 600, now=START) is not None


def test_the_default_applies_without_a_key_limit_and_zero_turns_limits_off(cache: Cache) -> None:
    user = Principal(organisation_id="org", actor_kind="user", actor_id="u", role=Role.VIEWER)
    assert limit_for(user, 7) == 7
    assert limit_for(_key(3), 7) == 3
    assert all(hit(cache, user, 0, now=START) is None for _ in range(100))


def test_failed_sign_ins_lock_the_email_for_the_rest_of_the_minute(cache: Cache) -> None:
    email = f"{uuid.uuid4().hex}@example.com"
    for _ in range(LOGIN_FAILURES_PER_MINUTE):
        check_login_allowed(cache, email, now=START + 1)
        record_login_failure(cache, email, now=START + 1)
    with pytest.raises(TooManyAttemptsError) as caught:
        check_login_allowed(cache, email.upper(), now=START + 2)
    assert caught.value.retry_after_s == 58
    check_login_allowed(cache, email, now=START + 60)
    check_login_allowed(cache, f"other-{email}", now=START + 2)
