"""The app factory: :func:`create_app` builds one FastAPI app from a :class:`Settings`.

Middleware, outermost first: security headers; CSRF (asgi-csrf: a browser
POST carrying cookies must echo the ``csrftoken`` cookie in a form field or
the ``x-csrftoken`` header; requests with ``Authorization: Bearer`` and
requests without cookies are exempt, since a cross-site form can send
neither); signed session cookies (Starlette's SessionMiddleware, itsdangerous).

Mounted: ``/api`` (:mod:`gis.serve.api`), the office pages
(:mod:`gis.serve.pages`), ``/static`` (``gis/serve/static``), the map assets
(``/static/assets``: Leaflet and the map's own script) and the patrol app at
``/patrol/`` (its service worker is ``/patrol/sw.js``, so its scope covers
the app). ``/healthz`` answers when the app is ready.

Production: ``gis serve`` runs uvicorn; several workers run under gunicorn
(``gunicorn -k uvicorn.workers.UvicornWorker -w 4 'gis.serve.app:app_from_env()'``)
or ``uvicorn --factory gis.serve.app:app_from_env --workers 4`` with
``GIS_WORKSPACE`` set (see docs/serve.md).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from asgi_csrf import asgi_csrf
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gis.errors import GisError, ServeConfigError
from gis.serve import api, pages
from gis.serve.config import Settings
from gis.serve.deps import Context, error_answer

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
SESSION_COOKIE = "gis_session"
SESSION_MAX_AGE_S = 12 * 3600

_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"SAMEORIGIN"),
            (b"referrer-policy", b"same-origin")]


class SecurityHeaders:
    """A few headers every answer carries (no sniffing of uploads, no framing by other sites)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + _HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


#: POSTs that need no CSRF token: the API login sets no cookie and its answer (a token)
#: cannot be read by another site, so a forged one gains nothing; the phone app sends it
#: as JSON even when the browser holds the office pages' cookies.
CSRF_EXEMPT = frozenset({"/api/login"})


class CSRFProtection:
    """asgi-csrf as a Starlette middleware class."""

    def __init__(self, app: ASGIApp, *, secret: str, secure: bool) -> None:
        self.app = asgi_csrf(app, signing_secret=secret, cookie_secure=secure,
                             skip_if_scope=lambda scope: scope.get("path") in CSRF_EXEMPT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def create_app(settings: Settings) -> FastAPI:
    """The whole served app for one workspace's store."""
    app = FastAPI(title="gis serve", version="1", docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.settings = settings
    app.state.context = Context.build(settings)
    app.state.login_throttle = api.LoginThrottle(settings.login_limit)

    @app.exception_handler(GisError)
    async def gis_error(request: Request, exc: GisError):
        if request.url.path.startswith("/api/"):
            return error_answer(exc)
        return pages.error_page(request, exc)

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"ok": True}

    @app.get("/patrol", include_in_schema=False)
    def patrol_slash():
        return RedirectResponse("/patrol/", status_code=308)

    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static/assets", StaticFiles(directory=ASSETS_DIR), name="assets")
    app.mount("/patrol", StaticFiles(directory=STATIC_DIR / "patrol", html=True, check_dir=False),
              name="patrol")
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")

    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key, session_cookie=SESSION_COOKIE,
                       max_age=SESSION_MAX_AGE_S, same_site="lax", https_only=settings.secure_cookies)
    app.add_middleware(CSRFProtection, secret=settings.secret_key, secure=settings.secure_cookies)
    app.add_middleware(SecurityHeaders)
    log.info("serving workspace %s (%s)", settings.root, settings.environment)
    return app


def app_from_env() -> FastAPI:
    """The app of the workspace named by ``GIS_WORKSPACE`` (for gunicorn / uvicorn --factory)."""
    root = os.environ.get("GIS_WORKSPACE")
    if not root:
        raise ServeConfigError("GIS_WORKSPACE is not set",
                               hint="set GIS_WORKSPACE to the workspace folder, or run `gis serve`")
    return create_app(Settings.from_workspace(root))
