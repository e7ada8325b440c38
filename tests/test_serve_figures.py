"""`gis serve`'s office figures against the rest of the system: the waiting rule of the weekly
summary and the bulletin, the demo's bulletin downloads, and the workload words.

Each test starts its own real server process (see serve_fixtures.py) on a
workspace it changes first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import html
import re

import httpx
import numpy as np
import pandas as pd
import pytest

import gis.demo
from alertsdata import DATES, FakeDetect, changes, spot_in
from gis import labels
from gis.alerts.lifecycle import set_alert
from gis.labels import ALERT_STATUS, OFFICE
from gis.products.cells import format_cell
from gis.serve import accounts
from gis.serve.accounts import DEMO_PASSWORDS, create_demo_users
from gis.serve.products import LiveProducts, shown_table
from gis.serve.storage import open_engine
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


def test_format_cell_reads_like_the_bulletin():
    """One formatter for every cell of the figures page: the workbooks' kinds of column."""
    f = format_cell
    assert f("completion_rate", 0.809653) == "81.0%" and f("progress_ratio", 1.0) == "100.0%"
    assert f("schedule_gap", -0.1234) == "-12.3%"  # a rate of the bulletin's schedule table too
    assert f("total_mu", 2162.0413) == "2,162.04" and f("area_mu", np.float64(0.5)) == "0.50"
    assert f("houses_left", 14.5) == "15" and f("graves_left", 2.5) == "3"  # half up, as Excel shows it
    assert f("rank", np.int64(1234)) == "1,234" and f("waiting_days", 12) == "12"
    assert (f("overdue", np.bool_(True)), f("progressed", False)) == ("是", "否")
    assert (f("overdue", True, "en"), f("post_freeze", np.bool_(False), "en")) == ("yes", "no")
    assert (f("list", "red"), f("list", "black"), f("list", "black", "en")) == ("红榜", "黑榜", "Black list")
    assert f("list", "") == "" and f("kind", "new_structure") == "新增建筑"
    assert f("status", "dispatched") == "已派发"
    assert f("deadline", pd.Timestamp("2026-09-30")) == "2026-09-30"
    assert f("status_since", "2026-03-15T10:20:30") == "2026-03-15"  # a day column shows the day
    assert f("deadline", dt.date(2026, 9, 30)) == "2026-09-30" and f("deadline", pd.NaT) == ""
    assert f("whatever", pd.Timestamp("2026-01-02 00:00:00")) == "2026-01-02"
    assert f("whatever", pd.Timestamp("2026-01-02 08:30")) == "2026-01-02 08:30"
    assert f("whatever", 2162.0413) == "2,162.04" and f("whatever", 8.0) == "8"  # never 2.16e+03
    assert [f("total_mu", v) for v in (None, np.nan, pd.NA, float("inf"))] == ["", "", "", ""]
    assert f("name", "<b>P01</b>") == "<b>P01</b>"  # text as it is: the template escapes it


def test_shown_headline_formats_each_figure_by_its_kind():
    words = labels.table("bulletin", "zh")
    headline = pd.DataFrame({"scope": ["累计"] * 3, "figure": [words["n_projects"], words["total_mu"],
                                                             words["completion_rate"]],
                             "value": pd.Series([8, 2162.0413, 0.51], dtype=object)})
    shown = shown_table(headline, "zh")
    assert shown["columns"] == [labels.HEADERS["zh"][c] for c in ("scope", "figure", "value")]
    assert [row[2].text for row in shown["rows"]] == ["8", "2,162.04", "51.0%"]
    assert [row[2].num for row in shown["rows"]] == [True, True, True] and not shown["rows"][0][0].num


def test_figures_page_reads_like_the_bulletin(tmp_path):
    """Rates as 81.0%, mu as 2,162.04, 是/否, 红榜/黑榜, days without 00:00:00, the workbooks'
    headers; in English for an English user; every value escaped."""
    root = serve_workspace(tmp_path / "ws")
    ws = load_workspace(root)
    store = ws.open_store()
    live = LiveProducts(ws)
    since = live.clearance().as_of - dt.timedelta(days=10)  # the page counts days waiting to its survey
    assert since > DATES[1]
    aid = alert_ids_by_district(root)["东城区"][0]
    set_alert(store, aid, status="dispatched", by="test", note="<b>x</b>", today=since)  # waiting: a row
    accounts.add_user(open_engine(ws), "leader_en", "leader-password-en", role="leader", lang="en", by="test")
    figures = live.figures(store.alerts(), "zh")
    assert list(figures["waiting"]["alert_id"]) == [aid]
    p01 = figures["projects"].set_index("project_id").loc["P01"]
    total = figures["headline"]["value"][1]
    srv = ServerProcess(root).start()
    try:
        with browser_login(srv, "leader1", USERS["leader1"][2]) as web:
            zh = web.get("/office/figures").text
        with browser_login(srv, "leader_en", "leader-password-en") as web:
            en = web.get("/office/figures").text
    finally:
        srv.stop()
    for page in (zh, en):
        assert f">{100 * p01['completion_rate']:.1f}%</td>" in page
        assert f">{100 * p01['clean_land_rate']:.1f}%</td>" in page
        assert f">{total:,.2f}</td>" in page and "," in f"{total:,.2f}"
        assert f">{p01['deadline']:%Y-%m-%d}</td>" in page
        for raw in ("e+0", "True", "False", "00:00:00", ">red<", ">black<", ">nan<", ">NaT<", "<b>x</b>"):
            assert raw not in page, raw
        assert "&lt;b&gt;x&lt;/b&gt;" in page  # the patrol note, escaped
        assert re.search(r">\d+\.\d%</td>", page) and not re.search(r">0\.\d{3,}</td>", page)
    head = labels.HEADERS
    for lang, page in (("zh", zh), ("en", en)):
        for col in ("completion_rate", "clean_land_rate", "total_mu", "deadline", "overdue", "list", "area_mu"):
            assert f"<th>{html.escape(head[lang][col])}</th>" in page, (lang, col)
        assert f">{labels.LIST[lang]['red']}</td>" in page and f">{labels.LIST[lang]['black']}</td>" in page
        yes, no = labels.YES_NO[lang]
        assert f">{yes}</td>" in page and f">{no}</td>" in page
        assert f">{labels.ALERT_STATUS[lang]['dispatched']}</td>" in page
        assert f">{since.isoformat()}</td>" in page  # status since, a day
    assert "<th>completion_rate</th>" not in zh and "征地完成率" in zh
