"""Authorization: permissions per business unit, roles, and who is calling."""

from nqba.authz.permissions import (
    ROLE_PERMISSIONS,
    Permission,
    Principal,
    Role,
    permissions_of,
)

__all__ = ["ROLE_PERMISSIONS", "Permission", "Principal", "Role", "permissions_of"]
