"""Organisations, users and sign-in. Functions take a session and never commit."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nqba.auth.errors import DuplicateError, InvalidCredentialsError, NotFoundError
from nqba.auth.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from nqba.authz import Principal, Role
from nqba.store.models import Organisation, User


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding spaces."""
    return email.strip().lower()


def create_organisation(session: Session, name: str) -> Organisation:
    """A new organisation; ``DuplicateError`` if the name is taken."""
    name = name.strip()
    if not name:
        raise ValueError("organisation name must not be empty")
    org = Organisation(name=name)
    session.add(org)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise DuplicateError(f"organisation {name!r} already exists") from None
    return org


def get_organisation_by_name(session: Session, name: str) -> Organisation:
    """The organisation called ``name``, or ``NotFoundError``."""
    org = session.execute(
        select(Organisation).where(Organisation.name == name)
    ).scalar_one_or_none()
    if org is None:
        raise NotFoundError(f"no organisation called {name!r}")
    return org


def create_user(
    session: Session, organisation_id: str, email: str, password: str, role: Role | str
) -> User:
    """A new active user; the password is stored as an Argon2id hash only."""
    role = Role(role)
    email = normalise_email(email)
    if "@" not in email or len(email) > 320:
        raise ValueError(f"not an email address: {email!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    user = User(
        organisation_id=organisation_id,
        email=email,
        password_hash=hash_password(password),
        role=role.value,
    )
    session.add(user)
    try:
        with session.begin_nested():
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
    """The active user with this email and password; one error for every failure."""
    user = session.execute(
        select(User).where(User.email == normalise_email(email))
    ).scalar_one_or_none()
    if user is None or not verify_password(user.password_hash, password) or not user.is_active:
        raise InvalidCredentialsError("incorrect email or password")
    return user
