"""Organisations, users and sign-in. Functions take a session and never commit."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nqba.auth.errors import (
    DuplicateError,
    InvalidCredentialsError,
    InvalidInputError,
    LastOwnerError,
    NotFoundError,
    RoleCeilingError,
)
from nqba.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    check_password_strength,
    generate_password,
    hash_password,
    needs_rehash,
    verify_dummy,
    verify_password,
)
from nqba.auth.refresh import revoke_user_refresh_tokens
from nqba.authz import Principal, Role
from nqba.store.models import Organisation, User

FIRST_ADMIN_EMAIL = "admin@localhost"
FIRST_ORGANISATION = "default"

ROLE_RANK: dict[Role, int] = {
    Role.OWNER: 4,
    Role.ADMIN: 3,
    Role.ANALYST: 2,
    Role.AUDITOR: 2,
    Role.VIEWER: 1,
}
"""How far a role reaches when granting roles: a caller grants only roles of its rank or
below, so an admin may create analysts, viewers and auditors (and admins) but not owners."""

# The WHATWG (HTML) form of an email address: it allows a dotless domain (admin@localhost).
_EMAIL = re.compile(
    r"^[a-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding spaces."""
    return email.strip().lower()


def check_email(email: str) -> str:
    """The normalised email, or ``InvalidInputError`` if it is not an email address."""
    normal = normalise_email(email)
    if len(normal) > 320 or not _EMAIL.match(normal):
        raise InvalidInputError(f"not an email address: {email!r}")
    return normal


def parse_role(role: Role | str) -> Role:
    """``role`` as a ``Role``; ``InvalidInputError`` names the known roles for a bad one."""
    try:
        return Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidInputError(f"unknown role {role!r}; known roles: {known}") from None


def check_may_grant(granter: Role, role: Role) -> None:
    """``RoleCeilingError`` unless a caller with role ``granter`` may hand out ``role``."""
    if ROLE_RANK[role] > ROLE_RANK[granter]:
        raise RoleCeilingError(
            f"role {granter.value!r} may not grant or change the role {role.value!r}"
        )


def create_organisation(session: Session, name: str) -> Organisation:
    """A new organisation; ``DuplicateError`` if the name is taken."""
    name = name.strip()
    if not name:
        raise InvalidInputError("organisation name must not be empty")
    if len(name) > 200:
        raise InvalidInputError("organisation name must have at most 200 characters")
    org = Organisation(name=name)
    try:
        with session.begin_nested():  # a duplicate rolls back to here, not the whole session
            session.add(org)
            session.flush()
    except IntegrityError:
        raise DuplicateError(f"organisation {name!r} already exists") from None
    return org


def get_organisation_by_name(session: Session, name: str) -> Organisation:
    """The organisation called ``name``, or ``NotFoundError``."""
    org = session.execute(
        select(Organisation).where(Organisation.name == name.strip())
    ).scalar_one_or_none()
    if org is None:
        raise NotFoundError(f"no organisation called {name!r}")
    return org


def get_organisation(session: Session, organisation_id: str) -> Organisation:
    """The organisation with this id, or ``NotFoundError``."""
    org = session.get(Organisation, organisation_id)
    if org is None:
        raise NotFoundError(f"no organisation with id {organisation_id!r}")
    return org


def create_user(
    session: Session, organisation_id: str, email: str, password: str, role: Role | str
) -> User:
    """A new active user; the password is stored as an Argon2id hash only.

    ``InvalidInputError`` for a bad email, a weak password or an unknown role;
    ``DuplicateError`` when the email is taken (in any organisation).
    """
    role = parse_role(role)
    email = check_email(email)
    check_password_strength(password, email)
    user = User(
        organisation_id=organisation_id,
        email=email,
        password_hash=hash_password(password),
        role=role.value,
        is_active=True,
    )
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError:
        raise DuplicateError(f"a user with email {email!r} already exists") from None
    return user


def principal_of(user: User) -> Principal:
    """The caller a signed-in user acts as."""
    return Principal(
        organisation_id=user.organisation_id,
        actor_kind="user",
        actor_id=user.id,
        role=Role(user.role),
        name=user.email,
    )


