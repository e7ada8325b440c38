"""What a route handler needs, as typed dependencies; and how errors become HTTP answers.

``ContextDep`` is the app's :class:`Context` (settings, store, engine);
``ApiUser`` is the user of a request, from its ``Authorization: Bearer``
token or else from the browser session. A bad token, an unknown user and a
disabled user all get the same 401. Errors carry a stable machine code
(``error``), a message and a hint; :func:`error_answer` picks the status
from the error's type, never from its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from gis.errors import (AlertNotFoundError, AuthenticationError, ConflictError, GisError, InputError,
                        InvalidTransitionError, PermissionDenied, PhotoError, StoreLockedError)
from gis.serve import accounts, storage
from gis.serve.accounts import User
from gis.serve.config import Settings
from gis.serve.products import LiveProducts


@dataclass
class Context:
    """One app's settings and its store, shared by all requests of a worker process."""

    settings: Settings
    store: Any
    engine: Engine
    outlines: storage.LayerOutlines
    products: LiveProducts

    @classmethod
    def build(cls, settings: Settings) -> "Context":
        store = storage.open_store(settings.workspace)
        engine = storage.open_engine(settings.workspace, store)
        return cls(settings, store, engine, storage.LayerOutlines(settings.workspace),
                   LiveProducts(settings.workspace))

    @property
    def crs(self) -> Any:
        return self.store.crs or self.settings.workspace.working_crs


def get_context(request: Request) -> Context:
    return request.app.state.context


ContextDep = Annotated[Context, Depends(get_context)]

#: The one answer to any failed authentication.
NOT_AUTHENTICATED = "not logged in, or the login has expired or was revoked"


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def session_user(request: Request, ctx: Context) -> User | None:
    """The active user of the browser session, or None."""
    name = request.session.get("username")
    if not name:
        return None
    user = accounts.get_user(ctx.engine, name)
    if user is None or not user.active or request.session.get("pw") != accounts.password_stamp(ctx.engine, name):
        request.session.clear()
        return None
    return user


def api_user(request: Request, ctx: ContextDep) -> User:
    token = bearer_token(request)
    user = accounts.user_for_token(ctx.engine, token) if token else session_user(request, ctx)
    if user is None:
        raise AuthenticationError(NOT_AUTHENTICATED, hint="log in again (POST /api/login)")
    return user


ApiUser = Annotated[User, Depends(api_user)]

#: error type -> (HTTP status, stable machine code); the first matching type wins.
ERROR_STATUS: tuple[tuple[type[GisError], int, str], ...] = (
    (AuthenticationError, 401, "not_authenticated"),
    (PermissionDenied, 403, "forbidden"),
    (AlertNotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (InvalidTransitionError, 400, "invalid_transition"),
    (PhotoError, 400, "bad_upload"),
    (InputError, 400, "bad_input"),
    (StoreLockedError, 503, "busy"),
    (GisError, 500, "server_error"),
)


def error_status(exc: GisError) -> tuple[int, str]:
    for kind, status, code in ERROR_STATUS:
        if isinstance(exc, kind):
            return status, code
    return 500, "server_error"  # pragma: no cover - GisError is the last row


def error_body(exc: GisError) -> dict[str, Any]:
    status, code = error_status(exc)
    body = {"error": code, "status": status, "message": exc.message, "hint": exc.hint}
    if isinstance(exc, PermissionDenied):
        body["reason"] = exc.reason
    current = getattr(exc, "current", None)
    if current is not None:
        body["current"] = current
    return body


def error_answer(exc: GisError) -> JSONResponse:
    status, _ = error_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(exc), status_code=status, headers=headers)
