"""The bulletin follows the survey week (issue 19): period, 期号, office, summary, 序时进度,
本周 / 累计 labels, the red/black list rule, and a workbook ready to paste."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re

import numpy as np
import openpyxl
import pandas as pd
import pytest

import mapsdata
from alertsdata import DATES, FakeDetect, changes, make_workspace, spot_in, spot_outside
from gis.clearance.figures import list_length, rank_districts, schedule_figures
from gis.errors import WorkspaceError
from gis.labels import HEADERS, KIND, ALERT_STATUS, SHEETS
from gis.products.bulletin import bulletin_number, bulletin_tables, write_bulletin
from gis.products.excel import HEADER_ROW, display_width, round_half_up
from gis.weekly import run_weekly
from gis.workspace import BulletinSettings, load_workspace

STARTS = {"P01": "2026-01-01", "P02": "2026-03-01", "P03": "2026-06-01", "P04": "2026-02-01", "P06": "2026-01-01"}
RUN_DAY = dt.date(2026, 5, 20)  # the runs are made long after their surveys: the bulletin must not care


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("week")
    return folder, *mapsdata.build(folder)


def text_of(page: str) -> str:
    page = re.sub(r"<img[^>]*>|<style>.*?</style>", "", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)).replace("&nbsp;", " ")


def test_weekly_bulletin_is_the_survey_weeks_and_keeps_its_number(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    toml = ws / "gis.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(text.replace('office = ""', 'office = "测试县征地拆迁指挥部"'), encoding="utf-8")
    week2 = changes(("new_structure", spot_in(ws, "P01")), ("new_crops", spot_outside(ws)))
    week3 = changes(("new_structure", spot_in(ws, "P05", 30)))
    detect = FakeDetect({DATES[1].isoformat(): week2, DATES[2].isoformat(): week3})
    for d in DATES:
        run_weekly(ws, d, detect=detect, today=RUN_DAY, maps=False)
    # last week's epoch again, after this week's: last week's bulletin, with its own number
    run_weekly(ws, DATES[1], detect=detect, today=RUN_DAY, out_dir=tmp_path / "out")
    run_weekly(ws, DATES[2], detect=detect, today=RUN_DAY, out_dir=tmp_path / "out")
    old = text_of((tmp_path / "out" / "bulletin_2026-03-15.html").read_text(encoding="utf-8"))
    new = text_of((tmp_path / "out" / "bulletin_2026-04-15.html").read_text(encoding="utf-8"))
    assert "统计周期: 2026-03-09 ~ 2026-03-15 (7天)" in old and "印发日期: 2026-03-15" in old
    assert "影像对比: 2026-02-15 与 2026-03-15 航拍影像" in old
    assert "2026年第2期" in old and "2026年第3期" in new  # runs of 02-15, 03-15, 04-15; re-runs count once
    assert "印发单位: 测试县征地拆迁指挥部" in old and str(RUN_DAY) not in old.split("本期要点")[0]
    store_ids = load_workspace(ws).open_store().alerts().set_index("first_seen")["alert_id"]
    later = store_ids[store_ids.index > "2026-03-15"].tolist()
    assert later and not any(i in old for i in later)  # seen only in April: not in March's bulletin
    assert "本周(2026-03-09至2026-03-15)新增预警2处" in old
    assert "本周(2026-04-09至2026-04-15)新增预警1处" in new
    # days waiting count to the run's date (status_since is the run date: 0 days, none listed)
    book = openpyxl.load_workbook(tmp_path / "out" / "figures_2026-03-15.xlsx")
    assert "2026年第2期" in book[SHEETS["zh"]["headline"]]["A1"].value


def test_bulletin_number_counts_weekly_runs_of_the_year():
    runs = pd.DataFrame({"command": ["weekly", "weekly", "weekly", "alerts", "weekly", "weekly"],
                         "epoch": ["2025-12-27", "2026-01-03", "2026-01-10", "2026-01-12", "2026-01-10",
                                   "2026-01-17"]})
    assert bulletin_number(runs, dt.date(2026, 1, 10)) == 2  # the re-run of 01-10 counts once
    assert bulletin_number(runs, dt.date(2026, 1, 17)) == 3
    assert bulletin_number(runs, dt.date(2026, 1, 24)) == 4  # a week not yet run counts itself
    assert bulletin_number(runs, dt.date(2025, 12, 27)) == 1
    assert bulletin_number(runs, dt.date(2026, 1, 10), first=40) == 41
    assert bulletin_number(None, dt.date(2026, 1, 10)) == 1


def test_progress_against_time_and_behind_schedule():
    projects = pd.DataFrame({"project_id": ["A", "B", "C", "D"], "district": ["甲", "甲", "乙", "乙"],
                             "completion_rate": [0.5, 0.9, 0.2, 0.4],
                             "deadline": pd.to_datetime(["2026-12-31", "2026-12-31", "2026-06-30", None]),
                             "start_date": pd.to_datetime(["2026-01-01", None, "2026-01-01", "2026-01-01"])})
    s = schedule_figures(projects, dt.date(2026, 7, 2), {"B": dt.date(2026, 7, 1)}).set_index("project_id")
    assert s.loc["A", "time_elapsed"] == pytest.approx(182 / 364)
    assert s.loc["A", "behind_schedule"] is False or not s.loc["A", "behind_schedule"]  # 50% done, 50% elapsed
    assert s.loc["B", "time_elapsed"] == pytest.approx(1 / 183) and not s.loc["B", "behind_schedule"]
    assert s.loc["C", "time_elapsed"] == 1.0 and s.loc["C", "behind_schedule"]  # past its deadline
    assert s.loc["C", "schedule_gap"] == pytest.approx(-0.8)
    assert np.isnan(s.loc["D", "time_elapsed"]) and s.loc["D", "behind_schedule"] is None  # no deadline


def test_red_and_black_list_rule_is_configurable():
    figs = pd.DataFrame({"district": list("ABCDEF"), "completion_rate": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
                         "clean_land_rate": [0.1] * 6, "progress_ratio": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
                         "overdue_projects": [1, 0, 0, 0, 0, 0]})
    r = rank_districts(figs)
    assert list(r["list"]) == ["", "red", "red", "black", "black", "black"]  # A is overdue: no red list
    assert list(rank_districts(figs, overdue_off_red=False)["list"]) == ["red"] * 3 + ["black"] * 3
    r = rank_districts(figs, share=0.2)  # 20% of six districts, rounded half up: one each
    assert list(r["list"]) == ["", "", "", "", "", "black"]
    r = rank_districts(figs, by="progress_ratio", size=2)
    assert list(r["district"]) == list("FEDCBA") and list(r["list"]) == ["red", "red", "", "", "black", "black"]
    assert list_length(4) == 2 and list_length(10, share=0.25) == 3 and list_length(1) == 0


def test_workspace_bulletin_settings(tmp_path):
    ws = make_workspace(tmp_path / "ws", dates=DATES[:1])
    toml = ws / "gis.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(text.replace('rank_by = "completion_rate"', 'rank_by = "schedule_gap"\nlist_share = 0.25')
                    .replace('# "P-001" = 2026-03-01', '"P01" = 2026-01-05'), encoding="utf-8")
    w = load_workspace(ws)
    assert w.bulletin == BulletinSettings(rank_by="schedule_gap", list_share=0.25)
    assert w.start_dates == {"P01": dt.date(2026, 1, 5)}
    toml.write_text(text.replace('rank_by = "completion_rate"', 'rank_by = "speed"'), encoding="utf-8")
    with pytest.raises(WorkspaceError, match="bulletin.rank_by") as err:
        load_workspace(ws)
    assert "schedule_gap" in str(err.value.hint)


def test_bulletin_page_summary_scopes_schedule_and_rule(demo, tmp_path):
    folder, county, c, alerts, store_dir, ortho = demo
    out = write_bulletin(c, tmp_path / "b.html", alerts=alerts, as_of=mapsdata.AS_OF, start_dates=STARTS,
                         compared=(dt.date(2026, 11, 14), mapsdata.AS_OF), number=46,
                         settings=BulletinSettings(office="某县指挥部"))
    page = out.read_text(encoding="utf-8")
    t = bulletin_tables(c, alerts=alerts, as_of=mapsdata.AS_OF, start_dates=STARTS)
    summary = text_of(re.search(r"<div class='summary'.*?</div>", page, re.S).group(0))
    assert 2 <= summary.count("。") <= 3 and "第三中学扩建" in summary  # overdue P06 named
    assert f"新增预警{int(t['_values']['alerts_new'].iloc[0])}处" in summary
    # every headline figure says whether it is this week's or cumulative
    head = t["headline"].set_index("figure")["scope"]
    assert set(head) == {"本周", "累计"} and head["本周新增预警"] == "本周"
    assert head["冻结日后新增预警(待处置)"] == "累计"
    # progress against time: P04 (2026-02-01 .. 2026-10-31) is past its deadline and 70% done
    sched = t["schedule"].set_index("project_id")
    assert set(sched.index) == set(STARTS) and bool(sched.loc["P04", "behind_schedule"])
    assert sched.loc["P04", "time_elapsed"] == 1.0
    assert list(t["schedule_districts"]["schedule_rank"]) == list(range(1, len(t["schedule_districts"]) + 1))
    assert "序时进度" in page and "是否滞后" in page
    # the rule under the lists names the figure and the districts the overdue rule kept off
    rule = text_of(re.search(r"<p class='note' id='list-rule'>.*?</p>", page, re.S).group(0))
    late = c.districts.loc[(c.districts["rank"] <= 3) & (c.districts["overdue_projects"] > 0), "district"]
    assert "征地完成率" in rule and all(d in rule for d in late) and len(late)
    assert not set(t["red_list"]["district"]) & set(late)
    assert "2026年第46期" in page and "某县指挥部" in page and "2026-11-14 与 2026-11-21" in page


def test_workbook_ready_to_paste(demo, tmp_path):
    folder, county, c, alerts, store_dir, ortho = demo
    projects = c.projects.copy()
    projects.loc[projects["project_id"] == "P02", "houses_left"] = 2.5  # a pro-rated count on a half
    c2 = dataclasses.replace(c, projects=projects)
    xlsx = tmp_path / "b.xlsx"
    page = write_bulletin(c2, tmp_path / "b.html", alerts=alerts, xlsx=xlsx, as_of=mapsdata.AS_OF,
                          start_dates=STARTS).read_text(encoding="utf-8")
    row = re.search(r"<tr[^>]*><td>P02</td>.*?</tr>", page).group(0)
    assert "<td>3</td>" in row  # rounded half up, as Excel's 0 format shows it (not 2: half to even)
    assert round_half_up(2.5) == 3 and round_half_up(0.49) == 0 and round_half_up(-1.5) == -2
    t = bulletin_tables(c2, alerts=alerts, as_of=mapsdata.AS_OF, start_dates=STARTS)
    wb = openpyxl.load_workbook(xlsx)
    english = re.compile(r"\b(?!P\d|A\d|EPSG)[A-Za-z_]{3,}\b")
    for ws in wb:
        assert "2026-11-15 ~ 2026-11-21" in ws["A1"].value and ws["A1"].font.b
        assert ws.freeze_panes.endswith(str(HEADER_ROW + 1))
        for row_cells in ws.iter_rows(min_row=HEADER_ROW):
            for cell in row_cells:
                if isinstance(cell.value, str) and cell.value not in (mapsdata.NAME, mapsdata.NOTE):  # layer text
                    assert not english.search(cell.value), (ws.title, cell.coordinate, cell.value)
        for cell in ws[HEADER_ROW]:
            width = ws.column_dimensions[cell.column_letter].width
            assert width >= min(display_width(str(cell.value)), 58), (ws.title, cell.value)
    proj = wb[SHEETS["zh"]["projects"]]
    assert "四舍五入" in proj["A2"].value
    head = [cell.value for cell in proj[HEADER_ROW]]
    rows = {r[0]: dict(zip(head, r)) for r in proj.iter_rows(min_row=HEADER_ROW + 1, values_only=True)}
    ref = t["projects"].set_index("project_id")
    for pid, r in rows.items():
        assert r[HEADERS["zh"]["completion_rate"]] == pytest.approx(ref.loc[pid, "completion_rate"])
        assert r[HEADERS["zh"]["overdue"]] == ("是" if ref.loc[pid, "overdue"] else "否")
    cells = {c.value: c for c in proj[HEADER_ROW]}
    col = list(cells).index(HEADERS["zh"]["houses_left"]) + 1
    assert proj.cell(HEADER_ROW + 1, col).number_format == "0"
    assert proj.cell(HEADER_ROW + 1, list(cells).index(HEADERS["zh"]["total_mu"]) + 1).number_format == "0.00"
    sched = wb[SHEETS["zh"]["schedule"]]
    assert [c.value for c in sched[HEADER_ROW]][-1] == HEADERS["zh"]["behind_schedule"]
    kinds = {c.value for r in wb[SHEETS["zh"]["waiting"]].iter_rows(min_row=HEADER_ROW + 1) for c in r[1:3]}
    assert kinds <= set(KIND["zh"].values()) | set(ALERT_STATUS["zh"].values())
    dist = wb[SHEETS["zh"]["districts"]]
    assert "红榜" in dist["A2"].value  # the rule, said where the list column is


def test_start_date_column_is_read_from_the_red_lines(tmp_path):
    from conftest import make_parcels, make_redlines, square
    from gis.clearance.pipeline import clearance

    red = make_redlines([("A", "东区", square(0, 0, 200), {"完成时限": pd.Timestamp("2026-12-31"),
                                                           "开工日期": pd.Timestamp("2026-01-01")}),
                         ("B", "西区", square(300, 0, 200), {"完成时限": pd.Timestamp("2026-12-31")})])
    parcels = make_parcels([("p1", "东区", "signed", square(0, 0, 200)),
                            ("p2", "西区", "delivered", square(300, 0, 200))])
    red.to_file(tmp_path / "red.gpkg")
    parcels.to_file(tmp_path / "par.gpkg")
    c = clearance(tmp_path / "red.gpkg", tmp_path / "par.gpkg", as_of=dt.date(2026, 7, 2))
    t = bulletin_tables(c, as_of=dt.date(2026, 7, 2))
    assert list(t["schedule"]["project_id"]) == ["A"]  # B has no start date
    assert bool(t["schedule"]["behind_schedule"].iloc[0])  # signed is not acquired: 0% done, half the time gone
    assert t["schedule"]["time_elapsed"].iloc[0] == pytest.approx(0.5, abs=0.01)


def test_bulletin_page_cells_read_as_the_served_figures(demo, tmp_path):
    """One cell formatter (gis.products.cells) for the bulletin page and the served figures page:
    mu with thousands separators, rates in %, days without a time, in every table."""
    from gis.products.cells import format_cell, shown_frame

    folder, county, c, alerts, store_dir, ortho = demo
    projects = c.projects.copy()
    projects.loc[projects["project_id"] == "P02", "total_mu"] = 1234.5
    c2 = dataclasses.replace(c, projects=projects)
    page = write_bulletin(c2, tmp_path / "b.html", alerts=alerts, as_of=mapsdata.AS_OF,
                          start_dates=STARTS).read_text(encoding="utf-8")
    row = re.search(r"<tr[^>]*><td>P02</td>.*?</tr>", page).group(0)
    assert f"<td>{format_cell('total_mu', 1234.5)}</td>" in row and "<td>1,234.50</td>" in row
    t = bulletin_tables(c2, alerts=alerts, as_of=mapsdata.AS_OF, start_dates=STARTS)
    sched = shown_frame(t["schedule"]).set_index("project_id")
    assert sched.loc["P04", "time_elapsed"] == "100.0%" and sched.loc["P04", "start_date"] == "2026-02-01"
    p04 = re.search(r"<tr[^>]*><td>P04</td><td>[^<]*</td><td>[^<]*</td><td>2026-02-01</td>.*?</tr>", page).group(0)
    assert re.findall(r"<td>([^<]*)</td>", p04)[1:] == [html.escape(v) for v in sched.loc["P04"].tolist()]
