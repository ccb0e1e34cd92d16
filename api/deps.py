"""FastAPI dependencies, all in one place, as `Annotated` aliases a route simply declares.

Long-lived objects (`Services`, the task dispatcher, `Settings`) live on `app.state`, put there by
the lifespan in `api.main`; nothing here reaches for a global.

Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency on its
thread pool, a hand-off to another thread and back for every one of them on every request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import Forbidden, ServiceUnavailable, Unauthorized
from api.security import authenticate
from config.settings import Settings
from services.context import Services
from services.dispatch import Dispatcher
from storage.tables import User


def _state(request: Request, name: str):
    value = getattr(request.app.state, name, None)
    if value is None:
        raise ServiceUnavailable("the service is starting up; retry shortly")
    return value


async def get_settings(request: Request) -> Settings:
    return _state(request, "settings")


async def get_services(request: Request) -> Services:
    return _state(request, "services")


async def get_dispatcher(request: Request) -> Dispatcher:
    return _state(request, "dispatcher")


def get_session(services: Annotated[Services, Depends(get_services)]) -> Iterator[Session]:
    """One session per request; rolled back if the request fails, always closed."""
    session = services.sessions()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key `cl_<prefix>_<secret>`, sent as `Authorization: Bearer <key>`.",
)


def authenticated_user(session: Session, authorization: str | None) -> User:
    """The enabled user of an ``Authorization: Bearer <key>`` header; Unauthorized otherwise."""
    if not authorization or not authorization.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    user = authenticate(session, authorization)
    if user is None:
        raise Unauthorized("invalid or disabled API key")
    return user


async def get_current_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The caller. Routes of `api.routing.AuthorisedRoute` checked the key before the body was
    read and left the user; any other route checks it here (on the thread pool: a query)."""
    checked: User | None = getattr(request.state, "user", None)
    if checked is not None:
        return session.merge(checked, load=False)  # the row the gate read, without reading it again
    header = None if credentials is None else f"{credentials.scheme} {credentials.credentials}"
    return await run_in_threadpool(authenticated_user, session, header)


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: str):
    async def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise Forbidden(f"this action needs the {' or '.join(roles)} role")
        return user

    check.roles = roles  # type: ignore[attr-defined]  # read by api.routing before the body is parsed
    return check


CustomerUser = Annotated[User, Depends(require_roles("customer"))]
# Who may read a claim: its customer (their own only: services.claims.load_visible), adjusters and
# admins; not the carrier's integration, which pushes shipments and reads nothing else.
ClaimReader = Annotated[User, Depends(require_roles("customer", "adjuster", "admin"))]
AdjusterUser = Annotated[User, Depends(require_roles("adjuster", "admin"))]
AdminUser = Annotated[User, Depends(require_roles("admin"))]
# The carrier's own systems: they push shipment records and register webhooks (and nothing else).
IntegrationUser = Annotated[User, Depends(require_roles("integration", "admin"))]
# Team leads run the claims team: the operations page and the metrics (admins may too).
LeadUser = Annotated[User, Depends(require_roles("lead", "admin"))]


# Ids in URLs are the UUIDs the service hands out (lowercase, with hyphens): anything else is a 422
# naming the parameter, before any query runs.
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
ClaimId = Annotated[
    str,
    Path(
        pattern=UUID_PATTERN,
        description="The claim's id (a UUID).",
        examples=["9b2f0c7e-1d2a-4c59-9a41-3f0e8d6b7a10"],
    ),
]
PhotoId = Annotated[
    str,
    Path(
        pattern=UUID_PATTERN,
        description="The photo's id (a UUID).",
        examples=["5e4c1a2b-7f3d-4e8a-b9c0-1d2e3f4a5b6c"],
    ),
]
