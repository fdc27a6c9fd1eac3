"""Typed errors of identity: the API maps them to 401/403/404/409/422/429, the CLI to one line."""

from __future__ import annotations


class AuthError(Exception):
    """Base of identity errors."""


class InvalidCredentialsError(AuthError):
    """Unknown user, wrong password, inactive user, or a bad, expired or revoked token/key."""


class RefreshTokenReusedError(InvalidCredentialsError):
    """A refresh token was presented a second time; its whole family has been revoked.

    The revocation is a write in the caller's session: commit it before answering 401.
    """


class DuplicateError(AuthError):
    """An organisation name or a user email that already exists."""


class NotFoundError(AuthError):
    """No such organisation, user or key (in the caller's organisation)."""


class InvalidInputError(AuthError, ValueError):
    """A malformed email, a weak password, an unknown role or a bad limit."""


class RoleCeilingError(AuthError):
    """The caller tried to grant (or change) a role above its own."""


class LastOwnerError(AuthError):
    """The change would leave the organisation without an active owner."""


class TooManyAttemptsError(AuthError):
    """A rate limit is spent; ``retry_after_s`` says when the window ends."""

    def __init__(self, message: str, retry_after_s: int, limit: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.limit = limit
