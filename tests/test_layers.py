"""Reading and validating layers: formats, aliases, CRS, repairs, bad input."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from conftest import GK, X0, Y0, make_parcels, make_redlines, square
from gis import errors
from gis.clearance import layers


def _nowarn():
    import contextlib

    return contextlib.nullcontext()


def _parcels(n=3, **over):
    rows = [(f"p{i}", "东区", "signed", square(i * 100, 0, 100), {"special_crops": i}) for i in range(n)]
    gdf = make_parcels(rows)
    for k, v in over.items():
        gdf[k] = v
    return gdf


@pytest.mark.parametrize("suffix,kw", [
    (".gpkg", {}), (".shp", {}), (".geojson", {}), (".fgb", {}), (".parquet", None),
])
def test_reads_every_vector_format(tmp_path, suffix, kw):
    gdf = _parcels()
    path = tmp_path / f"parcels{suffix}"
    if kw is None:
        gdf.to_parquet(path)
    else:
        with pytest.warns(Warning) if suffix == ".shp" else _nowarn():
            gdf.to_file(path)
    out = layers.read_parcels(path).sort_values("parcel_id")  # FlatGeobuf orders spatially
    assert list(out["parcel_id"]) == ["p0", "p1", "p2"]
    assert list(out["special_crops"]) == [0, 1, 2]  # also from the 10-char Shapefile name
    assert out.crs.to_epsg() == 4547
    assert np.allclose(out.geometry.area, 10_000)


def test_chinese_headers_and_statuses(tmp_path):
    gdf = gpd.GeoDataFrame({
        "宗地编号": ["A1", "A2", "A3"], "所属区县": ["东区"] * 3,
        "状态": ["已签约", "净地交付", "已清表"], "房屋栋数": [2, None, 1], "坟山穴数": [0, 3, None],
        "状态日期": ["2026年3月1日", "2026/4/2", None],
    }, geometry=[square(0, 0, 10), square(10, 0, 10), square(20, 0, 10)], crs=GK)
    path = tmp_path / "宗地.gpkg"
    gdf.to_file(path)
    out = layers.read_parcels(path)
    assert list(out["status"]) == ["signed", "delivered", "demolished"]
    assert list(out["houses"]) == [2, 0, 1]
    assert list(out["graves"]) == [0, 3, 0]
    assert out["status_date"].iloc[0] == pd.Timestamp("2026-03-01")
    assert out["status_date"].iloc[1] == pd.Timestamp("2026-04-02")
    assert out.attrs["report"].renamed["宗地编号"] == "parcel_id"


@pytest.mark.parametrize("name", ["nocrs.shp", "nocrs.geojson"])
def test_missing_crs_is_named_and_fixed_by_crs_option(tmp_path, name):
    # A Shapefile without .prj has no CRS; a GeoJSON without one is read as
    # WGS 84 although its coordinates are metres: both are a missing CRS.
    gdf = _parcels().set_crs(None, allow_override=True)
    path = tmp_path / name
    with pytest.warns(UserWarning, match="crs"):
        gdf.to_file(path)
    with pytest.raises(errors.MissingCRSError) as exc:
        layers.read_parcels(path)
    assert name in str(exc.value) and "--crs" in str(exc.value)
    out = layers.read_parcels(path, source_crs="EPSG:4547")
    assert out.crs.to_epsg() == 4547
    assert np.allclose(out.geometry.area, 10_000)


def test_geographic_layer_goes_to_gk_zone_of_its_centre(tmp_path):
    gdf = _parcels().to_crs(4490)
    path = tmp_path / "geo.gpkg"
    gdf.to_file(path)
    out = layers.read_parcels(path)
    assert out.crs.to_epsg() == 4547  # CM 114E holds x = 500 km in EPSG:4547
    assert out.attrs["report"].reprojected
    assert np.allclose(out.geometry.area, 10_000, rtol=1e-6)


def test_explicit_working_crs_must_be_projected():
    with pytest.raises(errors.CRSError, match="not projected"):
        layers.read_parcels(_parcels(), working_crs="EPSG:4490")


def test_invalid_geometry_is_repaired_and_reported():
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    gdf = _parcels(2)
    gdf.loc[1, "geometry"] = bowtie
    out = layers.read_parcels(gdf)
    rep = out.attrs["report"]
    assert [r["id"] for r in rep.repairs] == ["p1"]
    assert "Self-intersection" in rep.repairs[0]["reason"]
    assert out.geometry.is_valid.all()
    assert out.geometry.iloc[1].area == pytest.approx(50.0)


def test_repairs_and_warnings_are_warning_classes_a_caller_can_filter(tmp_path):
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10)])
    gdf = _parcels(2)
    gdf.loc[1, "geometry"] = bowtie
    with pytest.warns(errors.GeometryRepairWarning, match="repaired parcels p1: Self-intersection"):
        layers.read_parcels(gdf)
    with warnings.catch_warnings():
        warnings.simplefilter("error", errors.GeometryRepairWarning)
        with pytest.raises(errors.GeometryRepairWarning):
            layers.read_parcels(gdf)
    odd = _parcels(2).drop(columns="special_crops")
    odd["特殊青苗 户数"] = [1, 2]  # looks like special_crops, which the layer lacks
    with pytest.warns(errors.UnusedColumnWarning, match="looks like special_crops") as seen:
        layers.read_parcels(odd)
    assert all(issubclass(w.category, errors.GisWarning) for w in seen)
    assert issubclass(errors.GisWarning, UserWarning)


def test_empty_geometry_lists_every_id():
    gdf = _parcels(4)
    gdf.loc[[1, 3], "geometry"] = None
    with pytest.raises(errors.EmptyGeometryError) as exc:
        layers.read_parcels(gdf)
    assert exc.value.ids == ["p1", "p3"]


def test_duplicate_ids_lists_every_duplicate():
    gdf = _parcels(5, parcel_id=["a", "b", "a", "c", "c"])
    with pytest.raises(errors.DuplicateIdError) as exc:
        layers.read_parcels(gdf)
    assert exc.value.ids == ["a", "c"]
    assert "unique" in str(exc.value)


def test_unknown_status_lists_values_and_allowed():
    gdf = _parcels(3, status=["signed", "准备中", "done"])
    with pytest.raises(errors.UnknownStatusError) as exc:
        layers.read_parcels(gdf)
    msg = str(exc.value)
    assert "准备中" in msg and "done" in msg and "净地交付" in msg and "delivered" in msg
    assert exc.value.ids == ["p1", "p2"]


def test_non_polygon_geometry_is_an_error():
    gdf = _parcels(3)
    gdf.loc[2, "geometry"] = shapely.LineString([(X0, Y0), (X0 + 5, Y0 + 5)])
    with pytest.raises(errors.GeometryTypeError) as exc:
        layers.read_parcels(gdf)
    assert exc.value.ids == ["p2"] and "LineString" in str(exc.value)


def test_all_problems_are_collected_in_one_report():
    gdf = _parcels(4, parcel_id=["a", "a", "b", "c"], status=["signed", "x", "signed", "signed"])
    gdf.loc[3, "geometry"] = None
    _, report = layers.inspect_layer(gdf, "parcels")
    assert {p.code for p in report.problems} == {"duplicate_id", "unknown_status", "empty_geometry"}


def test_missing_required_column():
    gdf = _parcels().drop(columns=["status"])
    with pytest.raises(errors.MissingColumnError) as exc:
        layers.read_parcels(gdf)
    assert "status (状态)" in str(exc.value)


def test_bad_counts_and_dates_name_the_features():
    gdf = _parcels(3, houses=["1", "many", "-2"], status_date=["2026-01-01", "soon", None])
    _, report = layers.inspect_layer(gdf, "parcels")
    by_code = {p.code: p for p in report.problems}
    assert by_code["bad_houses"].ids == ["p1", "p2"]
    assert by_code["bad_status_date"].ids == ["p1"]


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(errors.LayerNotFoundError, match="does not exist"):
        layers.read_parcels(tmp_path / "nope.gpkg")
    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(b"this is not a geopackage")
    with pytest.raises(errors.UnreadableLayerError) as exc:
        layers.read_parcels(junk)
    assert "junk.gpkg" in str(exc.value)


def test_float_ids_from_shapefiles_read_as_integers():
    gdf = _parcels(2, parcel_id=[101.0, 102.0])
    out = layers.read_parcels(gdf)
    assert list(out["parcel_id"]) == ["101", "102"]


def test_redline_booleans_and_dates():
    red = make_redlines([("P1", "东区", square(0, 0, 50), {"资金保障": "是", "完成时限": "2026-12-31"}),
                         ("P2", "东区", square(50, 0, 50), {"资金保障": "否", "完成时限": None})])
    out = layers.read_redlines(red)
    assert list(out["funded"]) == [True, False]
    assert out["deadline"].iloc[0] == pd.Timestamp("2026-12-31") and pd.isna(out["deadline"].iloc[1])


def _write_dxf(path, labelled=True, closed=True, layer="东区"):
    import ezdxf

    doc = ezdxf.new()
    msp = doc.modelspace()
    msp.add_lwpolyline([(0, 0), (100, 0), (100, 50), (0, 50)], close=closed, dxfattribs={"layer": layer})
    msp.add_lwpolyline([(200, 0), (260, 0), (260, 60), (200, 60)], close=True, dxfattribs={"layer": layer})
    if labelled:
        msp.add_text("P01 金沙大道", dxfattribs={"layer": layer}).set_placement((10, 10))
        msp.add_text("P02", dxfattribs={"layer": layer}).set_placement((210, 10))
    doc.saveas(path)
    return path


def test_dxf_needs_crs_then_reads_closed_polylines(tmp_path):
    path = _write_dxf(tmp_path / "红线.dxf")
    with pytest.raises(errors.MissingCRSError, match="--crs"):
        layers.read_redlines(path)
    out = layers.read_redlines(path, source_crs="EPSG:4547")
    assert len(out) == 2
    assert out.loc[out["project_id"] == "P01", "name"].item() == "金沙大道"
    assert set(out["district"]) == {"东区"}
    assert sorted(out.geometry.area) == [3600.0, 5000.0]


def test_dxf_open_polyline_is_named(tmp_path):
    path = _write_dxf(tmp_path / "open.dxf", closed=False)
    with pytest.raises(errors.GeometryTypeError) as exc:
        layers.read_redlines(path, source_crs="EPSG:4547")
    assert exc.value.ids == ["P01"] and "close" in str(exc.value)
