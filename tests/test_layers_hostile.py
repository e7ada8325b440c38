"""Hostile and careless layers (issue 15, points 5-8, 17, 18).

Web Mercator areas, Shapefile encodings and truncated headers, empty layers,
sliver red lines, unlabelled DXF outlines, two headers for one column and
GDAL datetime strings: each gives true figures or a named error, never a
silently wrong number or a traceback.
"""

from __future__ import annotations

import warnings

import ezdxf
import geopandas as gpd
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from conftest import GK, X0, Y0, make_parcels, make_redlines, square
from gis import errors
from gis.clearance import layers
from gis.cli import main
from gis.clearance.pipeline import clearance


def _shapefile(gdf: gpd.GeoDataFrame, path, *, encoding: str, cpg: str | None = "keep"):
    """Write a Shapefile in ``encoding``; ``cpg`` None deletes the .cpg, a string replaces it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GDAL warns about the names it cuts to 10 bytes
        gdf.to_file(path, encoding=encoding)
    cpg_path = path.with_suffix(".cpg")
    if cpg is None:
        cpg_path.unlink(missing_ok=True)
    elif cpg != "keep":
        cpg_path.write_text(cpg)
    return path


def _chinese_parcels() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({
        "宗地编号": ["A1", "A2"], "所属区县": ["东区", "西区"], "状态": ["已签约", "净地交付"],
        "特殊青苗户数": [3, 4], "附着物户数": [1, 2],
    }, geometry=[square(0, 0, 10), square(10, 0, 10)], crs=GK)


# --- 5. Web Mercator is never the CRS of areas ----------------------------------


def _mercator_pair(tmp_path, small_layers):
    s = small_layers
    red, par = tmp_path / "red3857.gpkg", tmp_path / "par3857.gpkg"
    s["redlines"].to_crs(3857).to_file(red)
    s["parcels"].to_crs(3857).to_file(par)
    return red, par


def test_web_mercator_layers_give_true_areas(tmp_path, small_layers):
    s = small_layers
    red, par = _mercator_pair(tmp_path, s)
    truth = clearance(s["redlines_path"], s["parcels_path"], as_of=s["as_of"])
    c = clearance(red, par, as_of=s["as_of"])
    assert c.crs.to_epsg() == 4547  # the CGCS2000 GK zone of the data, not EPSG:3857
    got = c.projects.set_index("project_id")["total_mu"]
    want = truth.projects.set_index("project_id")["total_mu"]
    assert ((got - want).abs() / want).max() < 0.005


def test_check_says_web_mercator_was_reprojected(tmp_path, small_layers):
    red, par = _mercator_pair(tmp_path, small_layers)
    res = CliRunner().invoke(main, ["check", str(red), str(par)])
    assert res.exit_code == 0, res.output
    assert "WARNING: EPSG:3857" in res.output and "reprojected to EPSG:4547" in res.output
    assert "working CRS EPSG:4547" in res.output


def test_explicit_web_mercator_working_crs_is_an_error(tmp_path, small_layers):
    s = small_layers
    res = CliRunner().invoke(main, ["overlay", "--redlines", str(s["redlines_path"]),
                                    "--parcels", str(s["parcels_path"]), "--out", str(tmp_path / "o.gpkg"),
                                    "--working-crs", "EPSG:3857"])
    assert res.exit_code == 2
    assert "EPSG:3857" in res.output and "distorts areas" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o.gpkg").exists()


# --- 6 and 17. Shapefile encodings and truncated headers ---------------------------


@pytest.mark.parametrize("encoding,cpg", [
    ("gbk", "keep"),     # 特殊青苗户数 -> 特殊青苗户 (10 bytes of GBK)
    ("utf-8", "keep"),   # 特殊青苗户数 -> 特殊青 + half a character (10 bytes of UTF-8)
    ("gbk", None),       # GBK without .cpg: GDAL reads Latin-1 mojibake
    ("utf-8", None),
    ("utf-8", "GBK"),    # a .cpg that lies
])
def test_shapefile_truncated_headers_and_encodings(tmp_path, encoding, cpg):
    path = _shapefile(_chinese_parcels(), tmp_path / "宗地.shp", encoding=encoding, cpg=cpg)
    out = layers.read_parcels(path).sort_values("parcel_id")
    assert list(out["district"]) == ["东区", "西区"]
    assert list(out["status"]) == ["signed", "delivered"]
    assert list(out["special_crops"]) == [3, 4]
    assert list(out["attachments"]) == [1, 2]
    warned = out.attrs["report"].warnings
    if cpg == "keep":
        assert warned == []
    else:
        assert len(warned) == 1 and f"text read as {encoding.upper()}" in warned[0]


def test_check_names_the_guessed_encoding(tmp_path):
    path = _shapefile(_chinese_parcels(), tmp_path / "parcels.shp", encoding="gbk", cpg=None)
    res = CliRunner().invoke(main, ["check", str(path)])
    assert res.exit_code == 0, res.output
    assert "WARNING: text read as GBK (it has no .cpg); put GBK in parcels.cpg" in res.output


def test_undecodable_shapefile_says_which_cpg_to_add(tmp_path):
    gdf = make_parcels([("p1", "Zürich ÿ", "signed", square(0, 0, 10))])
    path = _shapefile(gdf, tmp_path / "odd.shp", encoding="ISO-8859-1", cpg=None)
    with pytest.raises(errors.TextEncodingError, match=r"Add a \.cpg file beside odd\.shp") as exc:
        layers.read_parcels(path)
    assert "neither UTF-8 nor GBK" in str(exc.value)


def test_lookalike_headers_are_reported_not_dropped(tmp_path):
    gdf = make_parcels([("p1", "东区", "signed", square(0, 0, 10))]).drop(columns=["special_crops", "graves"])
    gdf["特殊青苗 户数"] = [5]
    gdf["坟山穴数(穴)"] = [2]
    path = tmp_path / "parcels.gpkg"
    gdf.to_file(path)
    res = CliRunner().invoke(main, ["check", str(path)])
    assert res.exit_code == 0, res.output
    assert "WARNING: column '特殊青苗 户数' looks like special_crops (特殊青苗户数)" in res.output
    assert "WARNING: column '坟山穴数(穴)' looks like graves (坟山穴数)" in res.output


# --- 7. Empty layers and sliver red lines ----------------------------------------


def _empty(tmp_path, name="parcels.gpkg"):
    path = tmp_path / name
    make_parcels([("p1", "东区", "signed", square(0, 0, 10))]).iloc[:0].to_file(path)
    return path


def test_empty_parcel_layer_is_an_error(tmp_path, small_layers):
    path = _empty(tmp_path)
    with pytest.raises(errors.EmptyLayerError, match="has no features") as exc:
        layers.read_parcels(path)
    assert exc.value.path == str(path)
    for extra in ([], ["--batch-size", "1000"]):  # in memory and streamed
        res = CliRunner().invoke(main, ["overlay", "--redlines", str(small_layers["redlines_path"]),
                                        "--parcels", str(path), "--out", str(tmp_path / "o.gpkg"), *extra])
        assert res.exit_code == 2, res.output
        assert "parcels.gpkg" in res.output and "has no features" in res.output
        assert not (tmp_path / "o.gpkg").exists()
    res = CliRunner().invoke(main, ["check", str(path)])
    assert res.exit_code == 2 and "parcels.gpkg" in res.output and "no features" in res.output


def test_empty_previous_snapshot_is_an_error(tmp_path, small_layers):
    path = _empty(tmp_path, "previous.gpkg")
    with pytest.raises(errors.EmptyLayerError, match="previous parcel snapshot"):
        clearance(small_layers["redlines_path"], small_layers["parcels_path"], previous=path)


def test_sliver_red_line_is_an_error_listing_its_id(tmp_path, small_layers):
    s = small_layers
    red = make_redlines([
        ("A", "东区", shapely.box(X0, Y0, X0 + 200, Y0 + 100)),
        ("SLIVER", "东区", shapely.box(X0, Y0, X0 + 1e-5, Y0 + 1e-4)),  # 1e-9 m2
    ])
    path = tmp_path / "red.gpkg"
    red.to_file(path)
    with pytest.raises(errors.AreaTooSmallError, match="smaller than 1 m2") as exc:
        clearance(path, s["parcels_path"], as_of=s["as_of"])
    assert exc.value.ids == ["SLIVER"]
    res = CliRunner().invoke(main, ["overlay", "--redlines", str(path), "--parcels", str(s["parcels_path"]),
                                    "--out", str(tmp_path / "o.gpkg")])
    assert res.exit_code == 2 and "SLIVER" in res.output and "--min-redline-m2" in res.output
    res = CliRunner().invoke(main, ["check", str(path), "--min-redline-m2", "0"])
    assert res.exit_code == 0, res.output


def test_workspace_sets_the_minimum_red_line_area(tmp_path, small_layers):
    from gis.workspace import init_workspace, load_workspace

    s = small_layers
    root = tmp_path / "ws"
    init_workspace(root, redlines=s["redlines_path"], parcels=s["parcels_path"])
    toml = root / "gis.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        "[layers]\n", "[layers]\nmin_redline_m2 = 50000\n"), encoding="utf-8")
    ws = load_workspace(root)
    assert ws.min_redline_m2 == 50000
    with pytest.raises(errors.AreaTooSmallError) as exc:
        clearance(ws.redlines, ws.parcels, min_redline_m2=ws.min_redline_m2)
    assert sorted(exc.value.ids) == ["A", "B"]


# --- 8. DXF outlines without labels ------------------------------------------------


def _dxf(path):
    doc = ezdxf.new()
    msp = doc.modelspace()
    msp.add_lwpolyline([(0, 0), (100, 0), (100, 50), (0, 50)], close=True, dxfattribs={"layer": "高新区"})
    msp.add_lwpolyline([(200, 0), (260, 0), (260, 60), (200, 60)], close=True, dxfattribs={"layer": "高新区"})
    msp.add_lwpolyline([(300, 0), (360, 0), (360, 60), (300, 60)], close=True, dxfattribs={"layer": "东区"})
    msp.add_text("P01 金沙大道", dxfattribs={"layer": "高新区"}).set_placement((10, 10))
    doc.saveas(path)
    handles = [e.dxf.handle for e in msp.query("LWPOLYLINE")]
    return path, handles


def test_unlabelled_dxf_outlines_are_named(tmp_path):
    path, handles = _dxf(tmp_path / "红线.dxf")
    with pytest.raises(errors.MissingLabelError, match="without a text label") as exc:
        layers.read_redlines(path, source_crs=GK)
    assert exc.value.ids == [f"handle {handles[1]} on CAD layer 高新区", f"handle {handles[2]} on CAD layer 东区"]
    res = CliRunner().invoke(main, ["check", str(path), "--crs", GK])
    assert res.exit_code == 2 and f"handle {handles[1]}" in res.output and "--id-from-layer" in res.output


def test_id_from_layer_numbers_unlabelled_outlines(tmp_path):
    path, handles = _dxf(tmp_path / "红线.dxf")
    out = layers.read_redlines(path, source_crs=GK, id_from_layer=True)
    assert sorted(out["project_id"]) == sorted(["P01", f"高新区-{handles[1]}", f"东区-{handles[2]}"])
    res = CliRunner().invoke(main, ["check", str(path), "--crs", GK, "--id-from-layer"])
    assert res.exit_code == 0, res.output


# --- 18. Two headers for one column --------------------------------------------------


def test_english_and_chinese_header_of_one_column_is_named(tmp_path, small_layers):
    s = small_layers
    red = s["redlines"].copy()
    red["项目名称"] = red["name"] + "(新)"  # added in QGIS beside the English column
    path = tmp_path / "red.gpkg"
    red.to_file(path)
    with pytest.raises(errors.ColumnClashError) as exc:
        layers.read_redlines(path)
    assert "'name', '项目名称'" in str(exc.value) and "red.gpkg" in str(exc.value)
    res = CliRunner().invoke(main, ["overlay", "--redlines", str(path), "--parcels", str(s["parcels_path"]),
                                    "--out", str(tmp_path / "o.gpkg")])
    assert res.exit_code == 2, res.output
    assert "two columns for one field" in res.output and "项目名称" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


# --- 17. GDAL datetime strings are dates -----------------------------------------------


def test_gdal_datetime_strings_are_dates():
    values = ["2026/03/01 00:00:00", "2026-03-01T00:00:00", "2026-03-01 00:00:00+08",
              "2026/03/01 23:30:00.000-05:00", "2026年3月1日", "2026-03-01"]
    red = make_redlines([(f"P{i}", "东区", square(i * 100, 0, 50), {"完成时限": v}) for i, v in enumerate(values)])
    out = layers.read_redlines(red)
    assert (out["deadline"] == pd.Timestamp("2026-03-01")).all(), out["deadline"].tolist()
