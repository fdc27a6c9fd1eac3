"""A small key-value cache with expiry: Redis when configured, in-process otherwise.

Used for rate-limit counters and short-lived lookups; nothing in it is the only copy of data.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from nqba.config import Settings


class Cache(Protocol):
    """Get/set with a time to live, and an atomic counter for fixed windows."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    def incr(self, key: str, ttl_s: float) -> int:
        """Add one to ``key`` (created at 1 with ``ttl_s`` to live) and return the count."""
        ...

    def close(self) -> None: ...


class InProcessCache:
    """A dict with expiry times and a lock; shared by the threads of one process."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, bytes | int]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> bytes | int | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= now:
            del self._data[key]
            return None
        return item[1]

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._live(key, time.monotonic())
        if isinstance(value, int):
            return str(value).encode()
        return value

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + ttl_s, value)
            if len(self._data) > 100_000:
                self._evict(time.monotonic())

    def incr(self, key: str, ttl_s: float) -> int:
        with self._lock:
            now = time.monotonic()
            value = self._live(key, now)
            if isinstance(value, int):
                count = value + 1
                self._data[key] = (self._data[key][0], count)
            else:
                count = 1
                self._data[key] = (now + ttl_s, count)
            return count

    def _evict(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._data.items() if expires <= now]:
            del self._data[key]

    def close(self) -> None:
        with self._lock:
            self._data.clear()


class RedisCache:
    """The same operations on Redis, so several API processes share counters."""

    def __init__(self, url: str, prefix: str = "nqba:") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix

    def get(self, key: str) -> bytes | None:
        value = self._redis.get(self._prefix + key)
        if value is None or isinstance(value, bytes):
            return value
        return str(value).encode()

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._redis.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))

    def incr(self, key: str, ttl_s: float) -> int:
        pipe = self._redis.pipeline()
        pipe.incr(self._prefix + key)
        pipe.pexpire(self._prefix + key, max(1, int(ttl_s * 1000)), nx=True)
        count, _ = pipe.execute()
        return int(count)

    def ping(self) -> bool:
        """Whether Redis answers (readiness)."""
        return bool(self._redis.ping())

    def close(self) -> None:
        self._redis.close()


def make_cache(settings: Settings) -> Cache:
    """Redis when ``NQBA_REDIS_URL`` is set, else an in-process cache."""
    if settings.redis_url:
        return RedisCache(settings.redis_url)
    return InProcessCache()
