"""``gis overlay``: GeoPackage layers, Excel workbook, atomic writes."""

from __future__ import annotations

import subprocess
import sys

import geopandas as gpd
import openpyxl
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from conftest import X0, Y0
from gis.cli import main
from gis.clearance.pipeline import clearance, write_clearance
from gis.products.excel import HEADER_ROW


def test_overlay_writes_layers_and_workbook(small_layers, tmp_path):
    s = small_layers
    out, xlsx = tmp_path / "out.gpkg", tmp_path / "out.xlsx"
    res = CliRunner().invoke(main, ["overlay", "--redlines", str(s["redlines_path"]), "--parcels",
                                    str(s["parcels_path"]), "--out", str(out), "--xlsx", str(xlsx),
                                    "--as-of", "2026-11-21"])
    assert res.exit_code == 0, res.output
    names = {n for n, _ in pyogrio.list_layers(out)}
    assert names == {"parcel_pieces", "project_figures", "district_figures"}
    pieces = gpd.read_file(out, layer="parcel_pieces")
    assert list(pieces.columns) == ["parcel_id", "project_id", "district", "status", "area_m2", "area_mu", "geometry"]
    assert len(pieces) == 4
    proj = pyogrio.read_dataframe(out, layer="project_figures", read_geometry=False).set_index("project_id")
    assert proj.loc["A", "completion_rate"] == pytest.approx(1.0)
    dist = pyogrio.read_dataframe(out, layer="district_figures", read_geometry=False)
    # 东区 ranks first but has an overdue project (A): off the red list by default (issue 19)
    assert list(dist["list"]) == ["", "black"]

    wb = openpyxl.load_workbook(xlsx)
    ws = wb["项目进度"]
    headers = [c.value for c in ws[HEADER_ROW]]  # a title and a note row above (issue 19)
    assert headers[:3] == ["项目编号", "项目名称", "所属区县"] and "征地完成率" in headers
    rows = {r[0]: dict(zip(headers, r)) for r in ws.iter_rows(min_row=HEADER_ROW + 1, values_only=True)}
    assert rows["A"]["征地完成率"] == pytest.approx(1.0) and rows["A"]["是否逾期"] == "是"
    assert rows["B"]["红线内宗地面积(亩)"] == pytest.approx(22.5)
    assert ws.cell(HEADER_ROW + 1, headers.index("征地完成率") + 1).number_format == "0.0%"
    dist_rows = list(wb["区县排名"].iter_rows(min_row=HEADER_ROW + 1, values_only=True))
    dheaders = [c.value for c in wb["区县排名"][HEADER_ROW]]
    assert [dict(zip(dheaders, r))["红黑榜"] for r in dist_rows] == [None, "黑榜"]


def test_bad_status_exit_2_names_file_and_values(small_layers, tmp_path):
    s = small_layers
    bad = s["parcels"].copy()
    bad.loc[0, "status"] = "finished?"
    path = tmp_path / "bad.gpkg"
    bad.to_file(path)
    res = CliRunner().invoke(main, ["overlay", "--redlines", str(s["redlines_path"]), "--parcels", str(path),
                                    "--out", str(tmp_path / "o.gpkg")])
    assert res.exit_code == 2
    assert "bad.gpkg" in res.output and "finished?" in res.output and "p1" in res.output
    assert not (tmp_path / "o.gpkg").exists()


def test_interrupted_write_keeps_previous_file(small_layers, tmp_path, monkeypatch):
    s = small_layers
    out = tmp_path / "out" / "figures.gpkg"
    c = clearance(s["redlines_path"], s["parcels_path"], as_of=s["as_of"])
    write_clearance(c, out)
    before = out.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt  # the user pressed Ctrl-C while the tables were written

    monkeypatch.setattr(pyogrio, "write_dataframe", boom)
    with pytest.raises(KeyboardInterrupt):
        write_clearance(c, out)
    assert out.read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["figures.gpkg"]  # no half file left behind


def test_repairs_are_logged_as_their_warning_class_and_quiet_hides_them(small_layers, tmp_path):
    s = small_layers
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    bad = s["parcels"].copy()
    bad.loc[0, "geometry"] = bowtie
    path = tmp_path / "bow.gpkg"
    bad.to_file(path)
    args = ["overlay", "--redlines", str(s["redlines_path"]), "--parcels", str(path)]
    loud = subprocess.run([sys.executable, "-m", "gis", *args, "--out", str(tmp_path / "a.gpkg")],
                          capture_output=True, text=True)
    assert loud.returncode == 0, loud.stderr
    lines = [ln for ln in loud.stderr.splitlines() if "GeometryRepairWarning" in ln]
    assert len(lines) == 1 and "bow.gpkg: repaired parcels p1: Self-intersection" in lines[0]
    assert "warnings.warn" not in loud.stderr  # a log line, not Python's two-line warning
    quiet = subprocess.run([sys.executable, "-m", "gis", "-q", *args, "--out", str(tmp_path / "b.gpkg")],
                           capture_output=True, text=True)
    assert quiet.returncode == 0 and "Warning" not in quiet.stderr
