"""``gis check``: readable report, JSON, exit code 2 and no traceback on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from conftest import make_parcels, square
from gis.cli import main


def test_check_ok_layers(small_layers):
    s = small_layers
    res = CliRunner().invoke(main, ["check", str(s["redlines_path"]), str(s["parcels_path"])])
    assert res.exit_code == 0, res.output
    assert "[redlines]" in res.output and "[parcels]" in res.output
    assert "features: 4" in res.output and "EPSG:4547" in res.output
    assert "all 2 layer(s) OK" in res.output


def test_check_lists_every_problem_and_writes_json(tmp_path):
    bad = make_parcels([
        ("a", "东区", "已签约", square(0, 0, 10)),
        ("a", "东区", "signed", square(10, 0, 10)),
        ("b", "东区", "审批中", square(20, 0, 10)),
        ("c", "东区", "signed", None),
    ])
    path = tmp_path / "bad.gpkg"
    bad.to_file(path)
    out_json = tmp_path / "report.json"
    res = CliRunner().invoke(main, ["check", str(path), "--json", str(out_json)])
    assert res.exit_code == 2
    assert "duplicate parcel_id" in res.output and "审批中" in res.output and "empty or no geometry" in res.output
    report = json.loads(out_json.read_text(encoding="utf-8"))
    codes = {p["code"] for p in report["layers"][0]["problems"]}
    assert codes == {"duplicate_id", "unknown_status", "empty_geometry"}
    assert report["layers"][0]["ok"] is False


def test_check_reports_repairs(tmp_path):
    import shapely

    from conftest import X0, Y0

    bowtie = shapely.Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    gdf = make_parcels([("bow", "东区", "signed", bowtie), ("ok", "东区", "signed", square(20, 0, 10))])
    path = tmp_path / "bow.gpkg"
    gdf.to_file(path)
    res = CliRunner().invoke(main, ["check", str(path)])
    assert res.exit_code == 0
    assert "repaired (1)" in res.output and "bow: Self-intersection" in res.output


def test_missing_file_exit_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gis", "check", str(tmp_path / "missing.gpkg")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "missing.gpkg" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dxf_without_crs_is_a_named_error(tmp_path):
    import ezdxf

    doc = ezdxf.new()
    doc.modelspace().add_lwpolyline([(0, 0), (10, 0), (10, 10)], close=True, dxfattribs={"layer": "东区"})
    path = tmp_path / "red.dxf"
    doc.saveas(path)
    res = CliRunner().invoke(main, ["check", str(path)])
    assert res.exit_code == 2 and "--crs" in res.output
    res = CliRunner().invoke(main, ["check", str(path), "--crs", "EPSG:4547", "--id-from-layer"])
    assert res.exit_code == 0, res.output