def authenticate(session: Session, email: str, password: str) -> User:
    """The active user with this email and password.

    An unknown email and a wrong password give the same error, and both cost one Argon2
    verification (against a dummy hash for an unknown email), so neither the answer nor its
    timing tells whether an account exists. A hash made with older parameters is upgraded.
    """
    failure = InvalidCredentialsError("incorrect email or password")
    user = session.execute(
        select(User).where(User.email == normalise_email(email))
    ).scalar_one_or_none()
    if user is None or len(password) > MAX_PASSWORD_LENGTH:
        verify_dummy(password[:MAX_PASSWORD_LENGTH])
        raise failure
    if not verify_password(user.password_hash, password):
        raise failure
    if not user.is_active:
        raise InvalidCredentialsError("this account is deactivated")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def get_user(session: Session, organisation_id: str | None, user_id: str) -> User:
    """The user with this id in the organisation (any organisation for None), or NotFound."""
    user = session.get(User, user_id)
    if user is None or (organisation_id is not None and user.organisation_id != organisation_id):
        raise NotFoundError(f"no user with id {user_id!r}")
    return user


def get_user_by_email(session: Session, email: str) -> User:
    """The user with this email, or ``NotFoundError``."""
    user = session.execute(
        select(User).where(User.email == normalise_email(email))
    ).scalar_one_or_none()
    if user is None:
        raise NotFoundError(f"no user with email {normalise_email(email)!r}")
    return user


def list_users(session: Session, organisation_id: str | None = None) -> list[User]:
    """The users of one organisation (all for None), oldest first."""
    query = select(User).order_by(User.created_at, User.email)
    if organisation_id is not None:
        query = query.where(User.organisation_id == organisation_id)
    return list(session.execute(query).scalars())


def update_user(
    session: Session,
    user: User,
    *,
    role: Role | str | None = None,
    is_active: bool | None = None,
    granter: Role | None = None,
) -> User:
    """Change a user's role and/or active flag.

    ``granter`` is the role of the caller making the change (None for the operator's CLI):
    it must reach both the user's current role and the new one. An organisation keeps at
    least one active owner (``LastOwnerError``). Deactivating revokes the user's refresh
    tokens, so no new access tokens are issued; issued ones expire within their short TTL.
    """
    new_role = parse_role(role) if role is not None else Role(user.role)
    new_active = user.is_active if is_active is None else is_active
    if granter is not None:
        check_may_grant(granter, Role(user.role))
        check_may_grant(granter, new_role)
    stays_owner = new_role is Role.OWNER and new_active
    if user.role == Role.OWNER.value and user.is_active and not stays_owner:
        others = session.execute(
            select(func.count())
            .select_from(User)
            .where(
                User.organisation_id == user.organisation_id,
                User.role == Role.OWNER.value,
                User.is_active.is_(True),
                User.id != user.id,
            )
        ).scalar_one()
        if others == 0:
            raise LastOwnerError(
                f"{user.email} is the organisation's last active owner; make another user "
                "owner first"
            )
    if user.is_active and not new_active:
        revoke_user_refresh_tokens(session, user.id)
    user.role = new_role.value
    user.is_active = new_active
    session.flush()
    return user


def ensure_first_admin(session: Session) -> tuple[str, str] | None:
    """On a database without users, create organisation "default" and its owner.

    Returns ``(email, password)`` of the new owner ``admin@localhost`` (a generated password,
    for ``nqba serve`` to print once), or None when the database already has users.
    """
    if session.execute(select(User.id).limit(1)).first() is not None:
        return None
    try:
        org = session.execute(
            select(Organisation).where(Organisation.name == FIRST_ORGANISATION)
        ).scalar_one_or_none() or create_organisation(session, FIRST_ORGANISATION)
        password = generate_password()
        create_user(session, org.id, FIRST_ADMIN_EMAIL, password, Role.OWNER)
    except DuplicateError:  # another process made the first admin at the same moment
        return None
    return FIRST_ADMIN_EMAIL, password


def set_password(session: Session, user: User, password: str) -> None:
    """Replace a user's password and revoke the user's refresh tokens (sign out elsewhere)."""
    check_password_strength(password, user.email)
    user.password_hash = hash_password(password)
    revoke_user_refresh_tokens(session, user.id)
    session.flush()


def change_password(session: Session, user: User, current: str, new: str) -> None:
    """A user's own change: the current password must match (``InvalidCredentialsError``)."""
    if len(current) > MAX_PASSWORD_LENGTH or not verify_password(user.password_hash, current):
        raise InvalidCredentialsError("current password is incorrect")
    if current == new:
        raise InvalidInputError("the new password must differ from the current one")
    set_password(session, user, new)
