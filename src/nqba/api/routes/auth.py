"""Identity endpoints: OAuth2 password flow, refresh and sign-out, who-am-I, users, API keys.

Users and keys are managed with ``users:manage`` within the caller's organisation; another
organisation's user or key answers 404, as if it did not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.orm import Session

from nqba.api.deps import ServicesDep
from nqba.api.errors import ERROR_RESPONSES, ForbiddenError, UnauthorizedError
from nqba.api.security import CurrentPrincipal, api_error_of, require
from nqba.auth.api_keys import create_api_key, list_api_keys, revoke_api_key
from nqba.auth.errors import AuthError, InvalidCredentialsError, RefreshTokenReusedError
from nqba.auth.ratelimit import check_login_allowed, record_login_failure
from nqba.auth.refresh import revoke_refresh_family
from nqba.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    Me,
    OrganisationOut,
    PasswordChange,
    RefreshRequest,
    TokenResponse,
    UserCreate,
    UserOut,
    UserUpdate,
)
from nqba.auth.service import (
    authenticate,
    change_password,
    check_may_grant,
    create_user,
    get_organisation,
    get_user,
    list_users,
    update_user,
)
from nqba.auth.tokens import TokenPair, issue_token_pair, refresh_token_pair
from nqba.authz import Permission, Principal
from nqba.services import Services
from nqba.store.session import read_session, write_transaction

log = logging.getLogger("nqba.auth")

router = APIRouter(prefix="/api/v1", tags=["auth"])

Manager = Annotated[Principal, Depends(require(Permission.USERS_MANAGE))]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {code: ERROR_RESPONSES[code] for code in statuses}


def _write_session(services: ServicesDep) -> Iterator[Session]:
    """A write transaction committed before the response is sent (rolled back on error)."""
    with write_transaction(services.session_factory) as session:
        yield session


def _read_session(services: ServicesDep) -> Iterator[Session]:
    with read_session(services.session_factory) as session:
        yield session


WriteSession = Annotated[Session, Depends(_write_session, scope="function")]
ReadSession = Annotated[Session, Depends(_read_session, scope="function")]


def _token_response(pair: TokenPair, response: Response) -> TokenResponse:
    response.headers["Cache-Control"] = "no-store"
    return TokenResponse(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
    )


def _login_throttle(services: Services, email: str, failed: bool) -> None:
    """Check (or count a failure against) the per-email sign-in limit; off with limits off."""
    if services.settings.rate_limit_per_minute <= 0:
        return
    try:
        if failed:
            record_login_failure(services.cache, email)
        else:
            check_login_allowed(services.cache, email)
    except AuthError:
        raise
    except Exception as e:  # the cache is down: sign-in still works
        log.warning("sign-in throttle not checked: cache error", extra={"error": type(e).__name__})


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    responses=_errors(401, 422, 429),
    summary="Sign in (OAuth2 password flow)",
)
def issue_token(
    services: ServicesDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    response: Response,
) -> TokenResponse:
    """Exchange email (``username``) and password for an access token and a refresh token.

    A wrong password and an unknown email get the same answer. After 10 failed sign-ins for
    one email within a minute, the endpoint answers 429 until the minute ends.
    """
    try:
        _login_throttle(services, form.username, failed=False)
        try:
            with read_session(services.session_factory) as session:
                user = authenticate(session, form.username, form.password)
        except InvalidCredentialsError:
            _login_throttle(services, form.username, failed=True)
            raise
        with write_transaction(services.session_factory) as session:
            pair = issue_token_pair(session, services.settings, user)
    except AuthError as e:
        raise api_error_of(e) from None
    log.info("signed in", extra={"user_id": user.id})
    return _token_response(pair, response)


@router.post(
    "/auth/refresh",
    response_model=TokenResponse,
    responses=_errors(401, 422),
    summary="Rotate a refresh token",
)
def refresh(services: ServicesDep, body: RefreshRequest, response: Response) -> TokenResponse:
    """Use a refresh token once for a new access token and a new refresh token.

    Presenting a refresh token that was already used revokes every token of its sign-in
    (reuse detection) and answers 401; expired and revoked tokens answer 401 too.
    """
    error: InvalidCredentialsError | None = None
    with write_transaction(services.session_factory) as session:
        try:
            pair = refresh_token_pair(session, services.settings, body.refresh_token)
        except InvalidCredentialsError as e:
            error = e  # the transaction still commits: a reuse revokes the family
    if error is not None:
        if isinstance(error, RefreshTokenReusedError):
            log.warning("refresh token reuse detected; family revoked")
        raise api_error_of(error)
    return _token_response(pair, response)


@router.post(
    "/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_errors(401, 422),
    summary="Sign out",
)
def logout(body: RefreshRequest, session: WriteSession) -> Response:
    """Revoke the refresh token and every token of its sign-in."""
    try:
        revoke_refresh_family(session, body.refresh_token)
    except AuthError as e:
        raise api_error_of(e) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/auth/me", response_model=Me, responses=_errors(401, 429), summary="Who am I")
def me(principal: CurrentPrincipal, session: ReadSession, services: ServicesDep) -> Me:
    """The caller: user or API key, organisation, role, permissions and rate limit."""
    try:
        org = get_organisation(session, principal.organisation_id)
    except AuthError as e:
        raise api_error_of(e) from None
    limit = principal.rate_limit_per_minute
    if limit is None:
        limit = services.settings.rate_limit_per_minute or None
    return Me(
        actor_kind=principal.actor_kind,
        id=principal.actor_id,
        name=principal.name,
        email=principal.name if principal.actor_kind == "user" else None,
        organisation=OrganisationOut(id=org.id, name=org.name),
        role=principal.role,
        permissions=sorted(principal.permissions),
        rate_limit_per_minute=limit,
    )


@router.post(
    "/auth/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_errors(401, 403, 422, 429),
    summary="Change my password",
)
def change_my_password(
    body: PasswordChange, principal: CurrentPrincipal, session: WriteSession
) -> Response:
    """Change the signed-in user's password; every refresh token of the user is revoked."""
    if principal.actor_kind != "user":
        raise ForbiddenError("an API key has no password")
    try:
        user = get_user(session, principal.organisation_id, principal.actor_id)
        if not user.is_active:
            raise UnauthorizedError("this account is deactivated")
        change_password(session, user, body.current_password, body.new_password)
    except InvalidCredentialsError as e:  # a wrong current password: not a bad token
        raise ForbiddenError(str(e)) from None
    except AuthError as e:
        raise api_error_of(e) from None
    log.info("password changed", extra={"user_id": user.id})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users",
    response_model=UserOut,
    status_code=status.HTTP_201_CREATED,
    responses=_errors(401, 403, 409, 422, 429),
    summary="Create a user",
)
def create_user_endpoint(body: UserCreate, principal: Manager, session: WriteSession) -> UserOut:
    """A new user in the caller's organisation, with a role not above the caller's."""
    try:
        check_may_grant(principal.role, body.role)
        user = create_user(session, principal.organisation_id, body.email, body.password, body.role)
    except AuthError as e:
        raise api_error_of(e) from None
    log.info("user created", extra={"user_id": user.id, "by": principal.actor_id})
    return UserOut.model_validate(user)


