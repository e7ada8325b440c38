"""Weekly bulletin: tables, escaping, the Excel file re-read, and the CLI on a workspace."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import mapsdata
from gis.labels import HEADERS
from gis.products.bulletin import DEFAULT_WAITING_DAYS as WAIT_DAYS, bulletin_tables, write_bulletin
from gis.products.excel import HEADER_ROW

FIGURE_HEADERS_ZH = HEADERS["zh"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    return folder, *mapsdata.build(folder)


def test_tables_follow_the_figures_and_the_alert_rules(demo):
    folder, county, c, alerts, store_dir, ortho = demo
    t = bulletin_tables(c, alerts=alerts, as_of=mapsdata.AS_OF)
    head = dict(zip(t["headline"]["figure"], t["headline"]["value"]))
    assert head["重点项目个数"] == len(c.projects)
    assert head["征地完成率"] == pytest.approx(c.districts["acquired_mu"].sum() / c.districts["total_mu"].sum())
    assert head["进度占比率"] == pytest.approx(c.projects["progressed"].astype(bool).mean())
    # new this week: first seen within the 7 days ending as_of
    first = pd.to_datetime(alerts["first_seen"])
    week = (first > pd.Timestamp(mapsdata.AS_OF) - pd.Timedelta(days=7))
    assert head["本周新增预警"] == int(week.sum()) == int(t["new_alerts"]["total"].sum())
    # waiting: new/dispatched, status unchanged for more than WAIT_DAYS days
    since = pd.to_datetime(alerts["status_since"])
    expect = alerts[alerts["status"].isin(["new", "dispatched"])
                    & (since <= pd.Timestamp(mapsdata.AS_OF) - pd.Timedelta(days=WAIT_DAYS))]
    assert set(t["waiting"]["alert_id"]) == set(expect["alert_id"]) and len(expect) > 0
    assert (t["waiting"]["waiting_days"] >= WAIT_DAYS).all()
    grow = alerts[alerts["growing"] & alerts["status"].isin(["new", "dispatched", "illegal"])]
    assert set(t["growing"]["alert_id"]) == set(grow["alert_id"])
    assert set(t["red_list"]["district"]) == set(c.districts.loc[c.districts["list"] == "red", "district"])
    assert set(t["black_list"]["district"]) == set(c.districts.loc[c.districts["list"] == "black", "district"])


def test_bulletin_html_escapes_layer_text(demo, tmp_path):
    folder, county, c, alerts, store_dir, ortho = demo
    a = alerts.copy()
    a.loc[a["alert_id"] == "A007", "note"] = mapsdata.NOTE  # A007 is in the waiting list
    out = write_bulletin(c, tmp_path / "b.html", alerts=a, as_of=mapsdata.AS_OF)
    page = out.read_text(encoding="utf-8")
    assert "</script><script>alert(3)" not in page and "<img src=x" not in page and "<b>bold" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(3)&lt;/script&gt;项目" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "data:image/png;base64," in page and "http" not in page.replace("http-equiv", "")
    assert "周通报" in page and "红榜" in page and "黑榜" in page


def test_xlsx_re_read_matches_the_figures(demo, tmp_path):
    folder, county, c, alerts, store_dir, ortho = demo
    xlsx = tmp_path / "b.xlsx"
    write_bulletin(c, tmp_path / "b.html", alerts=alerts, xlsx=xlsx, as_of=mapsdata.AS_OF)
    sheets = pd.read_excel(xlsx, sheet_name=None, header=HEADER_ROW - 1)  # a title and a note row above
    assert {"总体情况", "项目进度", "区县排名", "红榜", "黑榜", "本周新增预警", "面积增长预警",
            "超期未核查预警"} <= set(sheets)
    proj = sheets["项目进度"].set_index(FIGURE_HEADERS_ZH["project_id"])
    ref = c.projects.set_index("project_id")
    for col in ("total_mu", "acquired_mu", "completion_rate", "clean_land_rate", "houses_left"):
        got = proj.loc[ref.index, FIGURE_HEADERS_ZH[col]].to_numpy(float)
        assert np.allclose(got, ref[col].to_numpy(float), rtol=1e-9, equal_nan=True), col
    assert list(proj.loc[ref.index, FIGURE_HEADERS_ZH["overdue"]]) == ["是" if v else "否" for v in ref["overdue"]]
    dist = sheets["区县排名"]
    assert list(dist[FIGURE_HEADERS_ZH["rank"]]) == sorted(c.districts["rank"])
    from openpyxl import load_workbook

    ws = load_workbook(xlsx)["项目进度"]
    col = [cell.value for cell in ws[HEADER_ROW]].index(FIGURE_HEADERS_ZH["completion_rate"]) + 1
    assert ws.cell(HEADER_ROW + 1, col).number_format == "0.0%"


def test_cli_map_and_report_on_a_workspace(demo, tmp_path):
    folder, county, c, alerts, store_dir, ortho = demo
    from gis.cli import main
    from gis.workspace import init_workspace

    ws = tmp_path / "ws"
    init_workspace(ws, redlines=county.redlines, parcels=county.parcels,
                   previous_parcels=county.previous_parcels, inventory=county.inventory,
                   epochs=[(dt.date(2026, 11, 21), ortho)])
    r = CliRunner().invoke(main, ["map", "--workspace", str(ws), "--out", str(tmp_path / "m.html"),
                                  "--png", str(tmp_path / "m.png")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "m.html").read_text(encoding="utf-8")
    assert '"label":"2026-11-21"' in page and "data:image/jpeg;base64" in page and "截至 2026-11-21" in page
    assert (tmp_path / "m.png").stat().st_size > 50_000
    r = CliRunner().invoke(main, ["map", "--workspace", str(ws), "--out", str(tmp_path / "p.html"),
                                  "--project", "P99"])
    assert r.exit_code == 2 and "P99" in r.output and "P01" in r.output
    r = CliRunner().invoke(main, ["report", "--workspace", str(ws), "--out", str(tmp_path / "b.html"),
                                  "--xlsx", str(tmp_path / "b.xlsx"), "--lang", "en"])
    assert r.exit_code == 0, r.output
    assert "Weekly bulletin" in (tmp_path / "b.html").read_text(encoding="utf-8")
    assert (tmp_path / "b.xlsx").exists()

    # without --lang the workspace's own language applies
    ws_en = tmp_path / "ws_en"
    init_workspace(ws_en, redlines=county.redlines, parcels=county.parcels, lang="en",
                   epochs=[(dt.date(2026, 11, 21), ortho)])
    r = CliRunner().invoke(main, ["report", "--workspace", str(ws_en), "--out", str(tmp_path / "en.html")])
    assert r.exit_code == 0, r.output
    assert "Weekly bulletin" in (tmp_path / "en.html").read_text(encoding="utf-8")
    r = CliRunner().invoke(main, ["report", "--workspace", str(ws), "--out", str(tmp_path / "zh.html")])
    assert "周通报" in (tmp_path / "zh.html").read_text(encoding="utf-8")
