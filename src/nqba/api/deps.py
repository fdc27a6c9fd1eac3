"""Dependencies the routers declare once and use in their signatures.

``ServicesDep`` is the process's wiring; ``SessionDep`` a session for the request, committed
when the endpoint returns without error. Authentication and the permission guard
(``CurrentPrincipal``, ``require``) live in :mod:`nqba.api.security`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from nqba.services import Services
from nqba.store.session import read_session


async def get_services(request: Request) -> Services:
    """The ``Services`` the app was started with (async: no I/O, so no thread hand-off)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    """A session for the request; committed on success, rolled back on error."""
    with read_session(services.session_factory) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
"""Committed when the endpoint function returns, before the response is sent, so a failed
commit is an error response and the next request sees the write."""
