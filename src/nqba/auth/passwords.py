"""Argon2id password hashing (argon2-cffi's defaults, RFC 9106 low-memory profile)."""

from __future__ import annotations

import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from nqba.auth.errors import InvalidInputError

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
"""Longer passwords are refused so that hashing one cannot be used to spend our CPU."""


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` with a fresh salt."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (False for a malformed hash)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(32))


def verify_dummy(password: str) -> None:
    """Spend the time of one verification for an unknown user, so timing does not tell."""
    verify_password(_dummy_hash(), password)


def check_password_strength(password: str, email: str | None = None) -> None:
    """``InvalidInputError`` for a password that is too short, too long or the email itself."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInputError(f"password must have at most {MAX_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise InvalidInputError("password must not be only spaces")
    if len(set(password)) < 4:
        raise InvalidInputError("password must use at least 4 different characters")
    if email is not None and password.strip().lower() == email.strip().lower():
        raise InvalidInputError("password must not be the email address")


def generate_password() -> str:
    """A random password of about 190 bits (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)
