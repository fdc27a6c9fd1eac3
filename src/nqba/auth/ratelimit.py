"""Fixed-window rate limits on the shared cache: a counter per caller per minute.

The counter's key names the caller and the window (``int(now // 60)``), so a new minute
starts a new counter; the old one expires on its own. With ``RedisCache`` every API process
counts against the same limit; with ``InProcessCache`` each process counts alone.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from nqba.auth.errors import TooManyAttemptsError
from nqba.authz import Principal
from nqba.store.cache import Cache

WINDOW_S = 60
LOGIN_FAILURES_PER_MINUTE = 10
"""Failed sign-ins per email per minute before the token endpoint answers 429."""


@dataclass(frozen=True)
class RateLimitState:
    """Where a caller stands in the current window."""

    limit: int
    remaining: int
    reset_s: int


def _window(now: float) -> tuple[int, int]:
    """The window number and the whole seconds (at least 1) until it ends."""
    window = int(now // WINDOW_S)
    return window, max(1, math.ceil((window + 1) * WINDOW_S - now))


def limit_for(principal: Principal, default_per_minute: int) -> int:
    """The caller's limit per minute: its key's own, else the default (0 means no limit)."""
    if principal.rate_limit_per_minute is not None:
        return principal.rate_limit_per_minute
    return default_per_minute


def hit(
    cache: Cache, principal: Principal, default_per_minute: int, now: float | None = None
) -> RateLimitState | None:
    """Count one request of ``principal``; None when it has no limit.

    ``TooManyAttemptsError`` (with the seconds to wait) once the window's limit is spent.
    """
    limit = limit_for(principal, default_per_minute)
    if limit <= 0:
        return None
    window, reset_s = _window(time.time() if now is None else now)
    key = f"ratelimit:{principal.actor_kind}:{principal.actor_id}:{window}"
    count = cache.incr(key, reset_s + 1)
    if count > limit:
        raise TooManyAttemptsError(
            f"rate limit of {limit} requests per minute reached; retry in {reset_s} s",
            retry_after_s=reset_s,
            limit=limit,
        )
    return RateLimitState(limit=limit, remaining=limit - count, reset_s=reset_s)


def _login_key(email: str, window: int) -> str:
    # A digest, so that the cache (Redis) holds no email addresses.
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"loginfail:{digest}:{window}"


def check_login_allowed(cache: Cache, email: str, now: float | None = None) -> None:
    """``TooManyAttemptsError`` when this email's failed sign-ins this minute are spent."""
    window, reset_s = _window(time.time() if now is None else now)
    raw = cache.get(_login_key(email, window))
    if raw is not None and int(raw) >= LOGIN_FAILURES_PER_MINUTE:
        raise TooManyAttemptsError(
            f"too many failed sign-ins for this account; retry in {reset_s} s",
            retry_after_s=reset_s,
            limit=LOGIN_FAILURES_PER_MINUTE,
        )


def record_login_failure(cache: Cache, email: str, now: float | None = None) -> None:
    """Count one failed sign-in for ``email`` in the current window."""
    window, reset_s = _window(time.time() if now is None else now)
    cache.incr(_login_key(email, window), reset_s + 1)