@router.get(
    "/users",
    response_model=list[UserOut],
    responses=_errors(401, 403, 429),
    summary="List users",
)
def list_users_endpoint(principal: Manager, session: ReadSession) -> list[UserOut]:
    """The users of the caller's organisation."""
    return [UserOut.model_validate(u) for u in list_users(session, principal.organisation_id)]


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    responses=_errors(401, 403, 404, 409, 422, 429),
    summary="Change a user's role or active flag",
)
def update_user_endpoint(
    user_id: str, body: UserUpdate, principal: Manager, session: WriteSession
) -> UserOut:
    """Change role and/or ``is_active`` of a user of the caller's organisation.

    The caller's role must reach both the user's current role and the new one; the last
    active owner cannot be demoted or deactivated (409). Deactivating revokes the user's
    refresh tokens.
    """
    try:
        user = get_user(session, principal.organisation_id, user_id)
        update_user(session, user, role=body.role, is_active=body.is_active, granter=principal.role)
    except AuthError as e:
        raise api_error_of(e) from None
    log.info("user updated", extra={"user_id": user.id, "by": principal.actor_id})
    return UserOut.model_validate(user)


@router.post(
    "/api-keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=_errors(401, 403, 422, 429),
    summary="Create an API key",
)
def create_api_key_endpoint(
    body: ApiKeyCreate, principal: Manager, session: WriteSession, response: Response
) -> ApiKeyCreated:
    """A new key for machines; the response holds the full key, shown this once."""
    try:
        key, full = create_api_key(
            session,
            organisation_id=principal.organisation_id,
            name=body.name,
            role=body.role,
            granter=principal.role,
            created_by=principal.actor_id if principal.actor_kind == "user" else None,
            rate_limit_per_minute=body.rate_limit_per_minute,
        )
    except AuthError as e:
        raise api_error_of(e) from None
    log.info("api key created", extra={"api_key_id": key.id, "by": principal.actor_id})
    response.headers["Cache-Control"] = "no-store"
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(key).model_dump(), "key": full})


@router.get(
    "/api-keys",
    response_model=list[ApiKeyOut],
    responses=_errors(401, 403, 429),
    summary="List API keys",
)
def list_api_keys_endpoint(principal: Manager, session: ReadSession) -> list[ApiKeyOut]:
    """The keys of the caller's organisation, revoked ones included; never their secrets."""
    keys = list_api_keys(session, principal.organisation_id)
    return [ApiKeyOut.model_validate(k) for k in keys]


@router.delete(
    "/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_errors(401, 403, 404, 429),
    summary="Revoke an API key",
)
def revoke_api_key_endpoint(key_id: str, principal: Manager, session: WriteSession) -> Response:
    """Revoke a key of the caller's organisation; it answers 401 from now on."""
    try:
        revoke_api_key(session, principal.organisation_id, key_id)
    except AuthError as e:
        raise api_error_of(e) from None
    log.info("api key revoked", extra={"api_key_id": key_id, "by": principal.actor_id})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
