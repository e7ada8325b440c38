"""Parcels x red lines: pieces, straddling parcels, overlapping red lines."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from conftest import make_parcels, make_redlines, square
from gis.clearance import layers
from gis.clearance.overlay import overlay_parcels, parcel_inside_area


def _read(small):
    return layers.read_parcels(small["parcels"]), layers.read_redlines(small["redlines"])


def test_pieces_split_straddling_parcels(small_layers):
    parcels, red = _read(small_layers)
    pieces = overlay_parcels(parcels, red)
    got = {(r.project_id, r.parcel_id): r.area_m2 for r in pieces.itertuples()}
    # p3 only touches A along x = 200: no land, no piece; p4 is outside everything
    assert got == pytest.approx({("A", "p1"): 10_000, ("A", "p2"): 10_000,
                                 ("B", "p2"): 5_000, ("B", "p3"): 10_000})
    b_p2 = pieces[(pieces.project_id == "B") & (pieces.parcel_id == "p2")]
    assert b_p2.geometry.iloc[0].bounds == pytest.approx((500_150, 3_400_000, 500_200, 3_400_100))
    assert np.allclose(pieces["area_mu"], pieces["area_m2"] / (10000 / 15))
    assert set(pieces.geom_type) <= {"Polygon", "MultiPolygon"}


def test_inside_area_counts_overlap_once(small_layers):
    parcels, red = _read(small_layers)
    pieces = overlay_parcels(parcels, red)
    area = parcel_inside_area(pieces, len(parcels))
    assert area == pytest.approx([10_000, 10_000, 10_000, 0])


def test_parcel_crossing_two_overlapping_redlines_is_unioned():
    parcels = layers.read_parcels(make_parcels([("x", "东区", "signed", square(0, 0, 100))]))
    red = layers.read_redlines(make_redlines([
        ("A", "东区", square(-50, -50, 100)),   # covers the parcel's x 0..50, y 0..50
        ("B", "东区", square(25, -50, 100)),    # covers x 25..100, y 0..50
    ]))
    pieces = overlay_parcels(parcels, red)
    assert sorted(pieces["area_m2"]) == pytest.approx([2_500, 3_750])
    assert parcel_inside_area(pieces, 1) == pytest.approx([5_000])  # 0..100 x 0..50


def test_threads_do_not_change_the_result(demo_clearance):
    c = demo_clearance
    one = overlay_parcels(c.parcels, c.redlines, threads=1)
    two = overlay_parcels(c.parcels, c.redlines, threads=3)
    assert list(one["parcel_id"]) == list(two["parcel_id"])
    assert np.array_equal(one["area_m2"].to_numpy(), two["area_m2"].to_numpy())


def test_agrees_with_geopandas_overlay(demo_clearance):
    c = demo_clearance
    ref = gpd.overlay(c.parcels[["parcel_id", "geometry"]], c.redlines[["project_id", "geometry"]],
                      how="intersection", keep_geom_type=True)
    ref = ref[ref.area > 0].groupby("project_id").apply(lambda g: g.area.sum(), include_groups=False)
    ours = c.pieces.groupby("project_id")["area_m2"].sum()
    assert np.allclose(ours.reindex(ref.index).to_numpy(), ref.to_numpy(), rtol=1e-9)


def test_different_crs_is_refused(small_layers):
    parcels, red = _read(small_layers)
    with pytest.raises(ValueError, match="different CRS"):
        overlay_parcels(parcels.to_crs(4490), red)


def test_pieces_never_exceed_their_parcel(demo_clearance):
    c = demo_clearance
    parcel_area = shapely.area(c.parcels.geometry.to_numpy())
    assert (c.pieces["area_m2"].to_numpy() <= parcel_area[c.pieces["_parcel"].to_numpy()] * (1 + 1e-12)).all()
