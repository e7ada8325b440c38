"""`gis serve`'s office figures against the rest of the system: the waiting rule of the weekly
summary and the bulletin, the demo's bulletin downloads, and the workload words.

Each test starts its own real server process (see serve_fixtures.py) on a
workspace it changes first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re

import httpx
import pytest

import gis.demo
from alertsdata import DATES, FakeDetect, changes, spot_in
from gis.alerts.lifecycle import set_alert
from gis.labels import ALERT_STATUS, OFFICE
from gis.serve.accounts import DEMO_PASSWORDS, create_demo_users
from gis.synthetic import epochs
from gis.weekly import run_weekly
from gis.workspace import load_workspace
from serve_fixtures import USERS, ServerProcess, alert_ids_by_district, serve_workspace


@contextlib.contextmanager
def browser_login(server: ServerProcess, name: str, password: str):
    """A browser-like client (cookies, the login form's CSRF token) logged in as ``name``."""
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=False) as c:
        token = re.search(r'name="csrftoken" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post("/login", data={"csrftoken": token, "username": name, "password": password})
        assert r.status_code == 303, r.text
        yield c


def _listed(page: str) -> list[str]:
    return re.findall(r'<td><a href="/office/alerts/([^"?]+)">', page)


def test_waiting_filter_and_workload_agree_with_the_weekly_summary(tmp_path):
    """waiting_days = 10 in gis.toml: the office filter "waiting over 10 days", the API's
    days_waiting and the team workload's overdue column list what the weekly summary does."""
    root = serve_workspace(tmp_path / "ws")
    toml = root / "gis.toml"
    text = toml.read_text(encoding="utf-8")
    assert "waiting_days = 3" in text
    toml.write_text(text.replace("waiting_days = 3", "waiting_days = 10"), encoding="utf-8")
    today = dt.date.today()
    ago = lambda days: today - dt.timedelta(days=days)  # noqa: E731
    ids = alert_ids_by_district(root)
    (a, b), c = ids["东城区"], ids["临港区"][0]
    store = load_workspace(root).open_store()
    set_alert(store, a, status="dispatched", by="test", today=ago(11))  # 11 days > 10: listed
    set_alert(store, b, status="dispatched", by="test", today=ago(10))  # 10 days: not yet
    set_alert(store, c, status="dispatched", by="test", today=ago(40))  # a verdict since: not waiting
    set_alert(store, c, status="illegal", by="test", today=ago(30))
    detect = FakeDetect({DATES[1].isoformat(): changes(
        ("new_structure", spot_in(root, "P01")), ("new_crops", spot_in(root, "P02")),
        ("new_structure", spot_in(root, "P04")))})  # the week serve_workspace ran, again, today
    summary = run_weekly(root, DATES[1], detect=detect, maps=False, today=today)
    assert summary.waiting_days == 10 and [w["alert_id"] for w in summary.waiting] == [a]

    srv = ServerProcess(root).start()
    try:
        with browser_login(srv, "office1", USERS["office1"][2]) as web:
            page = web.get("/office/alerts", params={"waiting_over": 10})
            assert page.status_code == 200
            assert _listed(page.text) == [w["alert_id"] for w in summary.waiting]
            assert sorted(_listed(web.get("/office/alerts", params={"waiting_over": 9}).text)) == sorted([a, b])
            alerts = {x["alert_id"]: x for x in web.get("/api/alerts").json()}
            teams = web.get("/office/teams").text
        assert {w["alert_id"]: w["days"] for w in summary.waiting} == {a: alerts[a]["days_waiting"]}
        assert alerts[b]["days_waiting"] == 10 and alerts[c]["days_waiting"] is None  # illegal: has a verdict
        assert "(&gt; 10)" in teams  # the workspace's threshold, not a default
        overdue = re.findall(r'<td class="num(?: flag)?">(\d+)</td><td class="num">\d+</td></tr>', teams)
        assert sorted(int(n) for n in overdue) == [0, 1]  # 东城区 1 (a), 临港区 0
    finally:
        srv.stop()


def test_workload_calls_settled_alerts_otherwise_than_the_closed_status():
    for lang in ("zh", "en"):
        assert OFFICE[lang]["settled"] != ALERT_STATUS[lang]["closed"]
    assert OFFICE["zh"]["settled"] == "已处置"
    assert "已办结" not in OFFICE["zh"].values()


@pytest.mark.slow
def test_demo_bulletin_and_workbook_are_offered_on_the_figures_page(tmp_path, monkeypatch):
    """`make demo` then `gis serve --workspace layers/demo`: the figures page offers the demo's
    bulletin HTML and figures workbook (the demo's maps folder is its workspace's out folder)."""
    monkeypatch.setattr(gis.demo, "write_demo_epochs",  # coarse imagery: the products, not detection
                        functools.partial(epochs.write_demo_epochs, resolution=10.0))
    demo, maps = tmp_path / "layers" / "demo", tmp_path / "maps"
    result = gis.demo.run_demo(demo, maps, workers=1)
    assert load_workspace(demo).out == maps.resolve()
    create_demo_users(demo)
    srv = ServerProcess(demo).start()
    try:
        with browser_login(srv, "leader", DEMO_PASSWORDS["leader"]) as web:
            page = web.get("/office/figures")
            assert page.status_code == 200
            links = re.findall(r'href="/office/downloads/([^"]+)"', page.text)
            stamp = result.summary.epoch
            assert links == [f"bulletin_{stamp}.html", f"figures_{stamp}.xlsx"]
            html, xlsx = (web.get(f"/office/downloads/{name}") for name in links)
    finally:
        srv.stop()
    assert html.status_code == 200 and html.content == (maps / links[0]).read_bytes()
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"  # a zip: the workbook
