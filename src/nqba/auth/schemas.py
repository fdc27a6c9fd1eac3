"""Request and response bodies of the identity endpoints (tokens, users, API keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nqba.authz import Permission, Role


class TokenResponse(BaseModel):
    """An OAuth2 bearer access token and the refresh token that renews it."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str = Field(description="Use once at /api/v1/auth/refresh for a new pair.")
    refresh_expires_in: int = Field(description="Seconds the refresh token is valid.")


class RefreshRequest(BaseModel):
    """A refresh token, to rotate (``/auth/refresh``) or to revoke (``/auth/logout``)."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=512)


class PasswordChange(BaseModel):
    """A signed-in user's own password change."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024, description="At least 12 characters.")


class OrganisationOut(BaseModel):
    """An organisation (tenant)."""

    id: str
    name: str


class Me(BaseModel):
    """Who the caller is: a user or an API key, its organisation, role and permissions."""

    actor_kind: Literal["user", "api_key"]
    id: str
    name: str
    email: str | None = Field(description="The user's email; null for an API key.")
    organisation: OrganisationOut
    role: Role
    permissions: list[Permission]
    rate_limit_per_minute: int | None = Field(
        description="Requests per minute allowed to this caller; null when unlimited."
    )


class UserOut(BaseModel):
    """A user of the caller's organisation."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    organisation_id: str
    email: str
    role: Role
    is_active: bool
    created_at: datetime


class UserCreate(BaseModel):
    """A new user of the caller's organisation."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320, examples=["ada@example.com"])
    password: str = Field(max_length=1024, description="At least 12 characters.")
    role: Role = Field(description="Not above the caller's role; owner only by an owner.")


class UserUpdate(BaseModel):
    """A change of role and/or active flag (at least one)."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> UserUpdate:
        if self.role is None and self.is_active is None:
            raise ValueError("give role and/or is_active")
        return self


class ApiKeyCreate(BaseModel):
    """A new API key of the caller's organisation."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["nightly-rebalance"])
    role: Role = Field(description="Not above the caller's role; owner only by an owner.")
    rate_limit_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Requests per minute for this key; null: the server's default.",
    )


class ApiKeyOut(BaseModel):
    """An API key as listed: never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str = Field(description="The public part of the key, nqba_<prefix>_...")
    role: Role
    rate_limit_per_minute: int | None
    created_by: str | None
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    """A new API key with its full text: shown this once, never again."""

    key: str = Field(description="Send as X-API-Key or Authorization: Bearer. Shown once.")
