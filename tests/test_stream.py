"""The streamed path gives the in-memory path's figures, batch by batch."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from click.testing import CliRunner

from gis import errors
from gis.cli import main
from gis.clearance import pipeline
from gis.clearance.pipeline import Clearance, clearance, read_batches


def test_streamed_figures_equal_in_memory(demo_county, demo_clearance, tmp_path):
    c = demo_county
    out = tmp_path / "s.gpkg"
    s = clearance(c.redlines, c.parcels, previous=c.previous_parcels, as_of=c.as_of,
                  batch_size=1000, out=out)
    pd.testing.assert_frame_equal(demo_clearance.projects, s.projects, rtol=1e-12)
    pd.testing.assert_frame_equal(demo_clearance.districts, s.districts, rtol=1e-12)
    pieces = gpd.read_file(out, layer="parcel_pieces")
    assert len(pieces) == len(demo_clearance.pieces)
    assert pieces["area_m2"].sum() == pytest.approx(demo_clearance.pieces["area_m2"].sum(), rel=1e-12)
    assert pyogrio.read_info(out, layer="parcel_pieces")["geometry_type"] == "MultiPolygon"


def test_batches_cover_the_file_once(demo_county):
    sizes = [len(b) for b in read_batches(demo_county.parcels, batch_size=1000)]
    assert sizes == [1000] * 4 + [800]


def test_duplicates_across_batches_fail_and_write_nothing(small_layers, tmp_path):
    s = small_layers
    dup = s["parcels"].copy()
    dup.loc[3, "parcel_id"] = "p1"  # same id as the first row, in another batch
    path = tmp_path / "dup.parquet"
    dup.to_parquet(path)
    out = tmp_path / "out" / "o.gpkg"
    with pytest.raises(errors.DuplicateIdError) as exc:
        clearance(s["redlines_path"], path, batch_size=2, out=out)
    assert exc.value.ids == ["p1"] and "dup.parquet" in str(exc.value)
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_cli_batch_size_option(small_layers, tmp_path):
    s = small_layers
    out = tmp_path / "o.gpkg"
    res = CliRunner().invoke(main, ["overlay", "--redlines", str(s["redlines_path"]), "--parcels",
                                    str(s["parcels_path"]), "--out", str(out), "--batch-size", "1000"])
    assert res.exit_code == 0, res.output
    dist = pyogrio.read_dataframe(out, layer="district_figures", read_geometry=False)
    assert list(dist["district"]) == ["东区", "西区"]


def test_both_paths_return_one_shape(demo_county, demo_clearance, tmp_path):
    c = demo_county
    s = clearance(c.redlines, c.parcels, previous=c.previous_parcels, inventory=c.inventory, as_of=c.as_of,
                  batch_size=1000)
    m = demo_clearance
    assert isinstance(s, Clearance) and s.batch_size == 1000 and m.batch_size is None
    assert m.has_geometry and not s.has_geometry
    for name in ("parcels", "pieces"):
        a, b = getattr(m, name), getattr(s, name)
        assert type(a) is type(b) is gpd.GeoDataFrame and a.crs == b.crs
        assert set(b.columns) <= set(a.columns) and len(a) == len(b)
        assert b.geometry.isna().all()
    assert [r.kind for r in s.reports] == [r.kind for r in m.reports] == ["redlines", "parcels", "inventory"]
    assert s.reports[1].count == m.reports[1].count == len(m.parcels)
    assert len(s.inventory) == len(m.inventory)


def test_large_parcel_files_are_read_in_batches(small_layers, tmp_path, monkeypatch):
    s = small_layers
    monkeypatch.setattr(pipeline, "STREAM_ABOVE", 3)
    monkeypatch.setattr(pipeline, "DEFAULT_BATCH", 2)
    big = clearance(s["redlines_path"], s["parcels_path"], as_of=s["as_of"], out=tmp_path / "o.gpkg")
    assert big.batch_size == 2 and not big.has_geometry
    kept = clearance(s["redlines_path"], s["parcels_path"], as_of=s["as_of"])  # nothing written: maps need geometry
    assert kept.batch_size is None and kept.has_geometry
    monkeypatch.setattr(pipeline, "STREAM_ABOVE", 4)
    small = clearance(s["redlines_path"], s["parcels_path"], as_of=s["as_of"], out=tmp_path / "p.gpkg")
    assert small.batch_size is None
    pd.testing.assert_frame_equal(small.projects, big.projects)
    assert len(gpd.read_file(tmp_path / "o.gpkg", layer="parcel_pieces")) == len(small.pieces)
