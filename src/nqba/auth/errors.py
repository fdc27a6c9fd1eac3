"""Typed errors of identity: the API maps them to 401/409/422, the CLI to one line."""

from __future__ import annotations


class AuthError(Exception):
    """Base of identity errors."""


class InvalidCredentialsError(AuthError):
    """Unknown user, wrong password, inactive user, or a bad, expired or revoked token/key."""


class DuplicateError(AuthError):
    """An organisation name or a user email that already exists."""


class NotFoundError(AuthError):
    """No such organisation, user or key (in the caller's organisation)."""
