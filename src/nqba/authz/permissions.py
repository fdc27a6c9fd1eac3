"""The permission enum, the role -> permissions map, and the caller (``Principal``).

Permissions are ``<unit>:<action>``. ``read`` sees a unit's decisions, ``decide`` makes new
ones. ``audit:read`` sees the audit log and its proofs; ``users:manage`` manages the
organisation's users and API keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


class Permission(StrEnum):
    """What a caller may do; checked by the API's one guard dependency."""

    ENGINE_READ = "engine:read"
    ENGINE_DECIDE = "engine:decide"
    FINANCE_READ = "finance:read"
    FINANCE_DECIDE = "finance:decide"
    ENERGY_READ = "energy:read"
    ENERGY_DECIDE = "energy:decide"
    SALES_READ = "sales:read"
    SALES_DECIDE = "sales:decide"
    ASSESSMENT_READ = "assessment:read"
    ASSESSMENT_DECIDE = "assessment:decide"
    AUDIT_READ = "audit:read"
    USERS_MANAGE = "users:manage"


class Role(StrEnum):
    """A user's or an API key's role within its organisation."""

    OWNER = "owner"
    ADMIN = "admin"
    ANALYST = "analyst"
    VIEWER = "viewer"
    AUDITOR = "auditor"


UNITS = ("engine", "finance", "energy", "sales", "assessment")
"""The business units (and the engine) that decisions belong to."""


def _unit_permissions(action: Literal["read", "decide"]) -> frozenset[Permission]:
    return frozenset(Permission(f"{unit}:{action}") for unit in UNITS)


_READ = _unit_permissions("read")
_DECIDE = _unit_permissions("decide")

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: _READ | _DECIDE | {Permission.USERS_MANAGE},
    Role.ANALYST: _READ | _DECIDE,
    Role.VIEWER: _READ,
    Role.AUDITOR: _READ | {Permission.AUDIT_READ},
}
"""Owner: everything. Admin: every unit and user management, not the audit log. Analyst: read
and decide. Viewer: read. Auditor: read and the audit log, never decide."""


def permissions_of(role: Role | str) -> frozenset[Permission]:
    """The permissions of ``role`` (a ``ValueError`` names the known roles for a bad one)."""
    try:
        return ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise ValueError(f"unknown role {role!r}; known roles: {known}") from None


def read_permission(unit: str) -> Permission:
    """``<unit>:read``."""
    return Permission(f"{unit}:read")


def decide_permission(unit: str) -> Permission:
    """``<unit>:decide``."""
    return Permission(f"{unit}:decide")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (password/JWT) or an API key, in one organisation."""

    organisation_id: str
    actor_kind: Literal["user", "api_key"]
    actor_id: str
    role: Role
    name: str = ""
    permissions: frozenset[Permission] = field(default=frozenset())
    rate_limit_per_minute: int | None = None

    def __post_init__(self) -> None:
        if not self.permissions:
            object.__setattr__(self, "permissions", permissions_of(self.role))

    def can(self, permission: Permission) -> bool:
        """Whether this caller holds ``permission``."""
        return permission in self.permissions
