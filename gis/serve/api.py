"""The JSON API (``/api/...``): the patrol phone app uses it; other systems may too.

Handlers parse, load, check and make one call (into :mod:`gis.serve.fieldwork`,
:mod:`gis.serve.accounts` or :mod:`gis.serve.storage`); who may do what is
asked of :mod:`gis.serve.permissions`. Errors become answers with a stable
``error`` code in :func:`gis.serve.deps.error_answer`.

Routes: ``POST /api/login`` -> ``{"token"}``; ``POST /api/logout``;
``GET /api/me``; ``GET /api/reasons``; ``GET /api/alerts`` (filters as query
parameters); ``GET /api/alerts/{id}``; ``GET /api/alerts/{id}/geometry``;
``GET /api/alerts/{id}/chips/{before|after}``; ``POST /api/alerts/{id}/verdict``
(multipart); ``POST /api/alerts/{id}/photos`` (multipart, one photo);
``POST /api/sync`` (a batch, answered item by item); ``GET /api/photos/{sha256}``;
``POST /api/alerts/dispatch`` and ``POST /api/alerts/status`` (office, JSON).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from limits import parse as parse_limit
from starlette.concurrency import run_in_threadpool
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from gis.errors import AlertNotFoundError, AuthenticationError, InputError
from gis.labels import table
from gis.schema import FALSE_ALARM_REASONS
from gis.serve import accounts, fieldwork, permissions, records, storage
from gis.serve.deps import ApiUser, ContextDep, bearer_token
from gis.serve.queries import AlertFilters, filter_alerts, patrol_order

router = APIRouter(prefix="/api")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MEDIA = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".heic": "image/heic",
          ".heif": "image/heif"}
#: Photo metadata fields that come once per photo, in the order of the photo files.
PHOTO_META = ("photo_client_id", "taken_at", "photo_lat", "photo_lon", "sha256")


class LoginThrottle:
    """Failed logins per (address, user name), counted in a moving window by `limits`."""

    def __init__(self, rate: str) -> None:
        self.rate = parse_limit(rate)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def blocked(self, *key: str) -> bool:
        return not self.limiter.test(self.rate, *key)

    def failed(self, *key: str) -> None:
        self.limiter.hit(self.rate, *key)


def _json(request_body: Any) -> dict:
    if not isinstance(request_body, dict):
        raise InputError("the body must be a JSON object", hint='send {"username": ..., "password": ...}')
    return request_body


@router.post("/login")
async def login(request: Request, ctx: ContextDep):
    try:
        body = _json(await request.json())
    except ValueError:
        raise InputError("the body is not JSON", hint='send {"username": ..., "password": ...}') from None
    username, password = str(body.get("username", ""))[:64], str(body.get("password", ""))
    key = (request.client.host if request.client else "-", username)
    throttle: LoginThrottle = request.app.state.login_throttle
    if throttle.blocked(*key):
        return JSONResponse({"error": "too_many_attempts", "status": 429,
                             "message": "too many failed logins", "hint": "wait a minute and try again"},
                            status_code=429, headers={"Retry-After": "60"})
    user = accounts.authenticate(ctx.engine, username, password)
    if user is None:
        throttle.failed(*key)
        raise AuthenticationError("wrong user name or password", hint="check both and try again")
    token = accounts.issue_token(ctx.engine, user.username, str(body.get("device", ""))[:128])
    return {"token": token, "user": user.public()}


@router.post("/logout")
def logout(request: Request, user: ApiUser, ctx: ContextDep):
    token = bearer_token(request)
    if token:
        accounts.revoke_token(ctx.engine, token)
    request.session.clear()
    return {"ok": True}


@router.get("/me")
def me(user: ApiUser):
    return user.public()


@router.get("/reasons")
def reasons(user: ApiUser):
    words = table("reason", user.lang)
    return [{"code": c, "label": words[c]} for c in FALSE_ALARM_REASONS]


@router.get("/alerts")
def list_alerts(request: Request, user: ApiUser, ctx: ContextDep):
    flt = AlertFilters.parse(request.query_params)
    rows = patrol_order(filter_alerts(storage.alerts(ctx.store), user, flt))
    return fieldwork.alerts_json(rows, ctx)


@router.get("/alerts/{alert_id}")
def get_alert(alert_id: str, user: ApiUser, ctx: ContextDep):
    return fieldwork.alert_json(fieldwork.visible_alert(ctx, user, alert_id), ctx)


@router.get("/alerts/{alert_id}/geometry")
def get_geometry(alert_id: str, user: ApiUser, ctx: ContextDep):
    item = fieldwork.alert_json(fieldwork.visible_alert(ctx, user, alert_id), ctx)
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"role": role}, "geometry": item.get(key)}
        for role, key in (("alert", "geometry"), ("redline", "redline"), ("parcel", "parcel"))
        if item.get(key)]}


@router.get("/alerts/{alert_id}/chips/{which}")
def get_chip(alert_id: str, which: str, user: ApiUser, ctx: ContextDep):
    row = fieldwork.visible_alert(ctx, user, alert_id)
    if which not in ("before", "after") or not row[f"chip_{which}"]:
        raise AlertNotFoundError(f"alert {alert_id} has no {which!r} chip", ids=[alert_id],
                                 hint="chips are before or after")
    root = Path(ctx.store.store_dir).resolve()
    path = (root / str(row[f"chip_{which}"])).resolve()
    if root not in path.parents or not path.is_file():
        raise AlertNotFoundError(f"the {which} chip of alert {alert_id} is missing", ids=[alert_id],
                                 hint="run the weekly cycle again to remake chips")
    return FileResponse(path, media_type="image/png")


def _photo_parts(form) -> list[tuple[Any, str, dict]]:
    files = [f for f in form.getlist("photo") if hasattr(f, "read")]
    metas = {k: form.getlist(k) for k in PHOTO_META}
    out = []
    for k, f in enumerate(files):
        meta = {name: (vals[k] if k < len(vals) else None) for name, vals in metas.items()}
        out.append((f.file, f.filename, meta))
    return out


@router.post("/alerts/{alert_id}/verdict")
async def post_verdict(alert_id: str, request: Request, user: ApiUser, ctx: ContextDep):
    form = await request.form(max_files=50, max_fields=200, max_part_size=ctx.settings.upload_limit_bytes + 1)
    fields = {k: v for k, v in form.items() if isinstance(v, str) and k not in PHOTO_META}
    try:
        return await _run(fieldwork.submit_verdict, ctx, user, alert_id, fields, _photo_parts(form))
    finally:
        await form.close()


@router.post("/alerts/{alert_id}/photos")
async def post_photo(alert_id: str, request: Request, user: ApiUser, ctx: ContextDep):
    form = await request.form(max_files=1, max_fields=50, max_part_size=ctx.settings.upload_limit_bytes + 1)
    try:
        parts = _photo_parts(form)
        if len(parts) != 1:
            raise InputError("send exactly one file in the field 'photo'", hint="one photo per request")
        f, name, meta = parts[0]
        meta.update({k: v for k, v in form.items() if isinstance(v, str)})
        return await _run(fieldwork.submit_photo, ctx, user, alert_id, f, name, meta)
    finally:
        await form.close()


@router.post("/sync")
async def sync(request: Request, user: ApiUser, ctx: ContextDep):
    try:
        body = await request.json()
    except ValueError:
        raise InputError("the body is not JSON", hint='send {"items": [...]}') from None
    items = body.get("items") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise InputError("no list of items", hint='send {"items": [...]}')
    return {"items": await _run(fieldwork.sync_batch, ctx, user, items)}


@router.get("/photos/{sha256}")
def get_photo(sha256: str, user: ApiUser, ctx: ContextDep):
    sha256 = sha256.lower()
    missing = AlertNotFoundError("no such photo", hint="photos are named by their SHA-256")
    if not _SHA256.match(sha256):
        raise missing
    alerts = storage.alerts(ctx.store)
    ids = set(records.alerts_of_photo(ctx.engine, sha256))
    mine = alerts[alerts["alert_id"].isin(ids) | alerts["photos"].str.contains(sha256, regex=False)]
    if not permissions.can_view_photo(user, [r for _, r in mine.iterrows()]):
        raise missing
    found = storage.photo_bytes(ctx.store, sha256)
    if found is None:
        raise missing
    data, ext = found
    return Response(data, media_type=_MEDIA.get(ext, "application/octet-stream"),
                    headers={"Cache-Control": "private, max-age=31536000, immutable"})


@router.post("/alerts/dispatch")
async def dispatch(request: Request, user: ApiUser, ctx: ContextDep):
    body = _json(await request.json())
    permissions.check_dispatch_alert(user)
    ids, team = [str(i) for i in body.get("alert_ids") or []], str(body.get("team", "")).strip()
    if not ids or not team:
        raise InputError("alert_ids and team are required", hint='send {"alert_ids": [...], "team": "..."}')
    return {"dispatched": await _run(storage.change_status, ctx.store, ids, "dispatched",
                                     by=user.username, team=team)}


@router.post("/alerts/status")
async def bulk_status(request: Request, user: ApiUser, ctx: ContextDep):
    body = _json(await request.json())
    permissions.check_bulk_change_alerts(user)
    ids, status = [str(i) for i in body.get("alert_ids") or []], str(body.get("status", ""))
    if not ids or not status:
        raise InputError("alert_ids and status are required", hint='send {"alert_ids": [...], "status": "..."}')
    return {"changed": await _run(storage.change_status, ctx.store, ids, status, by=user.username)}


async def _run(fn, *args, **kw):
    """Run a blocking store call in the worker's thread pool (the event loop stays free)."""
    return await run_in_threadpool(fn, *args, **kw)
