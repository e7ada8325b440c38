"""The office pages (HTML, Jinja2 with autoescape): log in, alerts, dispatch, workload, figures, map.

Thin handlers: session user -> permission check -> one query or store call ->
template. Every text from layers, notes and file names reaches the page
through Jinja2's autoescape (never ``|safe``), so ``<script>`` in a note is
shown, not run. Every form carries the CSRF token (``csrftoken`` field) that
:mod:`gis.serve.app`'s middleware checks. Leaders see the map, figures and
bulletins read-only: the forms are shown only to users who may use them.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from gis.errors import AuthenticationError, GisError, InputError
from gis.labels import label, table
from gis.schema import ALERT_KINDS, ALERT_STATUSES
from gis.serve import accounts, fieldwork, permissions, records, storage
from gis.serve.deps import ContextDep, error_status, session_user
from gis.serve.products import shown_table
from gis.serve.queries import AlertFilters, filter_alerts, patrol_order, waiting_threshold, workload

router = APIRouter(include_in_schema=False)
#: autoescape on for every template: nothing from layers, notes or file names is ever markup
templates = Jinja2Templates(env=Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                                            autoescape=True))
PAGE_SIZE = 500


def _csrf(request: Request) -> str:
    get = request.scope.get("csrftoken")
    return get() if get else ""


def render(request: Request, name: str, user=None, status_code: int = 200, **context) -> HTMLResponse:
    lang = getattr(user, "lang", "zh")
    context.update(user=user, csrftoken=_csrf(request), lang=lang, label=label, t=table("office", lang),
                   can=lambda perm, obj=None: getattr(permissions, f"can_{perm}")(user, obj))
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def error_page(request: Request, exc: GisError) -> HTMLResponse:
    if isinstance(exc, AuthenticationError):
        return RedirectResponse("/login", status_code=303)
    status, code = error_status(exc)
    user = None
    return render(request, "error.html", user, status_code=status, code=code, message=exc.message,
                  hint=exc.hint or "")


def page_user(request: Request, ctx) -> accounts.User:
    user = session_user(request, ctx)
    if user is None:
        raise AuthenticationError("log in first")
    return user


@router.get("/")
def home(request: Request, ctx: ContextDep):
    user = session_user(request, ctx)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if user.role == "patrol":
        return RedirectResponse("/patrol/", status_code=303)
    if permissions.can_view_workload(user) and not permissions.can_view_figures(user):
        return RedirectResponse("/office/teams", status_code=303)
    if permissions.can_dispatch_alert(user):
        return RedirectResponse("/office/alerts", status_code=303)
    return RedirectResponse("/office/figures", status_code=303)


@router.get("/login")
def login_form(request: Request):
    return render(request, "login.html", error="")


@router.post("/login")
async def login(request: Request, ctx: ContextDep):
    form = await request.form()
    username, password = str(form.get("username", ""))[:64], str(form.get("password", ""))
    key = (request.client.host if request.client else "-", username)
    throttle = request.app.state.login_throttle
    if throttle.blocked(*key):
        return render(request, "login.html", error="too_many", status_code=429)
    user = accounts.authenticate(ctx.engine, username, password)
    if user is None:
        throttle.failed(*key)
        return render(request, "login.html", error="bad", status_code=401)
    request.session.clear()
    request.session.update(username=user.username, pw=accounts.password_stamp(ctx.engine, user.username))
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
def logout(request: Request):
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/office/alerts")
def alerts_page(request: Request, ctx: ContextDep):
    user = page_user(request, ctx)
    flt = AlertFilters.parse(request.query_params)
    all_alerts = storage.alerts(ctx.store)
    rows = patrol_order(filter_alerts(all_alerts, user, flt))
    visible = permissions.alerts_for_user(all_alerts, user)
    items = fieldwork.alerts_json(rows.head(PAGE_SIZE), ctx) if len(rows) else []
    return render(request, "alerts.html", user, items=items, total=len(rows), flt=flt,
                  districts=sorted(set(visible["district"]) - {""}),
                  projects=sorted(set(visible["project_id"]) - {""}), kinds=ALERT_KINDS,
                  statuses=ALERT_STATUSES, query=urlencode(flt.as_params()))


@router.get("/office/alerts/{alert_id}")
def alert_page(alert_id: str, request: Request, ctx: ContextDep):
    user = page_user(request, ctx)
    item = fieldwork.alert_json(fieldwork.visible_alert(ctx, user, alert_id), ctx)
    return render(request, "alert.html", user, a=item, statuses=ALERT_STATUSES,
                  reasons=table("reason", user.lang))


@router.post("/office/alerts/bulk")
async def bulk(request: Request, ctx: ContextDep):
    user = page_user(request, ctx)
    form = await request.form()
    ids = [str(i) for i in form.getlist("alert_id")]
    action = str(form.get("action", ""))
    if not ids:
        raise InputError("no alert was ticked", hint="tick the alerts to change, then press the button")
    visible = permissions.alerts_for_user(storage.alerts(ctx.store), user)
    unknown = sorted(set(ids) - set(visible["alert_id"]))
    if unknown:
        raise InputError("unknown alerts", ids=unknown, hint="reload the alert table")
    if action == "dispatch":
        permissions.check_dispatch_alert(user)
        team = str(form.get("team", "")).strip()
        if not team:
            raise InputError("no team chosen", hint="choose the team to dispatch to")
        storage.change_status(ctx.store, ids, "dispatched", by=user.username, team=team)
    elif action == "status":
        permissions.check_bulk_change_alerts(user)
        storage.change_status(ctx.store, ids, str(form.get("status", "")), by=user.username)
    else:
        raise InputError(f"unknown action {action!r}", hint="use the buttons of the alert table")
    back = str(form.get("back", ""))
    return RedirectResponse("/office/alerts" + (f"?{back}" if back and "\n" not in back else ""),
                            status_code=303)


@router.get("/office/teams")
def teams_page(request: Request, ctx: ContextDep):
    user = page_user(request, ctx)
    permissions.check_view_workload(user)
    days = waiting_threshold(ctx.settings.workspace)
    load = workload(storage.alerts(ctx.store), days)
    members: dict[str, list[str]] = {}
    for u in accounts.list_users(ctx.engine):
        if u.role == "patrol" and u.active:
            for d in u.districts:
                members.setdefault(d, []).append(u.username)
    return render(request, "teams.html", user, rows=load.to_dict("records"), members=members,
                  waiting_over=days, off_site=records.photos_off_site(ctx.engine)[:200])


@router.get("/office/figures")
def figures_page(request: Request, ctx: ContextDep):
    user = page_user(request, ctx)
    permissions.check_view_figures(user)
    tables = ctx.products.figures(storage.alerts(ctx.store), user.lang)
    shown = {name: shown_table(df, user.lang) for name, df in tables.items()}
    return render(request, "figures.html", user, tables=shown, sheets=table("sheet", user.lang),
                  downloads=[p.name for p in ctx.products.downloads()])


@router.get("/office/downloads/{name}")
def download(name: str, request: Request, ctx: ContextDep):
    user = page_user(request, ctx)
    permissions.check_view_figures(user)
    path = ctx.products.download(name)
    if path is None:
        raise InputError(f"no bulletin file {name!r}", hint="pick one from the figures page")
    return FileResponse(path, filename=path.name)


@router.get("/office/map")
def map_page(request: Request, ctx: ContextDep):
    user = page_user(request, ctx)
    permissions.check_view_map(user)
    return HTMLResponse(ctx.products.map_html(storage.alerts(ctx.store), user.lang))

